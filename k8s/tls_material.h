#pragma once
// TlsMaterial: the parsed PEM of a ClusterConfig: the trust roots (the ONLY certificates the
// server chain may end at: no system roots are ever added) and an optional client certificate
// chain and key. install() makes an SSL_CTX verify the peer during the handshake
// (SSL_VERIFY_PEER) against these roots and the expected server name (RFC 6125 matching by
// OpenSSL), so a bad certificate aborts the handshake before any byte of the request is sent.
// The reason of the last failure is kept for the error message (takeVerifyError()).
//
//   auto tls = TlsMaterial::fromPem(cfg.ca_pem, cfg.client_cert_pem, cfg.client_key_pem);
//   if (!tls) return tls.error();
//   tls->install(ssl_ctx, "kubernetes.default.svc");
//   ... handshake fails ... describeVerifyFailure(tls->takeVerifyError(), name);
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tsk::k8s {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct EvpPkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;

// Parses every certificate in a PEM bundle. Error if there is none or one is malformed; the
// message starts with `what` ("certificate-authority-data", "ca.crt").
Result<X509StackPtr> parseCertificates(std::string_view pem, std::string_view what);
// Parses a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
Result<EvpPkeyPtr> parsePrivateKey(std::string_view pem, std::string_view what);

class TlsMaterial {
 public:
  // ca_pem may be empty only if the caller will not verify (insecure); cert and key come together.
  static Result<TlsMaterial> fromPem(std::string_view ca_pem, std::string_view client_cert_pem,
                                     std::string_view client_key_pem);

  bool hasClientCertificate() const { return client_cert_ != nullptr; }
  X509* clientCertificate() const { return client_cert_.get(); }
  EVP_PKEY* clientKey() const { return client_key_.get(); }

  // Makes `ctx` require and verify the server certificate against our roots only and check
  // `server_name` (a DNS name or an IP literal, without brackets), and adds the client
  // certificate's intermediates. The TlsMaterial must outlive the context and not move.
  Status install(SSL_CTX* ctx, const std::string& server_name) const;
  // The X509_V_ERR code of the last failed verification since the previous call (X509_V_OK if
  // none), and resets it.
  long takeVerifyError() const { return last_verify_error_->exchange(X509_V_OK); }

 private:
  static int verifyChain(X509_STORE_CTX* store_ctx, void* self);

  std::unique_ptr<std::atomic<long>> last_verify_error_ =
      std::make_unique<std::atomic<long>>(X509_V_OK);
  X509StackPtr roots_;
  X509Ptr client_cert_;
  X509StackPtr client_chain_;
  EvpPkeyPtr client_key_;
};

// "certificate signed by unknown authority (OpenSSL: unable to get local issuer certificate)",
// "host name mismatch: the certificate is not valid for \"x\"", ... for an X509_V_ERR code.
std::string describeVerifyFailure(long verify_result, std::string_view server_name);

}  // namespace tsk::k8s
