#pragma once
// AgentFixture: the real ts-kube-agent binary as a subprocess, against an in-process tsbus-sim
// (BusSim, on a unix socket in a temp dir) and an in-process kube-emu (HTTPS with a generated
// PKI, a bearer token and RBAC for the agent's service account). The agent reaches kube-emu
// through a kubeconfig file, exactly as it would reach a cluster from outside.
//
//   TEST_F(AgentFixture, Something) {
//     auto& agent = startAgent();                    // default flags + extra ones
//     ASSERT_TRUE(eventually([&] { return secretData().count("device_id"); }));
//     sim().selfChange({.addresses = {{"100.64.0.9"}}});
//     EXPECT_EQ(metric(agent, "ts_kube_agent_bus_connected"), 1);
//   }
// Used by agent_e2e_tests and by the latency benchmark (tests/bench/agent).
#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/util/eventually.h"
#include "tools/kube-emu/kube_emu.h"
#include "tools/tsbus-sim/bus_sim.h"

namespace tsk::agent::e2e {

inline constexpr const char* kNs = "tailscale";
inline constexpr const char* kSecret = "ts-state";
inline constexpr const char* kAgentUser = "system:serviceaccount:tailscale:agent";
inline constexpr const char* kAgentToken = "agent-token";

// A child process with its stderr collected line by line. SIGKILLed by the destructor if still
// running.
class AgentProcess {
 public:
  // The child's environment is PATH plus `env` ("NAME=value" entries), nothing inherited.
  AgentProcess(const std::string& binary, const std::vector<std::string>& args,
               const std::vector<std::string>& env = {});
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  // Waits for a log line containing `needle`; true if seen within `timeout`.
  bool waitForLog(const std::string& needle,
                  std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
  bool logContains(const std::string& needle) const;
  std::string logs() const;
  // The admin port, from the "admin server listening" line (0 if it never came).
  int adminPort();
  // SIGTERM, then waits; returns the exit status, or -1 if it did not exit within `timeout`.
  int terminate(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  bool running();
  pid_t pid() const { return pid_; }

 private:
  void readLoop();
  std::optional<int> reap(bool block);

  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
  std::optional<int> exit_status_;
  int admin_port_ = 0;
};

using tsk::testing::eventually;  // tests/support/util/eventually.h

struct HttpResult {
  int status = 0;  // 0: no answer
  std::string body;
};
HttpResult httpGet(int port, const std::string& path);

// The value of one series ("name" or "name{labels}") in Prometheus text; nullopt if absent.
std::optional<double> metricValue(const std::string& text, const std::string& series);

kube_emu::RbacPolicy agentPolicy(const std::vector<std::string>& verbs);

class AgentFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Starts the agent with the standard flags (socket, kubeconfig, namespace, secret, loopback
  // admin port 0, JSON logs) followed by `extra` (later flags win).
  AgentProcess& startAgent(const std::vector<std::string>& extra = {});
  std::vector<std::string> standardArgs() const;
  void restartSim(const tsbus_sim::SimOptions& opts);

  kube_emu::KubeEmu& emu() { return *emu_; }
  tsbus_sim::BusSim& sim() { return *sim_; }
  tsbus_sim::SimOptions defaultSimOptions() const;

  // The Secret's decoded data (empty if absent).
  std::map<std::string, std::string> secretData() const;
  void seedSecret(const std::map<std::string, std::string>& data);
  // Requests that changed an object (2xx PATCH/POST/PUT/DELETE) after log sequence `after`.
  std::vector<kube_emu::RequestRecord> writesAfter(uint64_t after) const;
  uint64_t lastSeq() const;

  // GET /metrics and the value of one series.
  std::optional<double> metric(AgentProcess& agent, const std::string& series);
  int readyzStatus(AgentProcess& agent, std::string* body = nullptr);

  std::string temp_dir_;
  std::string socket_path_;
  std::string kubeconfig_path_;
  std::unique_ptr<kube_emu::KubeEmu> emu_;
  std::unique_ptr<tsbus_sim::BusSim> sim_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
};

}  // namespace tsk::agent::e2e
