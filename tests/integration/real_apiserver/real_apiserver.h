#pragma once
// Test support for the suite that runs against a real kube-apiserver + etcd started by
// scripts/real-apiserver/start.sh (ctest starts it once, as the `real_apiserver` fixture).
//
//   auto server = RealApiServer::load();          // reads DIR/env; fails the test if absent
//   Kubectl kubectl(server->admin_kubeconfig, server->kubectl);  // kubectl v1.37.2, as admin
//   auto out = kubectl.run({"get", "secret", "x", "-n", ns, "-o", "json"});
//   TempDir dir;                                  // tests/support/util/temp_dir.h
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "tests/support/util/temp_dir.h"

namespace tsk::testing {

// What start.sh wrote into DIR/env.
struct RealApiServer {
  std::string url;  // https://127.0.0.1:PORT
  std::string host;
  std::string port;
  std::string ca_file;
  std::string admin_token_file;
  std::string admin_kubeconfig;       // token auth (system:masters)
  std::string admin_cert_kubeconfig;  // client-certificate auth (system:masters)
  // The kubectl built with the control plane (TSK_KUBECTL), else "kubectl" on PATH.
  std::string kubectl = "kubectl";

  // Reads the env file named by $TSK_REAL_APISERVER_ENV, else `default_env_file`. The error
  // says how to start the server.
  static Result<RealApiServer> load(const std::string& default_env_file);
};

struct CommandOutput {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs argv[0] (looked up on PATH) with argv, without a shell; waits for it to exit.
CommandOutput runCommand(const std::vector<std::string>& argv,
                         const std::optional<std::string>& stdin_text = std::nullopt);

// Runs the real kubectl (`kubectl`: a path, or a name looked up on PATH) with a fixed
// kubeconfig. Arguments are passed verbatim (no shell).
class Kubectl {
 public:
  explicit Kubectl(std::string kubeconfig, std::string kubectl = "kubectl")
      : kubeconfig_(std::move(kubeconfig)), kubectl_(std::move(kubectl)) {}
  // `stdin_text`, when given, is fed to kubectl's standard input (for `apply -f -`).
  CommandOutput run(const std::vector<std::string>& args,
                    const std::optional<std::string>& stdin_text = std::nullopt) const;

 private:
  std::string kubeconfig_;
  std::string kubectl_;
};

std::string readFile(const std::filesystem::path& path);
// Writes via a temporary file and rename(2), as the kubelet swaps projected token files.
void writeFileAtomically(const std::filesystem::path& path, const std::string& content);
// A namespace name nobody used before: "tsk-<hint>-<random hex>", a valid DNS label.
std::string uniqueNamespace(const std::string& hint);
std::string base64Decode(const std::string& in);

}  // namespace tsk::testing
