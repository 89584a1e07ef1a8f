#include "tests/integration/real_tailscaled/real_tailscaled.h"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace tsk::testing::realts {
namespace {

using agent::e2e::eventually;
using namespace std::chrono_literals;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string envValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  }
  return "";
}

int portOf(const std::string& url) {
  const auto colon = url.rfind(':');
  return colon == std::string::npos ? 0 : std::atoi(url.c_str() + colon + 1);
}

}  // namespace

RealTsBinaries RealTsBinaries::load(const std::string& bindir_file) {
  RealTsBinaries b;
  const std::string skip_file = bindir_file + ".skip";
  if (fs::exists(skip_file)) {
    b.skip_reason = trim(readFile(skip_file));
    return b;
  }
  if (!fs::exists(bindir_file)) {
    b.error = bindir_file +
              " is missing: the ctest fixture real_tailscaled.build (scripts/real-tailscale/"
              "build.sh --bindir-file " +
              bindir_file + ") did not run or failed; run it and read its message";
    return b;
  }
  b.dir = trim(readFile(bindir_file));
  for (const char* name : {"tailscaled", "tailscale", "realts-control"}) {
    if (!fs::exists(fs::path(b.dir) / name)) {
      b.error = b.dir + "/" + name + " is missing; rerun scripts/real-tailscale/build.sh";
    }
  }
  return b;
}

RealTsControl::RealTsControl(const std::string& bin_dir, const fs::path& dir) {
  fs::create_directories(dir);
  const auto env_file = dir / "control.env";
  proc_ = std::make_unique<AgentProcess>(
      bin_dir + "/realts-control", std::vector<std::string>{"--env-file=" + env_file.string()},
      std::vector<std::string>{"HOME=" + dir.string()});
  if (!eventually([&] { return fs::exists(env_file); }, 30s)) {
    throw std::runtime_error("realts-control wrote no " + env_file.string() + ":\n" +
                             proc_->logs());
  }
  const std::string env = readFile(env_file);
  url = envValue(env, "REALTS_CONTROL_URL");
  admin_url = envValue(env, "REALTS_ADMIN_URL");
  admin_port_ = portOf(admin_url);
}

RealTsControl::~RealTsControl() {
  if (proc_ && proc_->running()) proc_->terminate(10s);
}

nlohmann::json RealTsControl::admin(const std::string& method, const std::string& path,
                                    const nlohmann::json& body) const {
  httplib::Client client("127.0.0.1", admin_port_);
  client.set_read_timeout(30, 0);
  const auto res = method == "GET" ? client.Get(path.c_str())
                                   : client.Post(path.c_str(), body.dump(), "application/json");
  if (!res) throw std::runtime_error("realts-control admin " + path + ": no answer");
  if (res->status != 200) {
    throw std::runtime_error("realts-control admin " + path + ": " + std::to_string(res->status) +
                             " " + res->body);
  }
  return nlohmann::json::parse(res->body);
}

RealTsNode::RealTsNode(std::string bin_dir, fs::path dir, std::string hostname,
                       std::string control_url)
    : bin_dir_(std::move(bin_dir)),
      dir_(std::move(dir)),
      hostname_(std::move(hostname)),
      control_url_(std::move(control_url)) {
  fs::create_directories(dir_ / "state");
  socket_ = (dir_ / "tailscaled.sock").string();
}

RealTsNode::~RealTsNode() {
  if (proc_ && proc_->running()) kill9();
}

void RealTsNode::start() {
  // As upstream's tstest/integration starts its test daemons (TestNode.StartDaemon and
  // daemonEnv): userspace networking, its own state dir and socket, no port mapping, never the
  // production control server, no log uploads.
  proc_ = std::make_unique<AgentProcess>(
      bin_dir_ + "/tailscaled",
      std::vector<std::string>{"--tun=userspace-networking",
                               "--statedir=" + (dir_ / "state").string(), "--socket=" + socket_,
                               "--port=0", "--no-logs-no-support"},
      std::vector<std::string>{"HOME=" + dir_.string(), "TS_LOGS_DIR=" + dir_.string(),
                               "TS_ASSUME_NETWORK_UP_FOR_TEST=1", "TS_DISABLE_PORTMAPPER=1",
                               "TS_PANIC_IF_HIT_MAIN_CONTROL=1",
                               "TS_NETCHECK_GENERATE_204_URL=" + control_url_ + "/generate_204"});
  if (!eventually(
          [&] {
            return cli({"status", "--json"}).exit_code == 0 || !proc_->running();
          },
          30s) ||
      !proc_->running()) {
    throw std::runtime_error("tailscaled did not answer on " + socket_ + ":\n" + proc_->logs());
  }
}

void RealTsNode::kill9() {
  if (!proc_) return;
  ::kill(proc_->pid(), SIGKILL);
  eventually([&] { return !proc_->running(); }, 10s);
}

void RealTsNode::sigterm() {
  if (proc_) proc_->terminate(20s);
}

bool RealTsNode::running() {
  return proc_ && proc_->running();
}

CommandOutput RealTsNode::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {bin_dir_ + "/tailscale", "--socket=" + socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  return runCommand(argv);
}

void RealTsNode::up(const std::vector<std::string>& extra) const {
  std::vector<std::string> args = {"up", "--login-server=" + control_url_,
                                   "--hostname=" + hostname_, "--timeout=60s"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto out = cli(args);
  if (out.exit_code != 0) {
    throw std::runtime_error("tailscale up failed (" + std::to_string(out.exit_code) +
                             "): " + out.out + out.err);
  }
}

nlohmann::json RealTsNode::status() const {
  const auto out = cli({"status", "--json"});
  if (out.exit_code != 0) return nullptr;
  return nlohmann::json::parse(out.out, nullptr, false);
}

size_t RealTsNode::statusPeerCount() const {
  const auto st = status();
  if (st.is_null() || !st.contains("Peer") || !st["Peer"].is_object()) return 0;
  size_t n = 0;
  for (const auto& [key, peer] : st["Peer"].items()) {
    if (peer.value("InNetworkMap", false)) ++n;
  }
  return n;
}

BusRecorder::BusRecorder(const std::string& socket, uint64_t mask, const fs::path& out)
    : out_(out) {
  const std::string url =
      "http://local-tailscaled.sock/localapi/v0/watch-ipn-bus?mask=" + std::to_string(mask);
  std::vector<std::string> argv_storage = {"/usr/bin/curl", "-sSN", "--unix-socket", socket, "-o",
                                           out.string(),    url};
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    const int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
}

BusRecorder::~BusRecorder() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

std::vector<std::string> BusRecorder::lines() const {
  std::vector<std::string> out;
  std::ifstream in(out_);
  std::string line;
  while (std::getline(in, line)) {
    if (!trim(line).empty()) out.push_back(line);
  }
  return out;
}

}  // namespace tsk::testing::realts
