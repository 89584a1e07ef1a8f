#include "agent/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "tests/support/util/temp_dir.h"

namespace tsk::agent {
namespace {

using std::chrono::milliseconds;

EnvLookup envOf(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A YAML file in a fresh temp dir, removed with the object.
class TempYaml {
 public:
  explicit TempYaml(const std::string& text) : path_(dir_.file("agent.yaml")) {
    std::ofstream(path_) << text;
  }
  const std::string& path() const { return path_; }

 private:
  tsk::testing::TempDir dir_{"agent-config"};
  std::string path_;
};

AgentConfig parseOk(const std::vector<std::string>& args,
                    std::map<std::string, std::string> env = {}) {
  auto r = parseConfig(args, envOf(std::move(env)));
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? r->config : AgentConfig{};
}

std::string parseError(const std::vector<std::string>& args,
                       std::map<std::string, std::string> env = {}) {
  auto r = parseConfig(args, envOf(std::move(env)));
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.error().message;
}

TEST(Config, DefaultsMatchTheDesignTable) {
  const auto c = parseOk({});
  EXPECT_EQ(c.socket, "/var/run/tailscale/tailscaled.sock");
  EXPECT_EQ(c.secret, "tailscale");
  EXPECT_EQ(c.configmap, "");
  EXPECT_EQ(c.kubeconfig, "");
  EXPECT_EQ(c.admin_addr, "[::]:9002");
  EXPECT_FALSE(c.track_peers);
  EXPECT_EQ(c.log_format, LogFormat::Text);
  EXPECT_EQ(c.shutdown_timeout, milliseconds(10'000));
  EXPECT_EQ(c.publish_wait_min, milliseconds(20));
  EXPECT_EQ(c.publish_wait_max, milliseconds(1'000));
  EXPECT_TRUE(c.create_objects);
  EXPECT_FALSE(c.insecure_skip_tls_verify);
  EXPECT_EQ(c.secret_keys, upstreamKeys());
}

TEST(Config, ContainerbootEnvironmentNamesAreRead) {
  const auto c = parseOk({}, {{"TS_SOCKET", "/tmp/ts.sock"},
                              {"TS_KUBE_SECRET", "ts-state"},
                              {"TS_KUBE_CONFIGMAP", "ts-id"},
                              {"POD_NAMESPACE", "tailscale"},
                              {"KUBECONFIG", "/k/config:/k/other"},
                              {"TS_LOCAL_ADDR_PORT", "127.0.0.1:9100"},
                              {"TS_TRACK_PEERS", "true"},
                              {"POD_UID", "uid-1"},
                              {"TS_LOG_FORMAT", "json"},
                              {"TS_SHUTDOWN_TIMEOUT", "3s"}});
  EXPECT_EQ(c.socket, "/tmp/ts.sock");
  EXPECT_EQ(c.secret, "ts-state");
  EXPECT_EQ(c.configmap, "ts-id");
  EXPECT_EQ(c.namespace_name, "tailscale");
  EXPECT_EQ(c.kubeconfig, "/k/config:/k/other");  // the list: k8s::loadKubeconfig picks the file
  EXPECT_EQ(c.admin_addr, "127.0.0.1:9100");
  EXPECT_TRUE(c.track_peers);
  EXPECT_EQ(c.pod_uid, "uid-1");
  EXPECT_EQ(c.log_format, LogFormat::Json);
  EXPECT_EQ(c.shutdown_timeout, milliseconds(3'000));
}

TEST(Config, AKubeconfigListWithAnEmptyFirstEntryIsNotTakenForUnset) {
  // kubectl skips empty entries; taking the text before the first ':' made this in-cluster.
  EXPECT_EQ(parseOk({}, {{"KUBECONFIG", ":/k/config"}}).kubeconfig, ":/k/config");
}

TEST(Config, EmptySecretEnvironmentMeansNoSecretTarget) {
  EXPECT_EQ(parseOk({}, {{"TS_KUBE_SECRET", ""}}).secret, "");
  EXPECT_EQ(parseOk({"--secret="}).secret, "");
}

TEST(Config, EmptyEnvironmentValueIsIgnoredWhereEmptyMeansNothing) {
  EXPECT_EQ(parseOk({}, {{"TS_SHUTDOWN_TIMEOUT", ""}}).shutdown_timeout, milliseconds(10'000));
}

TEST(Config, FlagsBeatEnvironmentWhichBeatsTheFile) {
  TempYaml yaml("socket: /from/yaml.sock\nsecret: from-yaml\nconfigmap: cm-yaml\n");
  const auto c = parseOk({"--config", yaml.path(), "--socket=/from/flag.sock"},
                         {{"TS_SOCKET", "/from/env.sock"}, {"TS_KUBE_SECRET", "from-env"}});
  EXPECT_EQ(c.socket, "/from/flag.sock");
  EXPECT_EQ(c.secret, "from-env");
  EXPECT_EQ(c.configmap, "cm-yaml");
}

TEST(Config, ConfigFileNamedByEnvironment) {
  TempYaml yaml("track-peers: true\npublish-wait: 5ms:100ms\n");
  const auto c = parseOk({}, {{"TS_AGENT_CONFIG", yaml.path()}});
  EXPECT_TRUE(c.track_peers);
  EXPECT_EQ(c.publish_wait_min, milliseconds(5));
  EXPECT_EQ(c.publish_wait_max, milliseconds(100));
}

TEST(Config, BareBooleanFlagMeansTrue) {
  EXPECT_TRUE(parseOk({"--track-peers"}).track_peers);
  EXPECT_FALSE(parseOk({"--track-peers=false"}, {{"TS_TRACK_PEERS", "true"}}).track_peers);
}

TEST(Config, KeySetsPerTargetFromTheFile) {
  TempYaml yaml(
      "secret-keys: [device_id, device_fqdn, device_ips]\n"
      "configmap-keys:\n  - device_fqdn\n  - backend_state\n  - tailnet_name\n  - tags\n"
      "  - key_expiry\n  - host_name\n");
  const auto c = parseOk({"--config=" + yaml.path()});
  EXPECT_EQ(c.secret_keys,
            (KeySet{IdentityKey::DeviceId, IdentityKey::DeviceFqdn, IdentityKey::DeviceIps}));
  EXPECT_EQ(c.configmap_keys,
            (KeySet{IdentityKey::DeviceFqdn, IdentityKey::BackendState, IdentityKey::TailnetName,
                    IdentityKey::Tags, IdentityKey::KeyExpiry, IdentityKey::HostName}));
}

TEST(Config, UnknownYamlKeyNamesKeyAndLine) {
  TempYaml yaml("socket: /x\n\nsecrte: typo\n");
  const auto err = parseError({"--config", yaml.path()});
  EXPECT_NE(err.find("unknown key \"secrte\""), std::string::npos) << err;
  EXPECT_NE(err.find("line 3"), std::string::npos) << err;
  EXPECT_NE(err.find("known keys:"), std::string::npos) << err;
}

TEST(Config, UnknownIdentityKeyInKeySetIsAnError) {
  TempYaml yaml("secret-keys: [device_id, _machinekey]\n");
  const auto err = parseError({"--config", yaml.path()});
  EXPECT_NE(err.find("_machinekey"), std::string::npos) << err;
  EXPECT_NE(err.find("device_fqdn"), std::string::npos) << err;  // lists what is accepted
}

TEST(Config, InvalidYamlNamesTheLine) {
  TempYaml yaml("socket: /x\nsecret: [unclosed\n");
  const auto err = parseError({"--config", yaml.path()});
  EXPECT_NE(err.find("not valid YAML"), std::string::npos) << err;
}

TEST(Config, MissingConfigFileSaysWhichOption) {
  const auto err = parseError({"--config=/nonexistent/agent.yaml"});
  EXPECT_NE(err.find("/nonexistent/agent.yaml"), std::string::npos) << err;
  EXPECT_NE(err.find("--config"), std::string::npos) << err;
}

TEST(Config, ConfigFileOverOneMebibyteIsRefusedNamingFileAndLimit) {
  std::string text = "socket: /x\n";
  while (text.size() <= kMaxConfigFileBytes) text += "# padding padding padding padding\n";
  TempYaml yaml(text);
  const auto err = parseError({"--config", yaml.path()});
  EXPECT_NE(err.find(yaml.path()), std::string::npos) << err;
  EXPECT_NE(err.find(std::to_string(kMaxConfigFileBytes) + " bytes"), std::string::npos) << err;
  EXPECT_NE(err.find("--config"), std::string::npos) << err;
}

TEST(Config, ConfigFileOfExactlyTheLimitIsRead) {
  std::string text = "socket: /x\n";
  text += std::string(kMaxConfigFileBytes - text.size() - 1, '#') + "\n";
  ASSERT_EQ(text.size(), kMaxConfigFileBytes);
  TempYaml yaml(text);
  EXPECT_EQ(parseOk({"--config", yaml.path()}).socket, "/x");
}

TEST(Config, NonRegularConfigFilesAreRefusedWithoutReadingThem) {
  TempYaml yaml("");
  const std::string dir = std::filesystem::path(yaml.path()).parent_path();
  const std::string fifo = dir + "/fifo.yaml";  // no writer: opening it must not block
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {std::string("/dev/zero"), fifo, dir}) {
    const auto err = parseError({"--config", path});
    EXPECT_NE(err.find("config file: cannot read " + path + ": "), std::string::npos) << err;
    EXPECT_NE(err.find(", not a regular file"), std::string::npos) << err;
    EXPECT_NE(err.find(std::to_string(kMaxConfigFileBytes)), std::string::npos) << err;
  }
  const auto from_env = parseError({}, {{"TS_AGENT_CONFIG", "/dev/zero"}});
  EXPECT_NE(from_env.find("/dev/zero"), std::string::npos) << from_env;
}

TEST(Config, BadValuesNameOptionAndAcceptedValues) {
  auto err = parseError({"--log-format=xml"});
  EXPECT_NE(err.find("--log-format"), std::string::npos) << err;
  EXPECT_NE(err.find("text or json"), std::string::npos) << err;

  err = parseError({}, {{"TS_SHUTDOWN_TIMEOUT", "ten"}});
  EXPECT_NE(err.find("TS_SHUTDOWN_TIMEOUT"), std::string::npos) << err;
  EXPECT_NE(err.find("duration"), std::string::npos) << err;

  err = parseError({"--publish-wait=1s:10ms"});
  EXPECT_NE(err.find("MIN <= MAX"), std::string::npos) << err;

  err = parseError({"--admin-addr=9002"});
  EXPECT_NE(err.find("HOST:PORT"), std::string::npos) << err;

  err = parseError({"--start-mode=fast"});
  EXPECT_NE(err.find("initial-status or status-fetch"), std::string::npos) << err;

  err = parseError({"--track-peers=maybe"});
  EXPECT_NE(err.find("true or false"), std::string::npos) << err;

  err = parseError({"--api-qps=0"});
  EXPECT_NE(err.find("--api-qps"), std::string::npos) << err;

  err = parseError({"--max-line-bytes=12"});
  EXPECT_NE(err.find("from 4096 to 16Gi"), std::string::npos) << err;
}

// Each numeric or duration option has a documented range; a value outside it is an error naming
// the option and the range (exit 2 at start), never a silent overflow.
TEST(Config, NumericAndDurationOptionsAreBoundedNamingTheRange) {
  struct Case {
    std::string flag;
    std::string range;
  };
  const std::vector<Case> cases = {
      // 1e-300 QPS used to be accepted: the limiter's wait overflowed and the limit was off.
      {"--api-qps=1e-300", "from 0.01 to 1000000"},
      {"--api-qps=0.001", "from 0.01 to 1000000"},
      {"--api-qps=1e7", "from 0.01 to 1000000"},
      {"--api-burst=0", "from 1 to 100000"},
      {"--api-burst=100001", "from 1 to 100000"},
      // Up to 31 years used to be accepted (a flush or a quiet window nobody would wait out).
      {"--shutdown-timeout=100000h", "from 0s to 1h"},
      {"--shutdown-timeout=61m", "from 0s to 1h"},
      {"--publish-wait=0ms:100000h", "from 0s to 1h"},
      {"--publish-wait=2h", "from 0s to 1h"},
      {"--max-line-bytes=17Gi", "from 4096 to 16Gi"},
      {"--drift-check-interval=500ms", "0 (off) or a duration from 1s to 24h"},
      {"--drift-check-interval=25h", "0 (off) or a duration from 1s to 24h"},
  };
  for (const auto& c : cases) {
    const auto err = parseError({c.flag});
    const std::string name = c.flag.substr(0, c.flag.find('='));
    EXPECT_NE(err.find(name), std::string::npos) << c.flag << ": " << err;
    EXPECT_NE(err.find(c.range), std::string::npos) << c.flag << ": " << err;
  }
  // The bounds themselves are accepted.
  const auto cfg = parseOk({"--api-qps=0.01", "--api-burst=100000", "--shutdown-timeout=1h",
                            "--publish-wait=0ms:1h", "--max-line-bytes=16Gi"});
  EXPECT_DOUBLE_EQ(cfg.api_qps, 0.01);
  EXPECT_EQ(cfg.api_burst, 100000);
  EXPECT_EQ(cfg.shutdown_timeout, milliseconds(3'600'000));
  EXPECT_EQ(cfg.publish_wait_max, milliseconds(3'600'000));
  EXPECT_EQ(cfg.max_line_bytes, 16ull << 30);
}

TEST(Config, BusReadDelayHasAFlagAnEnvironmentVariableADefaultAndABound) {
  EXPECT_EQ(parseOk({}).bus_read_delay, milliseconds(2));
  EXPECT_EQ(parseOk({"--bus-read-delay=1ms"}).bus_read_delay, milliseconds(1));
  EXPECT_EQ(parseOk({"--bus-read-delay=0"}).bus_read_delay, milliseconds(0));
  EXPECT_EQ(parseOk({}, {{"TS_BUS_READ_DELAY", "0s"}}).bus_read_delay, milliseconds(0));
  for (const char* bad : {"--bus-read-delay=3ms", "--bus-read-delay=1s", "--bus-read-delay=2"}) {
    const auto err = parseError({bad});
    EXPECT_NE(err.find("--bus-read-delay"), std::string::npos) << err;
    EXPECT_NE(err.find("0 (off) or a duration up to 2ms"), std::string::npos) << err;
  }
  EXPECT_NE(helpText().find("--bus-read-delay"), std::string::npos);
}

TEST(Config, DriftCheckIntervalHasAFlagAnEnvironmentVariableAndADefault) {
  EXPECT_EQ(parseOk({}).drift_check_interval, milliseconds(60'000));
  EXPECT_EQ(parseOk({"--drift-check-interval=1s"}).drift_check_interval, milliseconds(1'000));
  EXPECT_EQ(parseOk({"--drift-check-interval=0"}).drift_check_interval, milliseconds(0));
  EXPECT_EQ(parseOk({}, {{"TS_KUBE_DRIFT_CHECK_INTERVAL", "5m"}}).drift_check_interval,
            milliseconds(300'000));
  TempYaml yaml("drift-check-interval: 24h\n");
  EXPECT_EQ(parseOk({"--config", yaml.path()}).drift_check_interval, milliseconds(24 * 3'600'000));
  const auto help = helpText();
  EXPECT_NE(help.find("--drift-check-interval"), std::string::npos);
  EXPECT_NE(help.find("TS_KUBE_DRIFT_CHECK_INTERVAL"), std::string::npos);
}

TEST(Config, ForeignKeysPolicyHasAFlagAnEnvironmentVariableAndADefault) {
  EXPECT_EQ(parseOk({}).foreign_keys, ForeignKeyPolicy::Skip);
  EXPECT_EQ(parseOk({"--foreign-keys=overwrite"}).foreign_keys, ForeignKeyPolicy::Overwrite);
  EXPECT_EQ(parseOk({}, {{"TS_KUBE_FOREIGN_KEYS", "overwrite"}}).foreign_keys,
            ForeignKeyPolicy::Overwrite);
  TempYaml yaml("foreign-keys: skip\n");
  EXPECT_EQ(parseOk({"--config", yaml.path()}).foreign_keys, ForeignKeyPolicy::Skip);
  const auto err = parseError({"--foreign-keys=take"});
  EXPECT_NE(err.find("--foreign-keys"), std::string::npos) << err;
  EXPECT_NE(err.find("skip or overwrite"), std::string::npos) << err;
  const auto help = helpText();
  EXPECT_NE(help.find("--foreign-keys"), std::string::npos);
  EXPECT_NE(help.find("TS_KUBE_FOREIGN_KEYS"), std::string::npos);
}

TEST(Config, ObjectNamesAreValidatedAtStartSayingTheRule) {
  for (const std::string& flag : std::vector<std::string>{
           "--secret=Bad_Name", "--secret=a/b", "--configmap=UPPER", "--configmap=-lead",
           "--secret=trail.", "--secret=a..b", "--secret=" + std::string(254, 'a')}) {
    const auto err = parseError({flag});
    EXPECT_NE(err.find(flag.substr(0, flag.find('='))), std::string::npos) << flag << ": " << err;
    EXPECT_NE(err.find("DNS-1123 subdomain"), std::string::npos) << flag << ": " << err;
    EXPECT_NE(err.find("lower-case letters, digits, '-' and '.'"), std::string::npos) << err;
  }
  for (const std::string& flag :
       std::vector<std::string>{"--namespace=a/b", "--namespace=Tailscale", "--namespace=a.b",
                                "--namespace=" + std::string(64, 'a')}) {
    const auto err = parseError({flag});
    EXPECT_NE(err.find("--namespace"), std::string::npos) << flag << ": " << err;
    EXPECT_NE(err.find("DNS-1123 label"), std::string::npos) << flag << ": " << err;
  }
  auto err = parseError({}, {{"TS_KUBE_SECRET", "Bad_Name"}});
  EXPECT_NE(err.find("TS_KUBE_SECRET"), std::string::npos) << err;
  // Valid names, and "" (no target / the default namespace) still work.
  const auto cfg = parseOk({"--secret=ts-state.v1", "--configmap=" + std::string(253, 'a'),
                            "--namespace=" + std::string(63, 'n')});
  EXPECT_EQ(cfg.secret, "ts-state.v1");
  EXPECT_TRUE(parseOk({"--secret=", "--namespace="}).secret.empty());
  EXPECT_TRUE(checkDns1123Label("tailscale").ok());
  EXPECT_FALSE(checkDns1123Label("").ok());
  EXPECT_FALSE(checkDns1123Subdomain("").ok());
}

TEST(Config, SocketPathLongerThanSunPathIsAConfigurationError) {
  const std::string longest = "/" + std::string(kMaxSocketPathBytes - 1, 's');
  EXPECT_EQ(parseOk({"--socket=" + longest}).socket, longest);
  const auto err = parseError({"--socket=" + longest + "s"});
  EXPECT_NE(err.find("--socket"), std::string::npos) << err;
  EXPECT_NE(err.find("at most 107 bytes"), std::string::npos) << err;
  EXPECT_NE(err.find("this one has 108"), std::string::npos) << err;
}

TEST(Config, BadValueInTheFileNamesFileLineAndKey) {
  TempYaml yaml("log-format: yaml\n");
  const auto err = parseError({"--config", yaml.path()});
  EXPECT_NE(err.find("line 1"), std::string::npos) << err;
  EXPECT_NE(err.find("log-format"), std::string::npos) << err;
}

TEST(Config, UnknownFlagAndStrayArgumentsAreErrors) {
  EXPECT_NE(parseError({"--sokcet=/x"}).find("unknown flag --sokcet"), std::string::npos);
  EXPECT_NE(parseError({"serve"}).find("unexpected argument"), std::string::npos);
  EXPECT_NE(parseError({"--socket"}).find("needs a value"), std::string::npos);
}

TEST(Config, TrackPeersConflictsWithStatusFetch) {
  const auto err = parseError({"--track-peers", "--start-mode=status-fetch"});
  EXPECT_NE(err.find("initial-status"), std::string::npos) << err;
}

TEST(Config, HelpAndVersionAreActions) {
  EXPECT_EQ(parseConfig({"--help"}, envOf({}))->action, ConfigAction::Help);
  EXPECT_EQ(parseConfig({"--version"}, envOf({}))->action, ConfigAction::Version);
}

TEST(Config, HelpListsEveryOptionWithEnvAndDefault) {
  const auto help = helpText();
  for (const char* s : {"--socket",
                        "TS_SOCKET",
                        "--secret",
                        "TS_KUBE_SECRET",
                        "--configmap",
                        "TS_KUBE_CONFIGMAP",
                        "--namespace",
                        "POD_NAMESPACE",
                        "--kubeconfig",
                        "KUBECONFIG",
                        "--admin-addr",
                        "TS_LOCAL_ADDR_PORT",
                        "[::]:9002",
                        "--track-peers",
                        "TS_TRACK_PEERS",
                        "--pod-uid",
                        "POD_UID",
                        "--config",
                        "TS_AGENT_CONFIG",
                        "--log-format",
                        "TS_LOG_FORMAT",
                        "--shutdown-timeout",
                        "TS_SHUTDOWN_TIMEOUT",
                        "10s",
                        "--publish-wait",
                        "20ms:1s",
                        "--insecure-skip-tls-verify",
                        "--create-objects",
                        "secret-keys"}) {
    EXPECT_NE(help.find(s), std::string::npos) << s;
  }
}

// The options table's defaults are AgentConfig's: each default_value, applied to a default
// AgentConfig, is accepted and changes nothing (so --help and the docs show the real default).
TEST(Config, EveryTableDefaultIsAgentConfigsDefault) {
  for (const auto& o : options()) {
    SCOPED_TRACE(std::string(o.name));
    EXPECT_TRUE(o.default_note.empty() || o.default_value.empty())
        << "a row has a default value or a note, not both";
    AgentConfig c;
    EXPECT_EQ(o.rule.set(c, std::string(o.default_value)), std::nullopt);
    EXPECT_TRUE(c == AgentConfig{});
    EXPECT_FALSE(o.rule.accepted.empty());
    EXPECT_FALSE(shownDefault(o).empty());
  }
}

TEST(Config, HelpShowsEveryRowOfTheTable) {
  const auto help = helpText();
  for (const auto& o : options()) {
    const std::string head = "  --" + std::string(o.name) + " " + std::string(o.value_name) + "\n";
    const auto at = help.find(head);
    ASSERT_NE(at, std::string::npos) << o.name;
    const auto row = help.substr(at, help.find("\n  --", at + 1) - at);
    EXPECT_NE(row.find("env: " + std::string(o.env)), std::string::npos) << row;
    EXPECT_NE(row.find("default: " + std::string(shownDefault(o))), std::string::npos) << row;
    // The accepted values (with their bounds), wrapped like the rest.
    std::string flat;
    for (const char ch : row) flat += ch == '\n' ? ' ' : ch;
    while (flat.find("  ") != std::string::npos) flat.replace(flat.find("  "), 2, " ");
    EXPECT_NE(flat.find("accepts: " + o.rule.accepted), std::string::npos) << row;
  }
}

std::string readSourceFile(const std::string& relative) {
  std::ifstream in(std::string(TSK_SOURCE_DIR) + "/" + relative);
  EXPECT_TRUE(in.good()) << relative;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string unticked(std::string s) {
  std::erase(s, '`');
  return s;
}

// docs/OPERATIONS.md's options table lists exactly the table's options, in its order, with the
// same environment variable and default.
TEST(Config, OperationsDocTableMatchesTheOptionsTable) {
  const std::string doc = readSourceFile("docs/OPERATIONS.md");
  const auto start = doc.find("| flag | env | default | meaning |\n|---|---|---|---|\n");
  ASSERT_NE(start, std::string::npos) << "docs/OPERATIONS.md has no options table";
  std::istringstream rows(doc.substr(doc.find("|---|", start)));
  std::string line;
  std::getline(rows, line);  // |---|---|---|---|
  struct DocRow {
    std::string flag, env, default_text;
  };
  std::vector<DocRow> documented;
  while (std::getline(rows, line) && line.starts_with("|")) {
    std::vector<std::string> cells;
    std::istringstream cs(line.substr(1));
    std::string cell;
    while (std::getline(cs, cell, '|')) {
      cells.push_back(cell.substr(cell.find_first_not_of(' '),
                                  cell.find_last_not_of(' ') - cell.find_first_not_of(' ') + 1));
    }
    ASSERT_GE(cells.size(), 4u) << line;
    documented.push_back({unticked(cells[0]), unticked(cells[1]), unticked(cells[2])});
  }
  std::vector<std::string> doc_flags, table_flags;
  for (const auto& r : documented) doc_flags.push_back(r.flag);
  for (const auto& o : options()) table_flags.push_back("--" + std::string(o.name));
  ASSERT_EQ(doc_flags, table_flags) << "docs/OPERATIONS.md's rows differ from the table";
  for (size_t i = 0; i < documented.size(); ++i) {
    const auto& o = options()[i];
    EXPECT_EQ(documented[i].env, o.env.empty() ? "none" : std::string(o.env)) << o.name;
    EXPECT_EQ(documented[i].default_text, shownDefault(o)) << o.name;
  }
  // And the list of variables for which set-but-empty counts.
  const auto said = doc.find("counts only where empty means something (");
  ASSERT_NE(said, std::string::npos);
  const auto list = doc.substr(said, doc.find(')', said) - said);
  std::set<std::string> doc_empty, table_empty;
  for (size_t p = list.find('`'); p != std::string::npos; p = list.find('`', p + 1)) {
    const auto end = list.find('`', p + 1);
    doc_empty.insert(list.substr(p + 1, end - p - 1));
    p = end;
  }
  for (const auto& o : options()) {
    if (o.empty_allowed) table_empty.insert(std::string(o.env));
  }
  EXPECT_EQ(doc_empty, table_empty);
}

TEST(Config, DurationsParseGoStyle) {
  EXPECT_EQ(*parseDuration("10s"), milliseconds(10'000));
  EXPECT_EQ(*parseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(*parseDuration("1m30s"), milliseconds(90'000));
  EXPECT_EQ(*parseDuration("1.5s"), milliseconds(1'500));
  EXPECT_EQ(*parseDuration("0"), milliseconds(0));
  EXPECT_FALSE(parseDuration("10").ok());
  EXPECT_FALSE(parseDuration("s").ok());
  EXPECT_FALSE(parseDuration("-1s").ok());
}

TEST(Config, AdminAddressForms) {
  EXPECT_EQ(parseHostPort("[::]:9002")->host, "::");
  EXPECT_EQ(parseHostPort("[::]:9002")->port, 9002);
  EXPECT_EQ(parseHostPort("127.0.0.1:0")->host, "127.0.0.1");
  EXPECT_EQ(parseHostPort(":9002")->host, "::");
  EXPECT_FALSE(parseHostPort("::1:9002").ok());
  EXPECT_FALSE(parseHostPort("host:99999").ok());
}

}  // namespace
}  // namespace tsk::agent
