#include "agent/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

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
  explicit TempYaml(const std::string& text) {
    char tmpl[] = "/tmp/agent-config-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/agent.yaml";
    std::ofstream(path_) << text;
  }
  ~TempYaml() { std::filesystem::remove_all(dir_); }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
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
    EXPECT_NE(err.find("config file " + path + " is not a regular file"), std::string::npos) << err;
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
  EXPECT_NE(err.find("at least 4096"), std::string::npos) << err;
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
