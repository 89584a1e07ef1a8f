// Fuzz target: k8s::loadKubeconfig on arbitrary file contents.
//
// The input is written to <scratch>/kubeconfig/config; next to it lie a real CA certificate
// (pki/ca.crt), a client certificate and key (pki/client.crt, pki/client.key) and a token file
// (token), so seeds can reference them by relative path and reach the success paths. The low
// bit of a hash of the input allows insecure-skip-tls-verify (as the explicit agent flag does).
// Checks:
//   - it returns (no crash, no uncaught exception, no hang);
//   - a success is usable: an https:// server, a CA unless insecure was explicitly allowed,
//     insecure only when allowed, certificate and key given together;
//   - an error names the kubeconfig and never repeats a credential: the value of any `token`,
//     `client-key-data` or `password` field that appears once in the input is not in the
//     message (a credential must never reach a log line).
// Inputs that mention device or proc files are skipped: the loader reads whatever file a
// kubeconfig names (without a size limit), and /dev/zero would only measure that.
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "k8s/client.h"
#include "tests/fuzz/targets/fuzz_targets.h"
#include "tools/kube-emu/certgen.h"

namespace tsk::fuzz {
namespace {

// The directory the kubeconfig lives in, with the files it may reference.
class KubeconfigDir {
 public:
  KubeconfigDir() : dir_(scratchDir() + "/kubeconfig") {
    std::filesystem::create_directories(dir_);
    if (!kube_emu::writeCertSet(dir_ + "/pki", {})) fuzzFailure("cannot generate test certs");
    std::ofstream(dir_ + "/token") << "fuzz-token-from-file\n";
  }
  std::string configPath() const { return dir_ + "/config"; }

 private:
  std::string dir_;
};

bool mentionsSpecialFiles(std::string_view text) {
  for (std::string_view bad : {"/dev", "/proc", "/sys", "\\x", "\\u", "\\U", "\\/"}) {
    if (text.find(bad) != std::string_view::npos) return true;
  }
  return false;
}

size_t occurrences(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string_view::npos;
       pos = text.find(what, pos + 1)) {
    ++n;
  }
  return n;
}

// Scalar values of credential fields anywhere in the document.
void collectCredentials(const YAML::Node& node, std::vector<std::string>& out, int depth = 0) {
  if (depth > 32) return;
  if (node.IsMap()) {
    for (const auto& kv : node) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
      if ((key == "token" || key == "client-key-data" || key == "password") &&
          kv.second.IsScalar()) {
        out.push_back(kv.second.Scalar());
      }
      collectCredentials(kv.second, out, depth + 1);
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) collectCredentials(item, out, depth + 1);
  }
}

std::vector<std::string> credentialsIn(std::string_view text) {
  std::vector<std::string> creds;
  try {
    collectCredentials(YAML::Load(std::string(text)), creds);
  } catch (const YAML::Exception&) {
  }
  return creds;
}

void writeConfig(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

}  // namespace

int kubeconfigOneInput(const uint8_t* data, size_t size) {
  static const KubeconfigDir dir;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (mentionsSpecialFiles(text)) return 0;
  writeConfig(dir.configPath(), text);
  const bool allow_insecure = (SplitRandom(text).next() & 1) != 0;
  const auto cfg = k8s::loadKubeconfig(dir.configPath(), "", allow_insecure);
  if (cfg) {
    if (cfg->server.rfind("https://", 0) != 0) fuzzFailure("accepted a non-https server");
    if (cfg->insecure_skip_verify && !allow_insecure) {
      fuzzFailure("insecure-skip-tls-verify accepted without the explicit flag");
    }
    if (!cfg->insecure_skip_verify && cfg->ca_pem.empty()) {
      fuzzFailure("accepted a cluster without a CA (would fall back to nothing or system roots)");
    }
    if (cfg->client_cert_pem.empty() != cfg->client_key_pem.empty()) {
      fuzzFailure("client certificate without key, or key without certificate");
    }
    if (cfg->namespace_name.empty()) fuzzFailure("empty namespace (should default to default)");
    return 0;
  }
  const std::string& message = cfg.error().message;
  if (message.find("kubeconfig") == std::string::npos) {
    fuzzFailure("error does not name the kubeconfig: " + message);
  }
  // Anchors/aliases can make a credential another field's value too: no verdict then.
  if (text.find('&') != std::string_view::npos) return 0;
  for (const std::string& cred : credentialsIn(text)) {
    if (cred.size() < 8 || occurrences(text, cred) != 1 ||
        message.find(cred) == std::string::npos) {
      continue;
    }
    // The fuzzer learns the message's own wording; a leak is a credential that shows up only
    // because it was the credential: replace its value and load again.
    std::string variant(text);
    variant.replace(variant.find(cred), cred.size(), std::string(cred.size(), 'Q'));
    writeConfig(dir.configPath(), variant);
    const auto again = k8s::loadKubeconfig(dir.configPath(), "", allow_insecure);
    if (again || again.error().message.find(cred) == std::string::npos) {
      fuzzFailure("error message repeats a credential: " + message);
    }
  }
  return 0;
}

}  // namespace tsk::fuzz
