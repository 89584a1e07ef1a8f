// The kube-emu executable: flags, --gen-certs, the printed URLs and port files, the control API,
// tokens and RBAC files, and a clean exit on SIGTERM.
#include <httplib.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/kube_emu/child_process.h"
#include "tests/support/util/temp_dir.h"

namespace tsk::kube_emu {
namespace {

using nlohmann::json;

constexpr std::chrono::seconds kDeadline{20};

class KubeEmuCli : public ::testing::Test {
 protected:
  std::unique_ptr<ChildProcess> run(std::vector<std::string> args) const {
    args.insert(args.begin(), KUBE_EMU_BINARY);
    return std::make_unique<ChildProcess>(args, std::vector<std::string>{});
  }
  static std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  tsk::testing::TempDir tmp_{"kube-emu-cli"};
  std::string dir_ = tmp_.path();
};

TEST_F(KubeEmuCli, HelpListsEveryFlag) {
  auto p = run({"--help"});
  ASSERT_TRUE(p->started()) << p->error();
  EXPECT_EQ(p->wait(), 0);
  for (const char* flag :
       {"--listen", "--cert", "--key", "--client-ca", "--token", "--rbac", "--allow-all-user",
        "--control-addr", "--port-file", "--control-port-file", "--gen-certs", "--kubeconfig-out",
        "--threads", "--log-level"}) {
    EXPECT_NE(p->output().find(flag), std::string::npos) << flag;
  }
}

TEST_F(KubeEmuCli, UnknownFlagExitsWithUsageError) {
  auto p = run({"--frobnicate"});
  EXPECT_EQ(p->wait(), 2);
  EXPECT_NE(p->output().find("unknown flag --frobnicate (see --help)"), std::string::npos)
      << p->output();
}

TEST_F(KubeEmuCli, MissingCertificateIsExplained) {
  auto p = run({"--listen", "127.0.0.1:0"});
  EXPECT_EQ(p->wait(), 2);
  EXPECT_NE(p->output().find("--cert and --key are required (or --gen-certs DIR)"),
            std::string::npos)
      << p->output();
}

TEST_F(KubeEmuCli, BadRbacFileNamesTheFileAndTheKey) {
  const std::string rbac = dir_ + "/rbac.yaml";
  std::ofstream(rbac) << "rules:\n- users: [u]\n  verbs: [get]\n  resources: [secrets]\n"
                      << "  colour: blue\n";
  auto p = run({"--gen-certs", dir_ + "/certs", "--rbac", rbac});
  EXPECT_EQ(p->wait(), 2);
  EXPECT_NE(p->output().find(rbac + ": rbac: rules[0]: unknown key \"colour\""), std::string::npos)
      << p->output();
}

TEST_F(KubeEmuCli, ServesWithGeneratedCertificatesAndIsDrivenByTheControlApi) {
  const std::string certs = dir_ + "/certs";
  const std::string rbac = dir_ + "/rbac.json";
  std::ofstream(rbac) << R"({"rules":[{"users":["agent"],"verbs":["get","list"],)"
                      << R"("resources":["secrets"]}]})";
  auto p = run({"--gen-certs", certs, "--token", "admin-token=admin", "--allow-all-user", "admin",
                "--token", "agent-token=agent", "--rbac", rbac, "--control-addr", "127.0.0.1:0",
                "--port-file", dir_ + "/api.port", "--control-port-file", dir_ + "/control.port",
                "--kubeconfig-out", dir_ + "/kubeconfig"});
  ASSERT_TRUE(p->started()) << p->error();
  std::smatch m;
  std::optional<std::string> line;
  int api_port = 0;
  int control_port = 0;
  while ((api_port == 0 || control_port == 0) && (line = p->readLine(kDeadline))) {
    static const std::regex api(R"(^api: https://127\.0\.0\.1:(\d+)$)");
    static const std::regex control(R"(^control: http://127\.0\.0\.1:(\d+)$)");
    if (std::regex_match(*line, m, api)) api_port = std::stoi(m[1]);
    if (std::regex_match(*line, m, control)) control_port = std::stoi(m[1]);
  }
  ASSERT_GT(api_port, 0) << p->output();
  ASSERT_GT(control_port, 0) << p->output();
  EXPECT_EQ(slurp(dir_ + "/api.port"), std::to_string(api_port) + "\n");
  EXPECT_EQ(slurp(dir_ + "/control.port"), std::to_string(control_port) + "\n");
  EXPECT_NE(slurp(dir_ + "/kubeconfig").find("token: admin-token"), std::string::npos);
  for (const char* f : {"ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key",
                        "other-ca.crt", "wrong-host.crt", "wrong-host.key"}) {
    EXPECT_TRUE(std::filesystem::exists(certs + "/" + f)) << f;
  }
  EXPECT_EQ(std::filesystem::status(certs + "/server.key").permissions() &
                std::filesystem::perms::others_read,
            std::filesystem::perms::none);

  httplib::SSLClient api("127.0.0.1", api_port);
  api.set_ca_cert_path((certs + "/ca.crt").c_str());
  api.enable_server_certificate_verification(true);
  const httplib::Headers agent = {{"Authorization", "Bearer agent-token"}};
  auto listed = api.Get("/api/v1/namespaces/ns/secrets", agent);
  ASSERT_TRUE(listed) << httplib::to_string(listed.error());
  EXPECT_EQ(listed->status, 200) << listed->body;  // granted by the RBAC file
  auto denied = api.Delete("/api/v1/namespaces/ns/secrets/x", agent);
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 403);

  httplib::Client control("127.0.0.1", control_port);
  auto fault = control.Post("/faults", R"({"kind":"status","status":500})", "application/json");
  ASSERT_TRUE(fault);
  EXPECT_EQ(fault->status, 200);
  EXPECT_EQ(api.Get("/api/v1/namespaces/ns/secrets", agent)->status, 500);
  auto log = control.Get("/log");
  ASSERT_TRUE(log);
  const json entries = json::parse(log->body)["entries"];
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[2]["fault"], "status");
  EXPECT_EQ(entries[0]["user"], "agent");

  p->signal(SIGTERM);
  EXPECT_EQ(p->wait(), 0) << p->output();
}

}  // namespace
}  // namespace tsk::kube_emu
