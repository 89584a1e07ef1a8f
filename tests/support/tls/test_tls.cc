#include "tests/support/tls/test_tls.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tsk::testing {

namespace {

std::string makeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/tsk-pki-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("TestPki: cannot create a temp dir under " + templ);
  }
  return templ;
}

template <typename T>
T orThrow(Result<T> r) {
  if (!r) throw std::runtime_error("TestPki: " + r.error().message);
  return std::move(*r);
}

}  // namespace

TestPki::TestPki(const std::vector<std::string>& extra_server_names) {
  const std::string dir = makeTempDir();
  paths_ = orThrow(kube_emu::writeCertSet(dir, extra_server_names, "admin"));
}

TestPki::~TestPki() {
  std::error_code ec;
  std::filesystem::remove_all(paths_.dir, ec);
}

std::string TestPki::readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("TestPki: cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CertFiles TestPki::writePair(const std::string& stem, const kube_emu::CertAndKey& pair) {
  const std::string base = paths_.dir + "/" + stem + "-" + std::to_string(++serial_);
  CertFiles files{base + ".crt", base + ".key"};
  if (auto st = kube_emu::writeFileAtomically(files.cert, pair.cert_pem, 0644); !st) {
    throw std::runtime_error("TestPki: " + st.error().message);
  }
  if (auto st = kube_emu::writeFileAtomically(files.key, pair.key_pem, 0600); !st) {
    throw std::runtime_error("TestPki: " + st.error().message);
  }
  return files;
}

CertFiles TestPki::makeClientCert(const std::string& user, const std::vector<std::string>& groups) {
  const kube_emu::CertAndKey ca{readFile(paths_.ca_cert), readFile(paths_.ca_key)};
  kube_emu::CertRequest req;
  req.common_name = user;
  req.organizations = groups;
  req.server_auth = false;
  req.client_auth = true;
  return writePair("client", orThrow(kube_emu::issueCert(ca, req)));
}

CertFiles TestPki::makeServerCert(const std::vector<std::string>& names, bool signed_by_other_ca) {
  const kube_emu::CertAndKey ca{
      readFile(signed_by_other_ca ? paths_.other_ca_cert : paths_.ca_cert),
      readFile(signed_by_other_ca ? paths_.other_ca_key : paths_.ca_key)};
  kube_emu::CertRequest req;
  req.common_name = names.empty() ? "server" : names.front();
  for (const auto& n : names) {
    (kube_emu::isIpAddress(n) ? req.ip_addresses : req.dns_names).push_back(n);
  }
  return writePair("server", orThrow(kube_emu::issueCert(ca, req)));
}

}  // namespace tsk::testing
