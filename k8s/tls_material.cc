#include "k8s/tls_material.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

namespace tsk::k8s {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr memoryBio(std::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::string lastOpenSslError() {
  const unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) return "no PEM data";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

bool isIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

Result<X509StackPtr> parseCertificates(std::string_view pem, std::string_view what) {
  X509StackPtr certs(sk_X509_new_null());
  auto bio = memoryBio(pem);
  ERR_clear_error();
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(certs.get(), cert);
  }
  // Reading stops with PEM_R_NO_START_LINE at the end of the data; anything else is an error.
  const unsigned long err = ERR_peek_last_error();
  const bool clean_end =
      ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  if (err != 0 && !clean_end) {
    return Error{std::string(what) + ": malformed PEM certificate (" + lastOpenSslError() +
                 "); expected one or more \"-----BEGIN CERTIFICATE-----\" blocks"};
  }
  ERR_clear_error();
  if (sk_X509_num(certs.get()) == 0) {
    return Error{std::string(what) +
                 ": no PEM certificate found; expected one or more \"-----BEGIN CERTIFICATE-----\" "
                 "blocks"};
  }
  return certs;
}

Result<EvpPkeyPtr> parsePrivateKey(std::string_view pem, std::string_view what) {
  auto bio = memoryBio(pem);
  ERR_clear_error();
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return Error{std::string(what) + ": no usable PEM private key (" + lastOpenSslError() +
                 "); expected an unencrypted \"-----BEGIN ... PRIVATE KEY-----\" block"};
  }
  return key;
}

Result<TlsMaterial> TlsMaterial::fromPem(std::string_view ca_pem, std::string_view client_cert_pem,
                                         std::string_view client_key_pem) {
  TlsMaterial m;
  if (!ca_pem.empty()) {
    auto roots = parseCertificates(ca_pem, "CA certificate");
    if (!roots) return roots.error();
    m.roots_ = std::move(roots).value();
  }
  if (client_cert_pem.empty() != client_key_pem.empty()) {
    return Error{"a client certificate needs both the certificate and its key; one is missing"};
  }
  if (!client_cert_pem.empty()) {
    auto chain = parseCertificates(client_cert_pem, "client certificate");
    if (!chain) return chain.error();
    auto key = parsePrivateKey(client_key_pem, "client key");
    if (!key) return key.error();
    m.client_cert_.reset(sk_X509_shift(chain->get()));
    m.client_chain_ = std::move(chain).value();  // the intermediates, if any
    m.client_key_ = std::move(key).value();
    if (X509_check_private_key(m.client_cert_.get(), m.client_key_.get()) != 1) {
      ERR_clear_error();
      return Error{"the client key does not belong to the client certificate"};
    }
  }
  return m;
}

int TlsMaterial::verifyChain(X509_STORE_CTX* store_ctx, void* self) {
  // Replaces the SSL_CTX's store by our roots, like Go's RootCAs: any certificate in the bundle
  // is a trust anchor, intermediate or not.
  const auto* material = static_cast<const TlsMaterial*>(self);
  X509_STORE_CTX_set0_trusted_stack(store_ctx, material->roots_.get());
  X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(store_ctx), X509_V_FLAG_PARTIAL_CHAIN);
  const int ok = X509_verify_cert(store_ctx);
  if (ok != 1) material->last_verify_error_->store(X509_STORE_CTX_get_error(store_ctx));
  return ok;
}

Status TlsMaterial::install(SSL_CTX* ctx, const std::string& server_name) const {
  if (!roots_) return Error{"no CA certificate to verify the API server with"};
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  const int ok = isIpLiteral(server_name)
                     ? X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str())
                     : X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), server_name.size());
  if (ok != 1) {
    ERR_clear_error();
    return Error{"cannot verify the API server name \"" + server_name +
                 "\": not a valid host name"};
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_cert_verify_callback(ctx, &TlsMaterial::verifyChain, const_cast<TlsMaterial*>(this));
  for (int i = 0; client_chain_ && i < sk_X509_num(client_chain_.get()); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(client_chain_.get(), i)) != 1) {
      return Error{"cannot use the client certificate chain: " + lastOpenSslError()};
    }
  }
  return {};
}

std::string describeVerifyFailure(long verify_result, std::string_view server_name) {
  const std::string openssl =
      std::string(" (OpenSSL: ") + X509_verify_cert_error_string(verify_result) + ")";
  switch (verify_result) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return "host name mismatch: the server certificate is not valid for \"" +
             std::string(server_name) +
             "\"; check the server address (or set tls-server-name to a name in the certificate)";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return "certificate signed by unknown authority" + openssl +
             "; check that the CA (ca.crt, or the kubeconfig certificate-authority) is the one "
             "that signed the API server's certificate";
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "the server certificate is expired or not yet valid" + openssl +
             "; check the clock and the API server's certificate";
    default:
      return "the server certificate was rejected" + openssl +
             "; check the CA and the API server's certificate";
  }
}

}  // namespace tsk::k8s
