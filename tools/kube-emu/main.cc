// kube-emu: an HTTPS Kubernetes API-server emulator (Secrets, ConfigMaps) with
// bearer tokens, per-name RBAC, fault injection and a request log, for tests and the demo.
// Run with --help for the flags; README.md in this directory documents the control API.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/read_file.h"
#include "tools/kube-emu/certgen.h"
#include "tools/kube-emu/kube_emu.h"
#include "tools/kube-emu/object_rules.h"

namespace {

using tsk::Error;
using tsk::Result;
using tsk::Status;
namespace emu = tsk::kube_emu;

constexpr const char* kUsage = R"(usage: kube-emu [flags]

An HTTPS Kubernetes API-server emulator: core/v1 Secrets and ConfigMaps; GET, list,
POST, PUT, DELETE and PATCH (strategic-merge); bearer tokens and client certificates; per-name
RBAC; the discovery kubectl needs; fault injection and a request log.

Flags:
  --listen HOST:PORT         API listener (HTTPS). Default 127.0.0.1:0 (any free port).
  --cert FILE                Server certificate chain (PEM).
  --key FILE                 Server private key (PEM).
  --client-ca FILE           Accept client certificates signed by this CA (CN = user, O = groups).
  --token TOKEN=USER         Add one bearer token (repeatable).
  --rbac FILE                RBAC rules, JSON or YAML:
                               {adminUsers: [admin], rules: [{users: [u], verbs: [get, patch],
                                resources: [secrets], resourceNames: [x], namespaces: [ns]}]}
                             Without a rule nothing is allowed (except admin users and the
                             system:masters group).
  --allow-all-user NAME      This user may do anything (kubectl, setup). Repeatable.
  --control-addr HOST:PORT   Serve the plain-HTTP control API (faults, tokens, rbac, log, objects,
                             reset) here, e.g. 127.0.0.1:0. Off by default.
  --port-file FILE           Write the API port number to FILE once listening.
  --control-port-file FILE   Write the control port number to FILE once listening.
  --gen-certs DIR            Generate a CA, server, client and test certificates into DIR and
                             serve with DIR/server.crt, DIR/server.key, client CA DIR/ca.crt.
  --kubeconfig-out FILE      With --gen-certs: write a kubeconfig for this emulator: CA
                             DIR/ca.crt, the first token of an --allow-all-user, else the
                             generated admin client certificate.
  --threads N                Concurrent connections (default 16).
  --log-level LEVEL          debug (one line per request) or info (default).
  --help                     This text.

Prints `api: https://HOST:PORT` and `control: http://HOST:PORT` on stdout when ready, then serves
until SIGINT or SIGTERM.
)";

struct HostPort {
  std::string host;
  int port = 0;
};

Result<HostPort> parseHostPort(const std::string& flag, const std::string& s) {
  HostPort hp;
  std::string port;
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return Error{flag + ": expected [IPV6]:PORT, got \"" + s + "\""};
    }
    hp.host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const size_t colon = s.rfind(':');
    if (colon == std::string::npos) return Error{flag + ": expected HOST:PORT, got \"" + s + "\""};
    hp.host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  char* end = nullptr;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) {
    return Error{flag + ": the port must be 0..65535, got \"" + port + "\""};
  }
  hp.port = static_cast<int>(p);
  return hp;
}

Result<std::string> readFile(const std::string& flag, const std::string& path) {
  auto text = tsk::readFileContents(path, std::size_t{1} << 20);
  if (!text) return Error{flag + ": " + text.error().message};
  return text;
}

struct Config {
  emu::KubeEmuOptions opts;
  std::string port_file;
  std::string control_port_file;
  std::string gen_certs_dir;
  std::string kubeconfig_out;
  bool debug = false;
};

Result<Config> parseFlags(int argc, char** argv) {
  Config c;
  c.opts.listen_host = "127.0.0.1";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string flag = arg;
    std::string value;
    bool has_value = false;
    if (const size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    const auto take = [&]() -> Result<std::string> {
      if (has_value) return value;
      if (i + 1 >= argc) return Error{flag + " needs a value (see --help)"};
      return std::string(argv[++i]);
    };
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    static const std::set<std::string> kValueFlags = {
        "--listen",    "--cert",           "--key",          "--client-ca", "--token",
        "--rbac",      "--allow-all-user", "--control-addr", "--port-file", "--control-port-file",
        "--gen-certs", "--kubeconfig-out", "--threads",      "--log-level"};
    if (!kValueFlags.contains(flag)) return Error{"unknown flag " + flag + " (see --help)"};
    auto v = take();
    if (!v) return v.error();
    if (flag == "--listen") {
      auto hp = parseHostPort(flag, *v);
      if (!hp) return hp.error();
      c.opts.listen_host = hp->host;
      c.opts.listen_port = hp->port;
    } else if (flag == "--cert") {
      c.opts.cert_file = *v;
    } else if (flag == "--key") {
      c.opts.key_file = *v;
    } else if (flag == "--client-ca") {
      c.opts.client_ca_file = *v;
    } else if (flag == "--token") {
      const size_t eq = v->find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == v->size()) {
        return Error{"--token: expected TOKEN=USER, got \"" + *v + "\""};
      }
      c.opts.tokens.push_back({v->substr(0, eq), v->substr(eq + 1), {}});
    } else if (flag == "--rbac") {
      auto text = readFile(flag, *v);
      if (!text) return text.error();
      auto policy = emu::RbacPolicy::parse(*text);
      if (!policy) return Error{*v + ": " + policy.error().message};
      auto admins = std::move(c.opts.rbac.admin_users);
      c.opts.rbac = std::move(*policy);
      c.opts.rbac.admin_users.insert(c.opts.rbac.admin_users.end(), admins.begin(), admins.end());
    } else if (flag == "--allow-all-user") {
      c.opts.rbac.admin_users.push_back(*v);
    } else if (flag == "--control-addr") {
      auto hp = parseHostPort(flag, *v);
      if (!hp) return hp.error();
      c.opts.control_api = true;
      c.opts.control_host = hp->host;
      c.opts.control_port = hp->port;
    } else if (flag == "--port-file") {
      c.port_file = *v;
    } else if (flag == "--control-port-file") {
      c.control_port_file = *v;
    } else if (flag == "--gen-certs") {
      c.gen_certs_dir = *v;
    } else if (flag == "--kubeconfig-out") {
      c.kubeconfig_out = *v;
    } else if (flag == "--threads") {
      c.opts.threads = std::atoi(v->c_str());
      if (c.opts.threads < 2) return Error{"--threads: expected a number >= 2"};
    } else if (flag == "--log-level") {
      if (*v != "debug" && *v != "info") return Error{"--log-level: expected debug or info"};
      c.debug = *v == "debug";
    } else {
      return Error{"unknown flag " + flag + " (see --help)"};
    }
  }
  return c;
}

std::string kubeconfig(const std::string& server, const std::string& ca_pem,
                       const std::string& token, const std::string& cert_pem,
                       const std::string& key_pem) {
  std::string user = token.empty()
                         ? "    client-certificate-data: " + emu::base64Encode(cert_pem) +
                               "\n    client-key-data: " + emu::base64Encode(key_pem) + "\n"
                         : "    token: " + token + "\n";
  return "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-emu\n  cluster:\n    server: " +
         server + "\n    certificate-authority-data: " + emu::base64Encode(ca_pem) +
         "\nusers:\n- name: kube-emu-admin\n  user:\n" + user +
         "contexts:\n- name: kube-emu\n  context:\n    cluster: kube-emu\n    user: "
         "kube-emu-admin\n    namespace: default\ncurrent-context: kube-emu\n";
}

Status writeKubeconfig(const Config& c, const emu::KubeEmu& server) {
  if (c.gen_certs_dir.empty()) return Error{"--kubeconfig-out needs --gen-certs"};
  auto ca = readFile("--kubeconfig-out", c.gen_certs_dir + "/ca.crt");
  if (!ca) return ca.error();
  std::string token;
  for (const auto& t : c.opts.tokens) {
    for (const auto& admin : c.opts.rbac.admin_users) {
      if (token.empty() && t.user == admin) token = t.token;
    }
  }
  std::string cert;
  std::string key;
  if (token.empty()) {
    auto cf = readFile("--kubeconfig-out", c.gen_certs_dir + "/client.crt");
    auto kf = readFile("--kubeconfig-out", c.gen_certs_dir + "/client.key");
    if (!cf) return cf.error();
    if (!kf) return kf.error();
    cert = *cf;
    key = *kf;
  }
  return emu::writeFileAtomically(c.kubeconfig_out, kubeconfig(server.url(), *ca, token, cert, key),
                                  0600);
}

}  // namespace

int main(int argc, char** argv) {
  auto config = parseFlags(argc, argv);
  if (!config) {
    std::fprintf(stderr, "kube-emu: %s\n", config.error().message.c_str());
    return 2;
  }
  Config& c = *config;
  tsk::Logger logger(stderr, tsk::LogFormat::Text,
                     c.debug ? tsk::LogLevel::Debug : tsk::LogLevel::Info);
  if (!c.gen_certs_dir.empty()) {
    auto set = emu::writeCertSet(c.gen_certs_dir, {});
    if (!set) {
      std::fprintf(stderr, "kube-emu: %s\n", set.error().message.c_str());
      return 1;
    }
    if (c.opts.cert_file.empty()) c.opts.cert_file = set->server_cert;
    if (c.opts.key_file.empty()) c.opts.key_file = set->server_key;
    if (c.opts.client_ca_file.empty()) c.opts.client_ca_file = set->ca_cert;
  }
  if (c.opts.cert_file.empty() || c.opts.key_file.empty()) {
    std::fprintf(stderr, "kube-emu: --cert and --key are required (or --gen-certs DIR)\n");
    return 2;
  }
  // Signals are taken synchronously by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  c.opts.log = &logger;
  emu::KubeEmu server(c.opts);
  if (auto st = server.start(); !st) {
    std::fprintf(stderr, "%s\n", st.error().message.c_str());
    return 1;
  }
  if (!c.port_file.empty()) {
    if (auto st = emu::writeFileAtomically(c.port_file, std::to_string(server.port()) + "\n");
        !st) {
      std::fprintf(stderr, "kube-emu: %s\n", st.error().message.c_str());
      return 1;
    }
  }
  if (!c.control_port_file.empty() && c.opts.control_api) {
    if (auto st = emu::writeFileAtomically(c.control_port_file,
                                           std::to_string(server.controlPort()) + "\n");
        !st) {
      std::fprintf(stderr, "kube-emu: %s\n", st.error().message.c_str());
      return 1;
    }
  }
  if (!c.kubeconfig_out.empty()) {
    if (auto st = writeKubeconfig(c, server); !st) {
      std::fprintf(stderr, "kube-emu: %s\n", st.error().message.c_str());
      return 1;
    }
  }
  std::printf("api: %s\n", server.url().c_str());
  if (c.opts.control_api) std::printf("control: %s\n", server.controlUrl().c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  logger.info("kube-emu stopping", {{"signal", std::to_string(sig)}});
  server.stop();
  return 0;
}
