// loadKubeconfig: the subset of kubeconfig the agent supports (see client.h). Errors name the
// file, the field path (e.g. users["admin"].user.exec) and, where yaml-cpp knows it, the line.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/read_file.h"
#include "k8s/base64.h"
#include "k8s/client.h"
#include "k8s/file_limits.h"
#include "k8s/tls_material.h"
#include "k8s/token_source.h"

namespace tsk::k8s {
namespace {

namespace fs = std::filesystem;

std::string quote(const std::string& s) {
  return "\"" + s + "\"";
}

class KubeconfigParser {
 public:
  KubeconfigParser(std::string path, bool allow_insecure)
      : path_(std::move(path)), allow_insecure_(allow_insecure) {
    dir_ = fs::path(path_).parent_path();
  }

  Result<ClusterConfig> parse(const std::string& wanted_context) {
    auto text = readFileContents(path_, kMaxConfigFileBytes);
    if (!text) {
      return Error{"kubeconfig: " + text.error().message +
                   "; pass --kubeconfig with a readable file, or unset KUBECONFIG to run "
                   "in-cluster"};
    }
    YAML::Node root;
    try {
      root = YAML::Load(*text);
    } catch (const YAML::Exception& e) {
      return Error{"kubeconfig " + path_ + ": not valid YAML" + lineOf(e.mark) + ": " + e.msg};
    }
    if (!root.IsMap()) {
      return Error{"kubeconfig " + path_ +
                   (root.IsNull()
                        ? std::string(" is empty")
                        : ": expected a mapping with clusters, users and contexts" + lineOf(root))};
    }
    try {
      return parseRoot(root, wanted_context);
    } catch (const YAML::Exception& e) {  // defensive: a conversion we did not guard
      return Error{"kubeconfig " + path_ + ": " + e.msg + lineOf(e.mark)};
    }
  }

 private:
  static std::string lineOf(const YAML::Mark& mark) {
    if (mark.is_null() || mark.line < 0) return "";
    return " (line " + std::to_string(mark.line + 1) + ")";
  }

  // Mark() throws on a node that is not in the document, so check first.
  static std::string lineOf(const YAML::Node& n) { return n.IsDefined() ? lineOf(n.Mark()) : ""; }

  Error fieldError(const std::string& field, const YAML::Node& at, const std::string& problem) {
    return Error{"kubeconfig " + path_ + ": " + field + lineOf(at) + ": " + problem};
  }

  static bool present(const YAML::Node& n) { return n.IsDefined() && !n.IsNull(); }

  // A string field, absent/null = nullopt; a non-scalar is an error.
  Result<std::optional<std::string>> optString(const YAML::Node& parent, const std::string& key,
                                               const std::string& field) {
    const YAML::Node n = parent[key];
    if (!present(n)) return std::optional<std::string>();
    if (!n.IsScalar()) return fieldError(field, n, "expected a string");
    return std::optional<std::string>(n.Scalar());
  }

  Result<bool> optBool(const YAML::Node& parent, const std::string& key, const std::string& field) {
    const YAML::Node n = parent[key];
    if (!present(n)) return false;
    bool value = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, value)) {
      return fieldError(field, n, "expected true or false");
    }
    return value;
  }

  // Finds the entry called `name` in a named list (clusters, users, contexts) and returns its
  // inner map (`cluster`, `user`, `context`).
  Result<YAML::Node> findNamed(const YAML::Node& root, const std::string& list,
                               const std::string& inner, const std::string& name,
                               const YAML::Node& referenced_at, const std::string& referenced_by) {
    const YAML::Node entries = root[list];
    if (present(entries) && !entries.IsSequence()) {
      return fieldError(list, entries, "expected a list of {name, " + inner + "} entries");
    }
    std::vector<std::string> names;
    for (size_t i = 0; present(entries) && i < entries.size(); ++i) {
      const YAML::Node entry = entries[i];
      const std::string where = list + "[" + std::to_string(i) + "]";
      if (!entry.IsMap())
        return fieldError(where, entry, "expected a mapping with name and " + inner);
      auto entry_name = optString(entry, "name", where + ".name");
      if (!entry_name) return entry_name.error();
      if (!*entry_name) return fieldError(where + ".name", entry, "missing");
      if (**entry_name != name) {
        names.push_back(**entry_name);
        continue;
      }
      const YAML::Node body = entry[inner];
      const std::string body_field = list + "[" + quote(name) + "]." + inner;
      if (!present(body)) return fieldError(body_field, entry, "missing");
      if (!body.IsMap()) return fieldError(body_field, body, "expected a mapping");
      return body;
    }
    std::string available;
    for (const auto& n : names) available += (available.empty() ? "" : ", ") + n;
    return fieldError(
        referenced_by, referenced_at,
        "no entry named " + quote(name) + " in " + list +
            (available.empty() ? " (the list is empty)" : " (available: " + available + ")"));
  }

  std::string resolvePath(const std::string& p) const {
    if (p.empty() || fs::path(p).is_absolute()) return p;
    return (dir_ / p).lexically_normal().string();
  }

  // `<key>` names a file (relative to the kubeconfig's directory) and `<key>-data` holds the
  // base64 content; returns the content of whichever is set ("" if neither).
  Result<std::string> fileOrData(const YAML::Node& parent, const std::string& key,
                                 const std::string& field_prefix, std::string* file_out = nullptr) {
    auto file = optString(parent, key, field_prefix + key);
    if (!file) return file.error();
    auto data = optString(parent, key + "-data", field_prefix + key + "-data");
    if (!data) return data.error();
    if (*data && !(*data)->empty()) {
      auto decoded = base64Decode(**data);
      if (!decoded) {
        return fieldError(field_prefix + key + "-data", parent[key + "-data"],
                          "not valid base64 (it holds the PEM file, base64-encoded)");
      }
      return std::move(*decoded);
    }
    if (*file && !(*file)->empty()) {
      const std::string resolved = resolvePath(**file);
      if (file_out) *file_out = resolved;
      auto content = readFileContents(resolved, kMaxConfigFileBytes);
      if (!content) return fieldError(field_prefix + key, parent[key], content.error().message);
      return std::move(content).value();
    }
    return std::string();
  }

  Result<ClusterConfig> parseRoot(const YAML::Node& root, const std::string& wanted_context) {
    std::string context_name = wanted_context;
    YAML::Node context_ref = root;
    std::string context_ref_field = "context";
    if (context_name.empty()) {
      auto current = optString(root, "current-context", "current-context");
      if (!current) return current.error();
      if (!*current || (*current)->empty()) {
        return fieldError("current-context", root,
                          "not set; name a context (--context NAME, or TS_KUBE_CONTEXT) or "
                          "run `kubectl config use-context NAME`");
      }
      context_name = **current;
      context_ref.reset(root["current-context"]);  // reset: `=` would overwrite root itself
      context_ref_field = "current-context";
    }
    auto context =
        findNamed(root, "contexts", "context", context_name, context_ref, context_ref_field);
    if (!context) return context.error();
    const std::string ctx_field = "contexts[" + quote(context_name) + "].context.";

    ClusterConfig cfg;
    auto cluster_name = optString(*context, "cluster", ctx_field + "cluster");
    if (!cluster_name) return cluster_name.error();
    if (!*cluster_name) return fieldError(ctx_field + "cluster", *context, "missing");
    auto ns = optString(*context, "namespace", ctx_field + "namespace");
    if (!ns) return ns.error();
    cfg.namespace_name = (*ns && !(*ns)->empty()) ? **ns : "default";

    auto status = parseCluster(root, **cluster_name, (*context)["cluster"], ctx_field, cfg);
    if (!status) return status.error();
    auto user_name = optString(*context, "user", ctx_field + "user");
    if (!user_name) return user_name.error();
    if (*user_name && !(*user_name)->empty()) {
      status = parseUser(root, **user_name, (*context)["user"], ctx_field, cfg);
      if (!status) return status.error();
    }
    return cfg;
  }

  Status parseCluster(const YAML::Node& root, const std::string& name, const YAML::Node& ref,
                      const std::string& ctx_field, ClusterConfig& cfg) {
    auto cluster = findNamed(root, "clusters", "cluster", name, ref, ctx_field + "cluster");
    if (!cluster) return cluster.error();
    const std::string f = "clusters[" + quote(name) + "].cluster.";

    auto server = optString(*cluster, "server", f + "server");
    if (!server) return server.error();
    if (!*server || (*server)->empty()) return fieldError(f + "server", *cluster, "missing");
    std::string url = **server;
    while (!url.empty() && url.back() == '/') url.pop_back();
    if (url.rfind("https://", 0) != 0 || url.size() <= 8) {
      return fieldError(f + "server", (*cluster)["server"],
                        quote(**server) +
                            " is not an https:// URL; the agent only talks to the API server over "
                            "verified TLS");
    }
    cfg.server = url;

    for (const char* unsupported : {"proxy-url"}) {
      if (present((*cluster)[unsupported])) {
        return fieldError(f + unsupported, (*cluster)[unsupported],
                          "not supported by the agent; remove it (the agent connects directly)");
      }
    }
    auto tls_name = optString(*cluster, "tls-server-name", f + "tls-server-name");
    if (!tls_name) return tls_name.error();
    if (*tls_name) cfg.tls_server_name = **tls_name;

    auto ca = fileOrData(*cluster, "certificate-authority", f);
    if (!ca) return ca.error();
    cfg.ca_pem = std::move(ca).value();
    auto insecure = optBool(*cluster, "insecure-skip-tls-verify", f + "insecure-skip-tls-verify");
    if (!insecure) return insecure.error();
    if (*insecure) {
      const YAML::Node at = (*cluster)["insecure-skip-tls-verify"];
      if (!cfg.ca_pem.empty()) {
        return fieldError(f + "insecure-skip-tls-verify", at,
                          "cannot be combined with a certificate-authority; remove one of them");
      }
      if (!allow_insecure_) {
        return fieldError(f + "insecure-skip-tls-verify", at,
                          "the agent refuses to talk to an API server it cannot verify; set "
                          "certificate-authority(-data) instead, or explicitly allow insecure TLS "
                          "(--insecure-skip-tls-verify, never in production)");
      }
      cfg.insecure_skip_verify = true;
      return {};
    }
    if (cfg.ca_pem.empty()) {
      return fieldError(f + "certificate-authority", *cluster,
                        "missing: set certificate-authority or certificate-authority-data; the "
                        "agent trusts only the cluster's CA, never the system roots");
    }
    const std::string which = present((*cluster)["certificate-authority-data"])
                                  ? "certificate-authority-data"
                                  : "certificate-authority";
    auto certs = parseCertificates(cfg.ca_pem, "the CA");
    if (!certs) return fieldError(f + which, (*cluster)[which], certs.error().message);
    return {};
  }

  Status parseUser(const YAML::Node& root, const std::string& name, const YAML::Node& ref,
                   const std::string& ctx_field, ClusterConfig& cfg) {
    auto user = findNamed(root, "users", "user", name, ref, ctx_field + "user");
    if (!user) return user.error();
    const std::string f = "users[" + quote(name) + "].user.";

    struct Unsupported {
      const char* key;
      const char* why;
    };
    for (const Unsupported& u :
         {Unsupported{"exec", "exec credential plugins are not supported"},
          Unsupported{"auth-provider", "auth-provider plugins are not supported"},
          Unsupported{"username", "basic authentication is not supported"},
          Unsupported{"password", "basic authentication is not supported"},
          Unsupported{"as", "impersonation is not supported"}}) {
      if (present((*user)[u.key])) {
        return fieldError(f + u.key, (*user)[u.key],
                          std::string(u.why) +
                              "; give the agent a user with token, tokenFile or "
                              "client-certificate/client-key (e.g. a service-account token)");
      }
    }
    auto token = optString(*user, "token", f + "token");
    if (!token) return token.error();
    if (*token) {
      if (auto valid = validateToken(**token, "the kubeconfig's " + f + "token"); !valid) {
        return fieldError(f + "token", (*user)["token"], valid.error().message);
      }
      cfg.token = **token;
    }
    auto token_file = optString(*user, "tokenFile", f + "tokenFile");
    if (!token_file) return token_file.error();
    if (*token_file && !(*token_file)->empty()) {
      cfg.token_file = resolvePath(**token_file);
      auto readable = readFileContents(cfg.token_file, kMaxTokenFileBytes);
      if (!readable)
        return fieldError(f + "tokenFile", (*user)["tokenFile"], readable.error().message);
      // The check every later re-read makes (TokenSource), so a bad file fails at start.
      const auto first = readable->find_first_not_of(" \t\r\n");
      const auto last = readable->find_last_not_of(" \t\r\n");
      const std::string_view file_token =
          first == std::string::npos ? std::string_view()
                                     : std::string_view(*readable).substr(first, last - first + 1);
      if (auto valid = validateToken(file_token, "the token file " + cfg.token_file); !valid)
        return fieldError(f + "tokenFile", (*user)["tokenFile"], valid.error().message);
    }

    auto cert = fileOrData(*user, "client-certificate", f);
    if (!cert) return cert.error();
    auto key = fileOrData(*user, "client-key", f);
    if (!key) return key.error();
    if (cert->empty() != key->empty()) {
      const char* missing = cert->empty() ? "client-certificate" : "client-key";
      return fieldError(f + missing, *user,
                        "missing: client-certificate and client-key must be given together");
    }
    if (!cert->empty()) {
      auto check = TlsMaterial::fromPem("", *cert, *key);
      if (!check) return fieldError(f + "client-certificate", *user, check.error().message);
      cfg.client_cert_pem = std::move(cert).value();
      cfg.client_key_pem = std::move(key).value();
    }
    return {};
  }

  const std::string path_;
  const bool allow_insecure_;
  fs::path dir_;
};

}  // namespace

Result<std::string> pickKubeconfig(std::string_view list) {
  // kubectl (client-go clientcmd, NewDefaultClientConfigLoadingRules) splits KUBECONFIG on the
  // path-list separator, skips empty entries and files that do not exist, and merges the rest.
  // The agent reads one file: it takes the one listed file that exists, and says so otherwise.
  std::vector<std::string> entries, existing;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t colon = std::min(list.find(':', start), list.size());
    if (colon > start) entries.emplace_back(list.substr(start, colon - start));
    start = colon + 1;
  }
  if (entries.empty()) {
    return Error{"kubeconfig: \"" + std::string(list) +
                 "\" names no file (only empty ':'-separated entries); set KUBECONFIG or "
                 "--kubeconfig to a kubeconfig file, or unset it to run in-cluster"};
  }
  if (entries.size() == 1) return entries.front();  // a missing file is reported by the parser
  for (const auto& e : entries) {
    std::error_code ec;
    if (fs::exists(e, ec)) existing.push_back(e);
  }
  auto joined = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& e : v) out += (out.empty() ? "" : ", ") + e;
    return out;
  };
  if (existing.size() == 1) return existing.front();
  if (existing.empty()) {
    return Error{"kubeconfig: none of the files listed in \"" + std::string(list) + "\" exists (" +
                 joined(entries) +
                 "); set KUBECONFIG or --kubeconfig to an existing kubeconfig file"};
  }
  return Error{"kubeconfig: \"" + std::string(list) + "\" lists " +
               std::to_string(existing.size()) + " existing files (" + joined(existing) +
               "); the agent does not merge kubeconfigs as kubectl does: name exactly one "
               "(e.g. kubectl config view --flatten --minify > one.yaml)"};
}

Result<ClusterConfig> loadKubeconfig(const std::string& path, const std::string& context,
                                     bool allow_insecure_skip_verify) {
  if (path.empty()) return Error{"kubeconfig: no path given; pass --kubeconfig or set KUBECONFIG"};
  auto file = pickKubeconfig(path);
  if (!file) return file.error();
  auto cfg = KubeconfigParser(*file, allow_insecure_skip_verify).parse(context);
  if (cfg) cfg->source = "kubeconfig " + *file;
  return cfg;
}

}  // namespace tsk::k8s
