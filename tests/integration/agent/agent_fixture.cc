#include "tests/integration/agent/agent_fixture.h"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "k8s/base64.h"
#include "tests/support/tls/test_tls.h"

namespace tsk::agent::e2e {
namespace {

namespace fs = std::filesystem;

const tsk::testing::TestPki& pki() {
  static const tsk::testing::TestPki p;
  return p;
}

}  // namespace

AgentProcess::AgentProcess(const std::string& binary, const std::vector<std::string>& args,
                           const std::vector<std::string>& env) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  std::vector<std::string> argv_storage = {binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  // Everything the child needs is prepared before fork(): after it, only async-signal-safe
  // calls (the parent has threads).
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage = {"PATH=/usr/bin:/bin"};
  // Sanitizer settings reach the child, so a report there fails the test as it would here.
  for (const char* name : {"ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"}) {
    if (const char* v = std::getenv(name)) env_storage.push_back(std::string(name) + "=" + v);
  }
  env_storage.insert(env_storage.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(fds[1], STDERR_FILENO);
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(fds[1]);
  stderr_fd_ = fds[0];
  reader_ = std::thread([this] { readLoop(); });
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0 && !reap(false)) {
    kill(pid_, SIGKILL);
    reap(true);
  }
  if (reader_.joinable()) reader_.join();
  if (stderr_fd_ >= 0) close(stderr_fd_);
}

void AgentProcess::readLoop() {
  std::string partial;
  char buf[4096];
  while (true) {
    const ssize_t n = read(stderr_fd_, buf, sizeof buf);
    if (n <= 0) break;
    partial.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = partial.find('\n')) != std::string::npos) {
      std::lock_guard lock(mu_);
      lines_.push_back(partial.substr(0, nl));
      partial.erase(0, nl + 1);
    }
  }
  if (!partial.empty()) {
    std::lock_guard lock(mu_);
    lines_.push_back(partial);
  }
}

bool AgentProcess::logContains(const std::string& needle) const {
  std::lock_guard lock(mu_);
  for (const auto& l : lines_) {
    if (l.find(needle) != std::string::npos) return true;
  }
  return false;
}

bool AgentProcess::waitForLog(const std::string& needle, std::chrono::milliseconds timeout) const {
  return eventually([&] { return logContains(needle); }, timeout);
}

std::string AgentProcess::logs() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& l : lines_) out += l + "\n";
  return out;
}

int AgentProcess::adminPort() {
  if (admin_port_ > 0) return admin_port_;
  const std::string marker = "\"addr\":\"127.0.0.1:";
  if (!waitForLog("admin server listening")) return 0;
  std::lock_guard lock(mu_);
  for (const auto& l : lines_) {
    const auto pos = l.find(marker);
    if (l.find("admin server listening") == std::string::npos || pos == std::string::npos) {
      continue;
    }
    admin_port_ = std::atoi(l.c_str() + pos + marker.size());
  }
  return admin_port_;
}

std::optional<int> AgentProcess::reap(bool block) {
  if (exit_status_) return exit_status_;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (r != pid_) return std::nullopt;
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_status_;
}

bool AgentProcess::running() {
  return !reap(false);
}

int AgentProcess::terminate(std::chrono::milliseconds timeout) {
  if (!reap(false)) kill(pid_, SIGTERM);
  std::optional<int> status;
  eventually([&] { return (status = reap(false)).has_value(); }, timeout);
  if (reader_.joinable() && status) reader_.join();
  return status.value_or(-1);
}

HttpResult httpGet(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  const auto res = client.Get(path);
  if (!res) return {};
  return {res->status, res->body};
}

std::optional<double> metricValue(const std::string& text, const std::string& series) {
  size_t pos = 0;
  while ((pos = text.find(series + " ", pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') {
      return std::strtod(text.c_str() + pos + series.size() + 1, nullptr);
    }
    pos += series.size();
  }
  return std::nullopt;
}

kube_emu::RbacPolicy agentPolicy(const std::vector<std::string>& verbs) {
  kube_emu::RbacPolicy policy;
  policy.admin_users = {"admin"};
  kube_emu::RbacRule rule;
  rule.users = {kAgentUser};
  rule.verbs = verbs;
  rule.resources = {"secrets", "configmaps"};
  rule.namespaces = {kNs};
  policy.rules.push_back(rule);
  return policy;
}

tsbus_sim::SimOptions AgentFixture::defaultSimOptions() const {
  tsbus_sim::SimOptions o;
  o.socket_path = socket_path_;
  o.peers = 20;
  return o;
}

void AgentFixture::SetUp() {
  ASSERT_FALSE(pki().caPem().empty());
  std::string tmpl = (fs::temp_directory_path() / "tsk-agent-e2e-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  temp_dir_ = tmpl;
  socket_path_ = temp_dir_ + "/tailscaled.sock";

  kube_emu::KubeEmuOptions eo;
  eo.cert_file = pki().serverCert();
  eo.key_file = pki().serverKey();
  eo.tokens = {{kAgentToken, kAgentUser, {}}};
  eo.rbac = agentPolicy({"get", "create", "patch"});
  eo.threads = 4;
  emu_ = std::make_unique<kube_emu::KubeEmu>(eo);
  ASSERT_TRUE(emu_->start().ok());

  kubeconfig_path_ = temp_dir_ + "/kubeconfig";
  std::ofstream(kubeconfig_path_) << "apiVersion: v1\nkind: Config\n"
                                  << "clusters:\n- name: emu\n  cluster:\n    server: "
                                  << emu_->url()
                                  << "\n    certificate-authority: " << pki().caCert() << "\n"
                                  << "users:\n- name: agent\n  user:\n    token: " << kAgentToken
                                  << "\n"
                                  << "contexts:\n- name: emu\n  context:\n    cluster: emu\n"
                                  << "    user: agent\n    namespace: " << kNs << "\n"
                                  << "current-context: emu\n";

  sim_ = std::make_unique<tsbus_sim::BusSim>(defaultSimOptions());
  ASSERT_TRUE(sim_->start().ok());
}

void AgentFixture::restartSim(const tsbus_sim::SimOptions& opts) {
  sim_->stop();
  sim_ = std::make_unique<tsbus_sim::BusSim>(opts);
  ASSERT_TRUE(sim_->start().ok());
}

void AgentFixture::TearDown() {
  for (auto& a : agents_) {
    if (a->running()) {
      const int status = a->terminate();
      EXPECT_EQ(status, 0) << "the agent did not shut down cleanly";
    }
    const std::string log = a->logs();
    EXPECT_EQ(log.find("Sanitizer"), std::string::npos) << "a sanitizer report in the agent";
    if (HasFailure() || std::getenv("TSK_E2E_SHOW_LOGS")) {
      std::cerr << "--- agent log (pid " << a->pid() << ") ---\n" << log;
    }
  }
  agents_.clear();
  if (sim_) sim_->stop();
  if (emu_) emu_->stop();
  std::error_code ec;
  fs::remove_all(temp_dir_, ec);
}

std::vector<std::string> AgentFixture::standardArgs() const {
  return {"--socket=" + socket_path_,        "--kubeconfig=" + kubeconfig_path_,
          std::string("--namespace=") + kNs, std::string("--secret=") + kSecret,
          "--admin-addr=127.0.0.1:0",        "--log-format=json",
          "--pod-uid=pod-uid-1234"};
}

AgentProcess& AgentFixture::startAgent(const std::vector<std::string>& extra) {
  auto args = standardArgs();
  args.insert(args.end(), extra.begin(), extra.end());
  agents_.push_back(std::make_unique<AgentProcess>(TSK_AGENT_BIN, args));
  return *agents_.back();
}

std::map<std::string, std::string> AgentFixture::secretData() const {
  std::map<std::string, std::string> out;
  const auto obj = emu_->store().find(kube_emu::Resource::kSecrets, kNs, kSecret);
  if (!obj || !obj->contains("data")) return out;
  for (const auto& [k, v] : (*obj)["data"].items()) {
    out[k] = k8s::base64Decode(v.get<std::string>()).value_or("<bad base64>");
  }
  return out;
}

void AgentFixture::seedSecret(const std::map<std::string, std::string>& data) {
  nlohmann::json encoded = nlohmann::json::object();
  for (const auto& [k, v] : data) encoded[k] = k8s::base64Encode(v);
  const nlohmann::json obj = {{"metadata", {{"name", kSecret}}}, {"data", encoded}};
  // The seeded keys are owned (managedFields) as if a previous run of the agent wrote them.
  ASSERT_EQ(
      emu_->store().create(kube_emu::Resource::kSecrets, kNs, obj.dump(), {"ts-kube-agent"}).code,
      201);
}

std::vector<kube_emu::RequestRecord> AgentFixture::writesAfter(uint64_t after) const {
  std::vector<kube_emu::RequestRecord> out;
  for (auto& r : emu_->requestLog(after)) {
    if (r.method != "GET" && r.status >= 200 && r.status < 300) out.push_back(r);
  }
  return out;
}

uint64_t AgentFixture::lastSeq() const {
  const auto log = emu_->requestLog();
  return log.empty() ? 0 : log.back().seq;
}

std::optional<double> AgentFixture::metric(AgentProcess& agent, const std::string& series) {
  const auto res = httpGet(agent.adminPort(), "/metrics");
  if (res.status != 200) return std::nullopt;
  return metricValue(res.body, series);
}

int AgentFixture::readyzStatus(AgentProcess& agent, std::string* body) {
  const auto res = httpGet(agent.adminPort(), "/readyz");
  if (body) *body = res.body;
  return res.status;
}

}  // namespace tsk::agent::e2e
