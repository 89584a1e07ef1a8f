#pragma once
// AgentConfig and its parser. Every option has a flag, an environment variable (containerboot's
// name where one exists) and a YAML key (the flag name without "--"); precedence is
// flags > environment > YAML file (--config / TS_AGENT_CONFIG) > default. The options table
// (options() below) is the one description of them: it drives parsing and --help, and tests hold
// docs/OPERATIONS.md's table and the Helm chart to it.
//
//   auto parsed = parseConfig(args, systemEnv());
//   if (!parsed) { std::cerr << parsed.error().message; return 2; }   // nothing touched yet
//   if (parsed->action == ConfigAction::Help) std::cout << helpText();
//
// The YAML file may also set keys that have no flag: `secret-keys` and `configmap-keys` (the
// identity keys each target holds, default the upstream set). An unknown YAML key is an error
// naming the key and its line; a bad value names the option and what it accepts. The file must
// be a regular file of at most kMaxConfigFileBytes (a FIFO or /dev/zero is refused, not read).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/identity.h"
#include "common/log.h"
#include "common/result.h"
#include "common/tailscaled_socket.h"
#include "watcher/watcher.h"

namespace tsk::agent {

inline constexpr size_t kMaxConfigFileBytes = 1024 * 1024;
// A unix socket address (sockaddr_un.sun_path) holds 108 bytes with the terminating NUL.
inline constexpr size_t kMaxSocketPathBytes = 107;

struct AgentConfig {
  std::string socket{kDefaultTailscaledSocket};
  std::string secret = "tailscale";  // "" = no Secret target
  std::string configmap;             // "" = no ConfigMap target
  std::string namespace_name;        // "" = the service account's / kubeconfig context's
  std::string kubeconfig;            // "" = in-cluster
  std::string kube_context;          // "" = the kubeconfig's current-context
  std::string admin_addr = "[::]:9002";
  bool track_peers = false;
  std::string pod_uid;
  std::string config_file;
  LogFormat log_format = LogFormat::Text;
  LogLevel log_level = LogLevel::Info;
  std::chrono::milliseconds shutdown_timeout{10'000};
  std::chrono::milliseconds publish_wait_min{20};
  std::chrono::milliseconds publish_wait_max{1'000};
  uint64_t max_line_bytes = 1ull << 30;
  // The bus reader's read delay bound (watcher/read_pacer.h); 0 = off.
  std::chrono::milliseconds bus_read_delay{
      std::chrono::duration_cast<std::chrono::milliseconds>(watcher::kDefaultMaxReadDelay)};
  watcher::StartMode start_mode = watcher::StartMode::InitialStatus;
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  double api_qps = 5.0;
  int api_burst = 10;
  std::chrono::milliseconds drift_check_interval{60'000};  // 0 = only after a bus reconnect
  ForeignKeyPolicy foreign_keys = ForeignKeyPolicy::Skip;  // keys another field manager owns
  bool insecure_skip_tls_verify = false;
  bool create_objects = true;
  bool clear_on_logout = false;
  KeySet secret_keys = upstreamKeys();
  KeySet configmap_keys = upstreamKeys();

  bool operator==(const AgentConfig&) const = default;
};

// What an option accepts and how it applies a value.
struct OptionRule {
  // What a value must be, with its bounds ("a duration from 0s to 1h, like 10s"): shown by
  // --help and after "expected" in every error.
  std::string accepted;
  // Applies a value: nullopt when it is accepted, else a note for the error ("" = none).
  std::function<std::optional<std::string>(AgentConfig&, const std::string&)> set;
};

// One row of the options table.
struct OptionDef {
  std::string_view name = {};           // the flag without "--"; also the config-file key
  std::string_view env = {};            // the environment variable; "" = none
  std::string_view value_name = {};     // --help: "--socket PATH"
  std::string_view default_value = {};  // the default, as a value of the option ("" = empty)
  std::string_view default_note = {};   // shown instead of default_value when that is not a value
  std::string_view help = {};           // what it does (what it accepts is in rule.accepted)
  bool is_bool = false;                 // may be given bare: --track-peers
  bool empty_allowed = false;           // "" means something (--secret= : no Secret target)
  OptionRule rule = {};
};

// Every option, in --help order.
const std::vector<OptionDef>& options();
// The default as --help and docs/OPERATIONS.md show it: default_note, else default_value.
std::string_view shownDefault(const OptionDef& o);

enum class ConfigAction { Run, Help, Version };

struct ParsedConfig {
  ConfigAction action = ConfigAction::Run;
  AgentConfig config;
};

// Looks up an environment variable; nullopt when unset (set-but-empty is "").
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup systemEnv();

// args excludes argv[0].
Result<ParsedConfig> parseConfig(const std::vector<std::string>& args, const EnvLookup& env);

std::string helpText();
std::string versionText();

// Admin address "host:port", "[v6]:port" or ":port" (all interfaces).
struct HostPort {
  std::string host;
  int port = 0;
};
Result<HostPort> parseHostPort(const std::string& s);

// Go-style durations: "10s", "250ms", "1m30s", "1.5s", "0".
Result<std::chrono::milliseconds> parseDuration(const std::string& s);

// Kubernetes name rules (k8s.io/apimachinery/pkg/util/validation): a namespace is a DNS-1123
// label, a Secret or ConfigMap name a DNS-1123 subdomain. The error quotes the name and says the
// rule. Checked at start, for flags/env/file and for a namespace from the kubeconfig or the
// service account alike, so a bad name is a configuration error (exit 2), not a 404 loop.
Status checkDns1123Label(std::string_view s);
Status checkDns1123Subdomain(std::string_view s);

}  // namespace tsk::agent
