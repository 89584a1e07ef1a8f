#include "tools/kube-emu/certgen.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

namespace tsk::kube_emu {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PKeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;

void freeGeneralNames(GENERAL_NAMES* names) {
  GENERAL_NAMES_free(names);
}
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, freeGeneralNames>>;

std::string opensslError(const std::string& what) {
  std::string msg = "certificate generation failed: " + what;
  if (const unsigned long code = ERR_get_error(); code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    msg += ": ";
    msg += buf;
  }
  ERR_clear_error();
  return msg;
}

PKeyPtr makeKey() {
  return PKeyPtr(EVP_EC_gen("P-256"));
}

std::string keyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return {};
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string certToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

bool addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

bool addSubjectAltNames(X509* cert, const CertRequest& request) {
  if (request.dns_names.empty() && request.ip_addresses.empty()) return true;
  GeneralNamesPtr names(GENERAL_NAMES_new());
  if (!names) return false;
  for (const auto& dns : request.dns_names) {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    if (!gn || !s || ASN1_STRING_set(s, dns.data(), static_cast<int>(dns.size())) != 1) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(s);
      return false;
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, s);
    sk_GENERAL_NAME_push(names.get(), gn);
  }
  for (const auto& ip : request.ip_addresses) {
    ASN1_OCTET_STRING* addr = a2i_IPADDRESS(ip.c_str());
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (!addr || !gn) {
      ASN1_OCTET_STRING_free(addr);
      GENERAL_NAME_free(gn);
      return false;
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, addr);
    sk_GENERAL_NAME_push(names.get(), gn);
  }
  return X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) == 1;
}

bool setSubject(X509* cert, const std::string& common_name,
                const std::vector<std::string>& organizations) {
  X509_NAME* name = X509_get_subject_name(cert);
  for (const auto& org : organizations) {
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1,
                                   0) != 1)
      return false;
  }
  return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                    -1, 0) == 1;
}

bool setSerialAndValidity(X509* cert, int valid_days) {
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) return false;
  serial_bytes[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
  if (!bn) return false;
  const bool ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
  BN_free(bn);
  // Backdated an hour so that small clock differences never make a fresh certificate invalid.
  return ok && X509_set_version(cert, 2) == 1 &&
         X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != nullptr &&
         X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * valid_days) != nullptr;
}

Result<PKeyPtr> readKey(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PKeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return Error{opensslError("cannot read the CA private key")};
  return key;
}

Result<X509Ptr> readCert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return Error{opensslError("cannot read the CA certificate")};
  return cert;
}

}  // namespace

bool isIpAddress(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

Result<CertAndKey> makeCa(const std::string& common_name, int valid_days) {
  PKeyPtr key = makeKey();
  X509Ptr cert(X509_new());
  if (!key || !cert) return Error{opensslError("cannot allocate the CA key")};
  if (!setSerialAndValidity(cert.get(), valid_days) || !setSubject(cert.get(), common_name, {}) ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1 ||
      X509_set_pubkey(cert.get(), key.get()) != 1 ||
      !addExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !addExtension(cert.get(), cert.get(), NID_key_usage,
                    "critical,keyCertSign,cRLSign,digitalSignature") ||
      !addExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash") ||
      X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return Error{opensslError("cannot build the CA certificate")};
  }
  return CertAndKey{certToPem(cert.get()), keyToPem(key.get())};
}

Result<CertAndKey> issueCert(const CertAndKey& ca, const CertRequest& request) {
  auto ca_key = readKey(ca.key_pem);
  if (!ca_key) return ca_key.error();
  auto ca_cert = readCert(ca.cert_pem);
  if (!ca_cert) return ca_cert.error();
  PKeyPtr key = makeKey();
  X509Ptr cert(X509_new());
  if (!key || !cert) return Error{opensslError("cannot allocate the key")};
  std::string usages;
  if (request.server_auth) usages = "serverAuth";
  if (request.client_auth) usages += usages.empty() ? "clientAuth" : ",clientAuth";
  if (!setSerialAndValidity(cert.get(), request.valid_days) ||
      !setSubject(cert.get(), request.common_name, request.organizations) ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert->get())) != 1 ||
      X509_set_pubkey(cert.get(), key.get()) != 1 ||
      !addExtension(cert.get(), ca_cert->get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !addExtension(cert.get(), ca_cert->get(), NID_key_usage, "critical,digitalSignature") ||
      (!usages.empty() &&
       !addExtension(cert.get(), ca_cert->get(), NID_ext_key_usage, usages.c_str())) ||
      !addExtension(cert.get(), ca_cert->get(), NID_authority_key_identifier, "keyid:always") ||
      !addSubjectAltNames(cert.get(), request) ||
      X509_sign(cert.get(), ca_key->get(), EVP_sha256()) == 0) {
    return Error{opensslError("cannot build the certificate for \"" + request.common_name + "\"")};
  }
  return CertAndKey{certToPem(cert.get()), keyToPem(key.get())};
}

Status writeFileAtomically(const std::string& path, const std::string& contents, unsigned mode) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return Error{"cannot write " + path + ": " + std::strerror(errno) +
                 " (check that the directory exists and is writable)"};
  }
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string err = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Error{"cannot write " + path + ": " + err};
    }
    written += static_cast<size_t>(n);
  }
  ::fchmod(fd, mode);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Error{"cannot rename " + tmp + " to " + path + ": " + err};
  }
  return {};
}

Result<CertSetPaths> writeCertSet(const std::string& dir,
                                  const std::vector<std::string>& extra_server_names,
                                  const std::string& client_user) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{"cannot create directory " + dir + ": " + ec.message()};
  const std::string abs = std::filesystem::absolute(dir).lexically_normal().string();
  CertSetPaths p;
  p.dir = abs;
  p.ca_cert = abs + "/ca.crt";
  p.ca_key = abs + "/ca.key";
  p.server_cert = abs + "/server.crt";
  p.server_key = abs + "/server.key";
  p.client_cert = abs + "/client.crt";
  p.client_key = abs + "/client.key";
  p.other_ca_cert = abs + "/other-ca.crt";
  p.other_ca_key = abs + "/other-ca.key";
  p.wrong_host_cert = abs + "/wrong-host.crt";
  p.wrong_host_key = abs + "/wrong-host.key";

  auto ca = makeCa("kube-emu CA");
  if (!ca) return ca.error();
  auto other_ca = makeCa("unrelated CA");
  if (!other_ca) return other_ca.error();
  CertRequest server_req;
  server_req.common_name = "kube-emu";
  server_req.dns_names = {"localhost"};
  server_req.ip_addresses = {"127.0.0.1", "::1"};
  for (const auto& name : extra_server_names) {
    (isIpAddress(name) ? server_req.ip_addresses : server_req.dns_names).push_back(name);
  }
  auto server = issueCert(*ca, server_req);
  if (!server) return server.error();
  CertRequest client_req;
  client_req.common_name = client_user;
  client_req.organizations = {"system:masters"};
  client_req.server_auth = false;
  client_req.client_auth = true;
  auto client = issueCert(*ca, client_req);
  if (!client) return client.error();
  CertRequest wrong_req;
  wrong_req.common_name = "wrong.example";
  wrong_req.dns_names = {"wrong.example"};
  auto wrong_host = issueCert(*ca, wrong_req);
  if (!wrong_host) return wrong_host.error();

  const std::pair<const std::string*, const std::string*> files[] = {
      {&p.ca_cert, &ca->cert_pem},
      {&p.other_ca_cert, &other_ca->cert_pem},
      {&p.server_cert, &server->cert_pem},
      {&p.client_cert, &client->cert_pem},
      {&p.wrong_host_cert, &wrong_host->cert_pem},
  };
  for (const auto& [path, pem] : files) {
    if (auto st = writeFileAtomically(*path, *pem, 0644); !st) return st.error();
  }
  const std::pair<const std::string*, const std::string*> keys[] = {
      {&p.ca_key, &ca->key_pem},
      {&p.other_ca_key, &other_ca->key_pem},
      {&p.server_key, &server->key_pem},
      {&p.client_key, &client->key_pem},
      {&p.wrong_host_key, &wrong_host->key_pem},
  };
  for (const auto& [path, pem] : keys) {
    if (auto st = writeFileAtomically(*path, *pem, 0600); !st) return st.error();
  }
  return p;
}

}  // namespace tsk::kube_emu
