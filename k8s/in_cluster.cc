// loadInCluster: the API server address from the service environment variables and the
// credentials kubelet mounts into every pod (token, ca.crt, namespace).
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/read_file.h"
#include "common/text.h"
#include "k8s/client.h"
#include "k8s/file_limits.h"
#include "k8s/tls_material.h"
#include "k8s/token_source.h"

namespace tsk::k8s {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(trimSpace(v)) : "";
}

bool validPort(const std::string& port) {
  if (port.empty() || port.size() > 5) return false;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  const int n = std::stoi(port);
  return n >= 1 && n <= 65535;
}

}  // namespace

Result<ClusterConfig> loadInCluster(std::string_view sa_dir_view) {
  const std::string sa_dir(sa_dir_view);
  std::string host = env("KUBERNETES_SERVICE_HOST");
  if (host.empty()) {
    return Error{
        "not running in a cluster: KUBERNETES_SERVICE_HOST is unset; pass --kubeconfig (or set "
        "KUBECONFIG) to run outside Kubernetes"};
  }
  const std::string port = env("KUBERNETES_SERVICE_PORT");
  if (port.empty()) {
    return Error{
        "KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is unset; set both (kubelet "
        "does this in every pod) or pass --kubeconfig"};
  }
  if (!validPort(port)) {
    return Error{"KUBERNETES_SERVICE_PORT=\"" + port + "\" is not a port number (1-65535)"};
  }
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";

  ClusterConfig cfg;
  cfg.server = "https://" + host + ":" + port;
  cfg.source = "in-cluster service account " + sa_dir;

  cfg.token_file = sa_dir + "/token";
  auto token = readFileContents(cfg.token_file, kMaxTokenFileBytes);
  if (!token) {
    return Error{"service-account token: " + token.error().message +
                 "; the pod has no service-account token mounted (automountServiceAccountToken: "
                 "false?): mount one, or pass --kubeconfig"};
  }
  if (trimSpace(*token).empty()) {
    return Error{"service-account token " + cfg.token_file + " is empty; check the token mount"};
  }
  if (auto valid = validateToken(trimSpace(*token), "the service-account token " + cfg.token_file);
      !valid) {
    return valid.error();
  }

  const std::string ca_path = sa_dir + "/ca.crt";
  auto ca = readFileContents(ca_path, kMaxConfigFileBytes);
  if (!ca) {
    return Error{"service-account CA: " + ca.error().message +
                 "; the API server cannot be verified without it: check the service-account "
                 "volume, or pass --kubeconfig"};
  }
  auto certs = parseCertificates(*ca, ca_path);
  if (!certs) return certs.error();
  cfg.ca_pem = std::move(ca).value();

  // A missing namespace file is fine here (the caller may name the namespace instead); one that
  // is there but cannot be read (a directory, a device, too large) is a broken mount.
  const std::string ns_path = sa_dir + "/namespace";
  std::error_code ec;
  if (std::filesystem::exists(ns_path, ec)) {
    auto ns = readFileContents(ns_path, kMaxTokenFileBytes);
    if (!ns) {
      return Error{"service-account namespace: " + ns.error().message +
                   "; check the service-account volume"};
    }
    cfg.namespace_name = std::string(trimSpace(*ns));
  }
  return cfg;
}

}  // namespace tsk::k8s
