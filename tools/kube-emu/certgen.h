#pragma once
// Certificate generation with the OpenSSL C API, for kube-emu's --gen-certs and for tests
// (tests/support/tls wraps it). Keys are ECDSA P-256: fast to make, accepted by Go and OpenSSL.
// Nothing here is meant for production PKI: validity is short and there is no revocation.
//
//   auto ca = makeCa("kube-emu test CA");
//   CertRequest req;
//   req.common_name = "kube-emu";
//   req.ip_addresses = {"127.0.0.1", "::1"};
//   auto server = issueCert(*ca, req);
//   auto set = writeCertSet("/tmp/certs", {"kubernetes.default.svc"}, "admin");
#include <string>
#include <vector>

#include "common/result.h"

namespace tsk::kube_emu {

struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;
};

struct CertRequest {
  std::string common_name;
  std::vector<std::string> organizations;  // Kubernetes reads these as the user's groups
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;  // "127.0.0.1", "::1"
  bool server_auth = true;
  bool client_auth = false;
  int valid_days = 30;
};

// A self-signed CA certificate (basicConstraints CA:TRUE, keyCertSign).
Result<CertAndKey> makeCa(const std::string& common_name, int valid_days = 30);
// A leaf certificate signed by `ca`.
Result<CertAndKey> issueCert(const CertAndKey& ca, const CertRequest& request);

// The files written by writeCertSet(), as absolute paths.
struct CertSetPaths {
  std::string dir;
  std::string ca_cert;          // ca.crt: signs the server and client certificates
  std::string ca_key;           // ca.key
  std::string server_cert;      // server.crt: SANs 127.0.0.1, ::1, localhost + extra names
  std::string server_key;       // server.key
  std::string client_cert;      // client.crt: CN = client user, O = system:masters
  std::string client_key;       // client.key
  std::string other_ca_cert;    // other-ca.crt: an unrelated CA that signed nothing here
  std::string other_ca_key;     // other-ca.key
  std::string wrong_host_cert;  // wrong-host.crt: signed by ca.crt for "wrong.example" only
  std::string wrong_host_key;   // wrong-host.key
};

// Generates a full set into `dir` (created if missing; keys are written mode 0600).
Result<CertSetPaths> writeCertSet(const std::string& dir,
                                  const std::vector<std::string>& extra_server_names,
                                  const std::string& client_user = "admin");

// Writes `contents` to `path` with the given mode, replacing any existing file atomically.
Status writeFileAtomically(const std::string& path, const std::string& contents,
                           unsigned mode = 0644);

// True if `name` parses as an IPv4 or IPv6 address (goes into an IP SAN, not a DNS SAN).
bool isIpAddress(const std::string& name);

}  // namespace tsk::kube_emu
