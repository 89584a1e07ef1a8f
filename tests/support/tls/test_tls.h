#pragma once
// TestPki: a throwaway PKI for tests over real TLS, generated at test time (no private key is
// ever committed). Makes a fresh temp dir holding a CA, a server certificate for 127.0.0.1, ::1,
// localhost and any extra names, an admin client certificate, an unrelated CA and a certificate
// for another host name; removes the dir on destruction. Throws std::runtime_error if OpenSSL
// fails (a broken environment, not a test outcome).
//
//   tsk::testing::TestPki pki({"kubernetes.default.svc"});
//   KubeEmuOptions o; o.cert_file = pki.serverCert(); o.key_file = pki.serverKey();
//   cfg.ca_pem = pki.caPem();                          // trust the right CA
//   cfg.ca_pem = TestPki::readFile(pki.otherCaCert()); // a CA that did not sign the server
//   auto alice = pki.makeClientCert("alice", {"devs"}); // alice.cert / alice.key paths
#include <string>
#include <vector>

#include "tools/kube-emu/certgen.h"

namespace tsk::testing {

struct CertFiles {
  std::string cert;  // PEM file path
  std::string key;   // PEM file path
};

class TestPki {
 public:
  explicit TestPki(const std::vector<std::string>& extra_server_names = {});
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  const std::string& dir() const { return paths_.dir; }
  const std::string& caCert() const { return paths_.ca_cert; }
  const std::string& caKey() const { return paths_.ca_key; }
  const std::string& serverCert() const { return paths_.server_cert; }
  const std::string& serverKey() const { return paths_.server_key; }
  const std::string& clientCert() const {
    return paths_.client_cert;
  }  // CN admin, O system:masters
  const std::string& clientKey() const { return paths_.client_key; }
  const std::string& otherCaCert() const { return paths_.other_ca_cert; }
  const std::string& wrongHostCert() const { return paths_.wrong_host_cert; }  // "wrong.example"
  const std::string& wrongHostKey() const { return paths_.wrong_host_key; }

  std::string caPem() const { return readFile(paths_.ca_cert); }

  // A client certificate signed by the CA: CN = user, O = groups (Kubernetes' user and groups).
  CertFiles makeClientCert(const std::string& user, const std::vector<std::string>& groups = {});
  // A server certificate for `names` (DNS names or IPs), signed by the CA or by the unrelated CA.
  // For an httplib client that connects to an IPv6 address, use one whose only IP SAN is the
  // IPv6 one (e.g. {"::1", "localhost"}): cpp-httplib 0.11.4 compares 16 bytes against every IP
  // SAN and reads past a 4-byte IPv4 SAN (ASan/TSan report it inside libcpp-httplib).
  CertFiles makeServerCert(const std::vector<std::string>& names, bool signed_by_other_ca = false);

  static std::string readFile(const std::string& path);

 private:
  CertFiles writePair(const std::string& stem, const kube_emu::CertAndKey& pair);

  kube_emu::CertSetPaths paths_;
  int serial_ = 0;
};

}  // namespace tsk::testing
