#include "tests/unit/k8s/test_pki.h"

#include "tests/support/tls/test_tls.h"

namespace tsk::k8s {
namespace {

UnitTestPki generate() {
  const tsk::testing::TestPki pki;  // its temp dir goes away; the PEM text stays here
  UnitTestPki out;
  out.ca_pem = pki.caPem();
  out.client_cert_pem = tsk::testing::TestPki::readFile(pki.clientCert());
  out.client_key_pem = tsk::testing::TestPki::readFile(pki.clientKey());
  out.other_key_pem = tsk::testing::TestPki::readFile(pki.wrongHostKey());
  return out;
}

}  // namespace

const UnitTestPki& testPki() {
  static const UnitTestPki pki = generate();
  return pki;
}

}  // namespace tsk::k8s
