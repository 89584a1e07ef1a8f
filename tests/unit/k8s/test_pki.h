#pragma once
// PEM material for the unit tests, generated once per test binary in memory (no files, no
// committed keys).
#include <string>

namespace tsk::k8s {

struct UnitTestPki {
  std::string ca_pem;
  std::string client_cert_pem;  // signed by the CA
  std::string client_key_pem;
  std::string other_key_pem;  // a key that does not belong to the client certificate
};

const UnitTestPki& testPki();

}  // namespace tsk::k8s
