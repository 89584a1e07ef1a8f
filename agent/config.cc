#include "agent/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string_view>

#include "common/read_file.h"

#ifndef TSK_VERSION
#define TSK_VERSION "dev"
#endif

namespace tsk::agent {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kMaxShortDuration{3'600'000};  // shutdown timeout, quiet window

using Applied = std::optional<std::string>;  // nullopt: accepted; else a note for the error
constexpr std::nullopt_t kAccepted = std::nullopt;
Applied rejected(std::string note = {}) {
  return note;
}

std::optional<bool> parseBool(std::string_view v) {
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return std::nullopt;
}

OptionRule stringRule(std::string AgentConfig::*field, std::string accepted) {
  return {std::move(accepted), [field](AgentConfig& c, const std::string& v) -> Applied {
            c.*field = v;
            return kAccepted;
          }};
}

OptionRule pathRule(std::string AgentConfig::*field) {
  return {"a non-empty path", [field](AgentConfig& c, const std::string& v) -> Applied {
            if (v.empty()) return rejected();
            c.*field = v;
            return kAccepted;
          }};
}

OptionRule boolRule(bool AgentConfig::*field) {
  return {"true or false (also 1/0, yes/no, on/off)",
          [field](AgentConfig& c, const std::string& v) -> Applied {
            const auto b = parseBool(v);
            if (!b) return rejected();
            c.*field = *b;
            return kAccepted;
          }};
}

// One of `names`, each setting `field` to its value.
template <typename T>
OptionRule choiceRule(T AgentConfig::*field, std::vector<std::pair<std::string, T>> names) {
  std::string accepted;
  for (size_t i = 0; i < names.size(); ++i) {
    accepted += i == 0 ? "" : i + 1 == names.size() ? " or " : ", ";
    accepted += names[i].first;
  }
  return {std::move(accepted), [field, names](AgentConfig& c, const std::string& v) -> Applied {
            for (const auto& [name, value] : names) {
              if (name == v) {
                c.*field = value;
                return kAccepted;
              }
            }
            return rejected();
          }};
}

// "1h", "500ms", "1m30s": how a bound reads in a message.
std::string durationText(milliseconds d) {
  const auto ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1'000 == 0) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

// A duration within [lo, hi] (bounded so that no deadline computed from it can overflow);
// `zero_ok`: 0 is also accepted (it switches the feature off).
OptionRule durationRule(milliseconds AgentConfig::*field, milliseconds lo, milliseconds hi,
                        bool zero_ok = false) {
  return {std::string(zero_ok ? "0 (off) or " : "") + "a duration from " + durationText(lo) +
              " to " + durationText(hi) + ", like 10s, 500ms or 1m30s",
          [=](AgentConfig& c, const std::string& v) -> Applied {
            auto d = parseDuration(v);
            if (!d || ((*d < lo || *d > hi) && !(zero_ok && d->count() == 0))) return rejected();
            c.*field = *d;
            return kAccepted;
          }};
}

std::string dns1123Rule(bool label);  // what a valid name is, for messages

// A Secret/ConfigMap name (DNS-1123 subdomain) or a namespace (DNS-1123 label); "" = none.
OptionRule objectNameRule(std::string AgentConfig::*field, bool label) {
  return {dns1123Rule(label), [=](AgentConfig& c, const std::string& v) -> Applied {
            if (!v.empty() && !(label ? checkDns1123Label(v) : checkDns1123Subdomain(v))) {
              return rejected();
            }
            c.*field = v;
            return kAccepted;
          }};
}

// "64Mi", "1Gi", "4096", "512KiB".
std::optional<uint64_t> parseSize(std::string_view v) {
  uint64_t n = 0;
  const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || ptr == v.data()) return std::nullopt;
  std::string_view unit(ptr, static_cast<size_t>(v.data() + v.size() - ptr));
  if (unit.ends_with("B")) unit.remove_suffix(1);
  static const std::map<std::string_view, uint64_t> kUnits = {
      {"", 1},           {"K", 1000},        {"Ki", 1ull << 10},
      {"M", 1000'000},   {"Mi", 1ull << 20}, {"G", 1000'000'000},
      {"Gi", 1ull << 30}};
  const auto it = kUnits.find(unit);
  if (it == kUnits.end()) return std::nullopt;
  if (n > UINT64_MAX / it->second) return std::nullopt;
  return n * it->second;
}

OptionRule socketRule() {
  return {"a non-empty path of at most " + std::to_string(kMaxSocketPathBytes) +
              " bytes (a unix socket address holds no more)",
          [](AgentConfig& c, const std::string& v) -> Applied {
            if (v.empty()) return rejected();
            if (v.size() > kMaxSocketPathBytes) {
              return rejected("this one has " + std::to_string(v.size()) +
                              ": use a shorter path, e.g. mount the socket directory higher up");
            }
            c.socket = v;
            return kAccepted;
          }};
}

OptionRule adminAddrRule() {
  return {"HOST:PORT, [IPv6]:PORT or :PORT", [](AgentConfig& c, const std::string& v) -> Applied {
            if (!parseHostPort(v)) return rejected();
            c.admin_addr = v;
            return kAccepted;
          }};
}

OptionRule publishWaitRule() {
  return {"MIN:MAX durations from 0s to " + durationText(kMaxShortDuration) +
              " with MIN <= MAX, like 20ms:1s",
          [](AgentConfig& c, const std::string& v) -> Applied {
            const auto colon = v.find(':');
            auto lo = parseDuration(v.substr(0, colon));
            if (!lo || *lo > kMaxShortDuration) return rejected();
            auto hi = colon == std::string::npos ? Result<milliseconds>(*lo * 4)
                                                 : parseDuration(v.substr(colon + 1));
            if (!hi || *hi < *lo || *hi > kMaxShortDuration) return rejected();
            c.publish_wait_min = *lo;
            c.publish_wait_max = *hi;
            return kAccepted;
          }};
}

OptionRule maxLineBytesRule() {
  constexpr uint64_t kMin = 4096, kMax = 16ull << 30;
  return {"a size from 4096 to 16Gi, like 64Mi or 1Gi",
          [](AgentConfig& c, const std::string& v) -> Applied {
            const auto n = parseSize(v);
            if (!n || *n < kMin || *n > kMax) return rejected();
            c.max_line_bytes = *n;
            return kAccepted;
          }};
}

OptionRule busReadDelayRule() {
  // tailscaled's queue of 128 must not fill while the reader waits.
  const auto limit = std::chrono::duration_cast<milliseconds>(watcher::kMaxReadDelayLimit);
  return {"0 (off) or a duration up to " + durationText(limit) + ", like 2ms",
          [limit](AgentConfig& c, const std::string& v) -> Applied {
            auto d = parseDuration(v);
            if (!d || *d > limit) return rejected();
            c.bus_read_delay = *d;
            return kAccepted;
          }};
}

OptionRule apiQpsRule() {
  // The lower bound keeps the limiter's wait (tokens owed / qps) finite and meaningful: 1e-300
  // would overflow it and disable the limit.
  return {
      "a number from 0.01 to 1000000, like 5 or 0.5",
      [](AgentConfig& c, const std::string& v) -> Applied {
        char* end = nullptr;
        errno = 0;
        const double q = std::strtod(v.c_str(), &end);
        if (v.empty() || *end != '\0' || errno != 0 || !std::isfinite(q) || q < 0.01 || q > 1e6) {
          return rejected();
        }
        c.api_qps = q;
        return kAccepted;
      }};
}

OptionRule apiBurstRule() {
  return {"an integer from 1 to 100000", [](AgentConfig& c, const std::string& v) -> Applied {
            int n = 0;
            const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc() || p != v.data() + v.size() || n < 1 || n > 100000) {
              return rejected();
            }
            c.api_burst = n;
            return kAccepted;
          }};
}

}  // namespace

// The options table. docs/OPERATIONS.md#configuration shows the same rows (flag, env, default;
// tests/unit/agent/config_test.cc compares them), and the Helm chart sets only options named here
// (tests/integration/deploy/test_chart.py). Each row's default_value applied to a default
// AgentConfig leaves it unchanged (config_test.cc checks that too).
const std::vector<OptionDef>& options() {
  static const std::vector<OptionDef> kOptions = {
      {.name = "socket",
       .env = "TS_SOCKET",
       .value_name = "PATH",
       .default_value = kDefaultTailscaledSocket,
       .help = "tailscaled's LocalAPI unix socket.",
       .rule = socketRule()},
      {.name = "secret",
       .env = "TS_KUBE_SECRET",
       .value_name = "NAME",
       .default_value = "tailscale",
       .help = "Secret to publish the identity into; empty: no Secret target.",
       .empty_allowed = true,
       .rule = objectNameRule(&AgentConfig::secret, false)},
      {.name = "configmap",
       .env = "TS_KUBE_CONFIGMAP",
       .value_name = "NAME",
       .default_note = "none",
       .help = "ConfigMap to publish the identity into; empty: no ConfigMap target.",
       .empty_allowed = true,
       .rule = objectNameRule(&AgentConfig::configmap, false)},
      {.name = "namespace",
       .env = "POD_NAMESPACE",
       .value_name = "NS",
       .default_note = "the service account's / the kubeconfig context's",
       .help = "Namespace of the Secret and ConfigMap.",
       .empty_allowed = true,
       .rule = objectNameRule(&AgentConfig::namespace_name, true)},
      {.name = "kubeconfig",
       .env = "KUBECONFIG",
       .value_name = "PATH",
       .default_note = "none (in-cluster)",
       .help = "kubeconfig file for running outside a cluster (a ':' list as in kubectl: empty "
               "entries and missing files are skipped, exactly one file must remain).",
       .empty_allowed = true,
       .rule = stringRule(&AgentConfig::kubeconfig, "a path or a ':' list of paths")},
      {.name = "context",
       .env = "TS_KUBE_CONTEXT",
       .value_name = "NAME",
       .default_note = "the kubeconfig's current-context",
       .help = "kubeconfig context to use.",
       .empty_allowed = true,
       .rule = stringRule(&AgentConfig::kube_context, "a context name")},
      {.name = "admin-addr",
       .env = "TS_LOCAL_ADDR_PORT",
       .value_name = "HOST:PORT",
       .default_value = "[::]:9002",
       .help = "Address of the admin server (/metrics /livez /readyz /healthz); 127.0.0.1:9002 "
               "keeps it on loopback, port 0 picks a free port.",
       .rule = adminAddrRule()},
      {.name = "track-peers",
       .env = "TS_TRACK_PEERS",
       .value_name = "BOOL",
       .default_value = "false",
       .help = "Follow peer changes on the bus so peer counts stay live (costs more on big "
               "tailnets).",
       .is_bool = true,
       .rule = boolRule(&AgentConfig::track_peers)},
      {.name = "pod-uid",
       .env = "POD_UID",
       .value_name = "UID",
       .default_note = "none",
       .help = "Written as pod_uid (downward API metadata.uid).",
       .empty_allowed = true,
       .rule = stringRule(&AgentConfig::pod_uid, "a UID")},
      {.name = "config",
       .env = "TS_AGENT_CONFIG",
       .value_name = "PATH",
       .default_note = "none",
       .help = "YAML config file (keys = flag names).",
       .empty_allowed = true,
       .rule = stringRule(&AgentConfig::config_file, "a path")},
      {.name = "log-format",
       .env = "TS_LOG_FORMAT",
       .value_name = "text|json",
       .default_value = "text",
       .help = "Log line format (stderr).",
       .rule = choiceRule(&AgentConfig::log_format,
                          {{"text", LogFormat::Text}, {"json", LogFormat::Json}})},
      {.name = "log-level",
       .env = "TS_LOG_LEVEL",
       .value_name = "LEVEL",
       .default_value = "info",
       .help = "Least severe log level written.",
       .rule = choiceRule(&AgentConfig::log_level, {{"debug", LogLevel::Debug},
                                                    {"info", LogLevel::Info},
                                                    {"warn", LogLevel::Warn},
                                                    {"error", LogLevel::Error}})},
      {.name = "shutdown-timeout",
       .env = "TS_SHUTDOWN_TIMEOUT",
       .value_name = "DURATION",
       .default_value = "10s",
       .help = "On SIGTERM/SIGINT/SIGHUP, how long to try to flush the pending identity.",
       .rule = durationRule(&AgentConfig::shutdown_timeout, milliseconds(0), kMaxShortDuration)},
      {.name = "publish-wait",
       .env = "TS_PUBLISH_WAIT",
       .value_name = "MIN[:MAX]",
       .default_value = "20ms:1s",
       .help = "Quiet window before a write: wait until no change for MIN, but never longer than "
               "MAX after the first change (a single value means MIN:4*MIN).",
       .rule = publishWaitRule()},
      {.name = "max-line-bytes",
       .env = "TS_MAX_LINE_BYTES",
       .value_name = "SIZE",
       .default_value = "1Gi",
       .help = "Bus lines longer than this are skipped without being buffered.",
       .rule = maxLineBytesRule()},
      {.name = "bus-read-delay",
       .env = "TS_BUS_READ_DELAY",
       .value_name = "DURATION",
       .default_value = "2ms",
       .help = "While bus lines come close together, wait up to this long before reading again, "
               "so a burst costs one wakeup (a lone line is read at once); 0 = read every line at "
               "once.",
       .rule = busReadDelayRule()},
      {.name = "start-mode",
       .env = "TS_START_MODE",
       .value_name = "MODE",
       .default_value = "initial-status",
       .help = "initial-status (peer counts, O(N) per connect) or status-fetch (the self node "
               "from /localapi/v0/status?peers=false: O(1) per connect for giant tailnets, no "
               "peer counts).",
       .rule = choiceRule(&AgentConfig::start_mode,
                          {{"initial-status", watcher::StartMode::InitialStatus},
                           {"status-fetch", watcher::StartMode::StatusFetch}})},
      {.name = "service-account-dir",
       .env = "TS_KUBE_SERVICE_ACCOUNT_DIR",
       .value_name = "DIR",
       .default_value = "/var/run/secrets/kubernetes.io/serviceaccount",
       .help = "Service-account files (token, ca.crt, namespace) used in-cluster.",
       .rule = pathRule(&AgentConfig::service_account_dir)},
      {.name = "api-qps",
       .env = "TS_KUBE_API_QPS",
       .value_name = "QPS",
       .default_value = "5",
       .help = "Client-side rate limit for API requests (requests per second).",
       .rule = apiQpsRule()},
      {.name = "api-burst",
       .env = "TS_KUBE_API_BURST",
       .value_name = "N",
       .default_value = "10",
       .help = "Burst of the API rate limit.",
       .rule = apiBurstRule()},
      {.name = "insecure-skip-tls-verify",
       .env = "TS_KUBE_INSECURE_SKIP_TLS_VERIFY",
       .value_name = "BOOL",
       .default_value = "false",
       .help = "Do not verify the API server's certificate (testing only; warns at every start).",
       .is_bool = true,
       .rule = boolRule(&AgentConfig::insecure_skip_tls_verify)},
      {.name = "create-objects",
       .env = "TS_KUBE_CREATE_OBJECTS",
       .value_name = "BOOL",
       .default_value = "true",
       .help = "Create the Secret/ConfigMap when it does not exist (needs RBAC create).",
       .is_bool = true,
       .rule = boolRule(&AgentConfig::create_objects)},
      {.name = "clear-on-logout",
       .env = "TS_CLEAR_ON_LOGOUT",
       .value_name = "BOOL",
       .default_value = "false",
       .help = "Delete the device keys when tailscaled is logged out (default: keep them, like "
               "containerboot).",
       .is_bool = true,
       .rule = boolRule(&AgentConfig::clear_on_logout)},
      {.name = "drift-check-interval",
       .env = "TS_KUBE_DRIFT_CHECK_INTERVAL",
       .value_name = "DURATION",
       .default_value = "60s",
       .help = "How often to re-read each target (one GET, plus up to 10% jitter) to repair keys "
               "someone else deleted or changed; also done after every bus reconnect. 0 = only "
               "after a reconnect.",
       .rule = durationRule(&AgentConfig::drift_check_interval, milliseconds(1'000),
                            milliseconds(24 * 3'600'000), /*zero_ok=*/true)},
      {.name = "foreign-keys",
       .env = "TS_KUBE_FOREIGN_KEYS",
       .value_name = "skip|overwrite",
       .default_value = "skip",
       .help = "What to do with a key of ours that another field manager owns "
               "(metadata.managedFields, e.g. containerboot's device_fqdn in its own state "
               "Secret): skip = leave it to that writer (warn once, "
               "ts_kube_agent_foreign_owned_keys); overwrite = write it anyway.",
       .rule = choiceRule(
           &AgentConfig::foreign_keys,
           {{"skip", ForeignKeyPolicy::Skip}, {"overwrite", ForeignKeyPolicy::Overwrite}})},
  };
  return kOptions;
}

std::string_view shownDefault(const OptionDef& o) {
  return o.default_note.empty() ? o.default_value : o.default_note;
}

namespace {

const OptionDef* findOption(std::string_view name) {
  for (const auto& o : options()) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

constexpr std::array<std::string_view, 2> kKeySetYamlKeys = {"secret-keys", "configmap-keys"};

std::string knownYamlKeys() {
  std::string out;
  for (const auto& o : options()) {
    if (o.name == "config") continue;
    out += out.empty() ? "" : ", ";
    out += o.name;
  }
  for (const auto k : kKeySetYamlKeys) {
    out += ", ";
    out += k;
  }
  return out;
}

struct SourcedValue {
  const OptionDef* def;
  std::string value;
  std::string source;  // "--x", "TS_X", "config file f line 3"
};

Error optionError(const SourcedValue& sv, const std::string& accepted) {
  return Error{"invalid value \"" + sv.value + "\" for " + sv.source + ": expected " + accepted};
}

// The flags: returns the values in order, or sets `action` for --help/--version.
Result<std::vector<SourcedValue>> parseFlags(const std::vector<std::string>& args,
                                             ConfigAction& action) {
  std::vector<SourcedValue> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help" || a == "-help") {
      action = ConfigAction::Help;
      continue;
    }
    if (a == "--version" || a == "-version") {
      action = ConfigAction::Version;
      continue;
    }
    if (!a.starts_with("--") || a.size() == 2) {
      return Error{"unexpected argument \"" + a + "\": options look like --name=value; see --help"};
    }
    const auto eq = a.find('=');
    const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const OptionDef* def = findOption(name);
    if (!def) return Error{"unknown flag --" + name + "; see --help for the list of options"};
    std::string value;
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
    } else if (def->is_bool) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return Error{"flag --" + name + " needs a value (" + std::string(def->value_name) + ")"};
    }
    out.push_back({def, value, "--" + name});
  }
  return out;
}

Result<KeySet> parseKeySet(const YAML::Node& node, const std::string& where) {
  if (!node.IsSequence()) {
    return Error{where + ": expected a list of keys from: " + allIdentityKeyNames()};
  }
  KeySet keys;
  for (const auto& item : node) {
    const std::string name = item.IsScalar() ? item.as<std::string>() : "";
    const auto k = identityKeyFromName(name);
    if (!k) {
      return Error{where + " line " + std::to_string(item.Mark().line + 1) + ": unknown key \"" +
                   name + "\"; accepted: " + allIdentityKeyNames()};
    }
    if (std::find(keys.begin(), keys.end(), *k) == keys.end()) keys.push_back(*k);
  }
  return keys;
}

// The whole config file, refused when it is not a regular file (a FIFO, /dev/zero, a directory)
// or larger than kMaxConfigFileBytes, before reading more than that.
Result<std::string> readConfigFile(const std::string& path) {
  auto text = readFileContents(path, kMaxConfigFileBytes);
  if (!text) {
    return Error{"config file: " + text.error().message +
                 "; --config / TS_AGENT_CONFIG must name a YAML file of at most " +
                 std::to_string(kMaxConfigFileBytes) + " bytes (1 MiB)"};
  }
  return text;
}

// Reads the YAML file: option values (applied later, below env and flags) and key sets.
Status loadYaml(const std::string& path, std::vector<SourcedValue>& values, AgentConfig& cfg) {
  auto text = readConfigFile(path);
  if (!text) return text.error();
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return Error{"config file " + path + " line " + std::to_string(e.mark.line + 1) +
                 ": not valid YAML: " + e.msg};
  }
  if (root.IsNull()) return {};
  if (!root.IsMap()) return Error{"config file " + path + ": expected a map of option: value"};
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    const std::string where =
        "config file " + path + " line " + std::to_string(kv.first.Mark().line + 1);
    if (key == "secret-keys" || key == "configmap-keys") {
      auto keys = parseKeySet(kv.second, "config file " + path + " key " + key);
      if (!keys) return keys.error();
      (key == "secret-keys" ? cfg.secret_keys : cfg.configmap_keys) = *keys;
      continue;
    }
    const OptionDef* def = findOption(key);
    if (!def || key == "config") {
      return Error{where + ": unknown key \"" + key + "\"; known keys: " + knownYamlKeys()};
    }
    if (!kv.second.IsScalar() && !kv.second.IsNull()) {
      return Error{where + ": " + key + " needs a single value (" + std::string(def->value_name) +
                   ")"};
    }
    values.push_back({def, kv.second.IsNull() ? "" : kv.second.Scalar(), where + ": " + key});
  }
  return {};
}

Status applyValue(AgentConfig& cfg, const SourcedValue& sv) {
  if (sv.value.empty() && !sv.def->empty_allowed) {
    return optionError(sv, "a value (" + std::string(sv.def->value_name) + ")");
  }
  const auto note = sv.def->rule.set(cfg, sv.value);
  if (note) return optionError(sv, sv.def->rule.accepted + (note->empty() ? "" : "; " + *note));
  return {};
}

Status validate(const AgentConfig& cfg) {
  if (cfg.track_peers && cfg.start_mode == watcher::StartMode::StatusFetch) {
    return Error{"--track-peers needs --start-mode=initial-status (status-fetch has no peer list)"};
  }
  return {};
}

}  // namespace

EnvLookup systemEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

Result<ParsedConfig> parseConfig(const std::vector<std::string>& args, const EnvLookup& env) {
  ParsedConfig out;
  auto flags = parseFlags(args, out.action);
  if (!flags) return flags.error();
  if (out.action != ConfigAction::Run) return out;

  std::vector<SourcedValue> envs;
  for (const auto& o : options()) {
    if (o.env.empty()) continue;
    auto v = env(std::string(o.env));
    // A set-but-empty variable counts only where empty means something (TS_KUBE_SECRET="").
    if (!v || (v->empty() && !o.empty_allowed)) continue;
    envs.push_back({&o, *v, std::string(o.env) + " (--" + std::string(o.name) + ")"});
  }

  // Which config file: the flag wins over the environment.
  std::string config_file;
  for (const auto& sv : envs) {
    if (sv.def->name == "config") config_file = sv.value;
  }
  for (const auto& sv : *flags) {
    if (sv.def->name == "config") config_file = sv.value;
  }

  std::vector<SourcedValue> ordered;  // lowest precedence first
  if (!config_file.empty()) {
    auto st = loadYaml(config_file, ordered, out.config);
    if (!st) return st.error();
  }
  ordered.insert(ordered.end(), envs.begin(), envs.end());
  ordered.insert(ordered.end(), flags->begin(), flags->end());
  for (const auto& sv : ordered) {
    auto st = applyValue(out.config, sv);
    if (!st) return st.error();
  }
  auto st = validate(out.config);
  if (!st) return st.error();
  return out;
}

namespace {
// Wraps `text` at `width` columns, each line indented by `indent` spaces.
std::string wrapped(std::string_view text, size_t indent, size_t width = 96) {
  std::string out;
  std::string line(indent, ' ');
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view word = text.substr(pos, end - pos);
    if (line.size() > indent && line.size() + 1 + word.size() > width) {
      out += line + "\n";
      line.assign(indent, ' ');
    }
    if (line.size() > indent) line += ' ';
    line += word;
    pos = end + 1;
  }
  return out + line + "\n";
}
}  // namespace

std::string helpText() {
  std::string out =
      "ts-kube-agent " TSK_VERSION
      ": publishes this node's Tailscale identity (device_id, device_fqdn, device_ips)\n"
      "from tailscaled's LocalAPI bus into a Kubernetes Secret and/or ConfigMap, and serves\n"
      "/metrics /livez /readyz /healthz.\n\n"
      "Usage: ts-kube-agent [--option=value ...]\n"
      "Precedence: flags > environment > config file (--config) > default.\n"
      "Boolean flags may be given bare (--track-peers) or with a value (--track-peers=false).\n\n"
      "Options:\n";
  for (const auto& o : options()) {
    out += "  --" + std::string(o.name) + " " + std::string(o.value_name) + "\n";
    out += wrapped(o.help, 6);
    out += wrapped("accepts: " + o.rule.accepted, 6);
    out += "      env: " + (o.env.empty() ? std::string("none") : std::string(o.env)) +
           "   default: " + std::string(shownDefault(o)) + "\n";
  }
  out +=
      "  --help      this text\n"
      "  --version   print the version\n\n"
      "Config file only:\n"
      "  secret-keys: [..]     identity keys the Secret holds\n"
      "  configmap-keys: [..]  identity keys the ConfigMap holds\n"
      "      default for both: [device_id, device_fqdn, device_ips, pod_uid]\n" +
      wrapped("accepted: " + allIdentityKeyNames(), 6) +
      "\nSignals: SIGTERM, SIGINT and SIGHUP flush the pending identity (within "
      "--shutdown-timeout)\n"
      "and exit; a second one exits at once. SIGUSR1/SIGUSR2 are logged and ignored.\n"
      "\nExit status: 0 after a clean shutdown (SIGTERM/SIGINT/SIGHUP), 1 when it cannot start "
      "(e.g.\n"
      "the admin port is taken), 2 for a configuration error (reported before anything is "
      "touched),\n"
      "128 + the signal number when a second signal cut the shutdown short.\n";
  return out;
}

std::string versionText() {
  return "ts-kube-agent " TSK_VERSION "\n";
}

Result<HostPort> parseHostPort(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) return Error{"missing :PORT in \"" + s + "\""};
  std::string host = s.substr(0, colon);
  const std::string port_text = s.substr(colon + 1);
  if (host.starts_with("[")) {
    if (!host.ends_with("]") || host.size() < 3) return Error{"bad [IPv6] host in \"" + s + "\""};
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return Error{"IPv6 hosts need brackets: \"[" + host + "]:PORT\""};
  }
  int port = -1;
  const auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return Error{"bad port in \"" + s + "\": expected 0-65535"};
  }
  if (host.empty()) host = "::";
  return HostPort{host, port};
}

namespace {
bool isLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
// [a-z0-9]([-a-z0-9]*[a-z0-9])?
bool isDns1123Label(std::string_view s) {
  if (s.empty() || !isLowerAlnum(s.front()) || !isLowerAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return isLowerAlnum(c) || c == '-'; });
}
std::string quotedForError(std::string_view s) {
  std::string out = "\"";
  for (const char c : s.substr(0, 300)) {
    const auto u = static_cast<unsigned char>(c);
    out += u < 0x20 || u == 0x7f || u >= 0x80 ? '?' : c;
  }
  return out + (s.size() > 300 ? "...\"" : "\"");
}
std::string dns1123Rule(bool label) {
  return label ? "a valid namespace name: a DNS-1123 label is at most 63 characters of "
                 "lower-case letters, digits and '-', starting and ending with a letter or digit "
                 "(e.g. \"tailscale\")"
               : "a valid Secret/ConfigMap name: a DNS-1123 subdomain is at most 253 characters "
                 "of lower-case letters, digits, '-' and '.', starting and ending with a letter "
                 "or digit (e.g. \"ts-state\"); no '_', '/' or upper case";
}
}  // namespace

// As Kubernetes' validation.IsDNS1123Label (k8s.io/apimachinery/pkg/util/validation).
Status checkDns1123Label(std::string_view s) {
  if (s.size() <= 63 && isDns1123Label(s)) return {};
  return Error{quotedForError(s) + " is not " + dns1123Rule(true)};
}

// As Kubernetes' validation.IsDNS1123Subdomain: dot-separated DNS-1123 labels, at most 253.
Status checkDns1123Subdomain(std::string_view s) {
  bool ok = !s.empty() && s.size() <= 253;
  for (size_t pos = 0; ok;) {
    const size_t dot = s.find('.', pos);
    ok = isDns1123Label(s.substr(pos, dot == std::string_view::npos ? dot : dot - pos));
    if (dot == std::string_view::npos) break;
    pos = dot + 1;
  }
  if (ok) return {};
  return Error{quotedForError(s) + " is not " + dns1123Rule(false)};
}

Result<milliseconds> parseDuration(const std::string& s) {
  const Error bad{"bad duration \"" + s + "\": expected e.g. 10s, 500ms, 1m30s"};
  if (s == "0") return milliseconds(0);
  if (s.empty()) return bad;
  double total_ms = 0;
  size_t i = 0;
  while (i < s.size()) {
    const size_t num_start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == num_start) return bad;
    char* end = nullptr;
    const std::string num = s.substr(num_start, i - num_start);
    const double n = std::strtod(num.c_str(), &end);
    if (*end != '\0') return bad;
    const size_t unit_start = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    const std::string unit = s.substr(unit_start, i - unit_start);
    double scale = 0;
    if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60'000;
    } else if (unit == "h") {
      scale = 3'600'000;
    } else {
      return bad;
    }
    total_ms += n * scale;
  }
  if (!std::isfinite(total_ms) || total_ms > 1e12) return bad;
  return milliseconds(static_cast<int64_t>(std::llround(total_ms)));
}

}  // namespace tsk::agent
