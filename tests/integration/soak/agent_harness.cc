#include "tests/integration/soak/agent_harness.h"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace tsk::testing {

namespace fs = std::filesystem;

HttpResult httpGet(int port, const std::string& path, std::chrono::milliseconds timeout) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_keep_alive(false);
  auto res = client.Get(path.c_str());
  if (!res) return {};
  return {res->status, res->body};
}

void writeFileAtomically(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << contents;
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  fs::rename(tmp, path);
}

std::string readWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ServiceAccountDir::ServiceAccountDir(const std::string& ca_pem, const std::string& ns,
                                     const std::string& token)
    : dir_("tsk-sa") {
  writeFileAtomically(dir_.file("ca.crt"), ca_pem);
  writeFileAtomically(dir_.file("namespace"), ns);
  writeFileAtomically(dir_.file("token"), token);
}

void ServiceAccountDir::rotateToken(const std::string& token) {
  writeFileAtomically(dir_.file("token"), token);
}

std::map<std::string, std::string> inClusterEnv(int api_port) {
  std::map<std::string, std::string> env = {
      {"KUBERNETES_SERVICE_HOST", "127.0.0.1"},
      {"KUBERNETES_SERVICE_PORT", std::to_string(api_port)},
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
  };
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"}) {
    if (const char* v = std::getenv(name)) env[name] = v;
  }
  return env;
}

AgentProcess::AgentProcess(Options opts) : opts_(std::move(opts)) {
  std::vector<std::string> argv_s = {opts_.binary};
  argv_s.insert(argv_s.end(), opts_.args.begin(), opts_.args.end());
  std::vector<std::string> env_s;
  for (const auto& [k, v] : opts_.env) env_s.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, opts_.log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  // Nothing else of ours leaks into the agent (ctest's log, our sockets): only 0, 1 and 2.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (!opts_.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, opts_.cwd.c_str());
  // The test process may block signals in its threads; the agent starts with a clean mask.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  const int rc =
      posix_spawn(&pid_, opts_.binary.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    pid_ = -1;
    throw std::runtime_error("cannot start " + opts_.binary + ": " + std::strerror(rc));
  }
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

std::optional<int> AgentProcess::exitCode() {
  if (exit_code_ || pid_ <= 0) return exit_code_;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return exit_code_;
}

bool AgentProcess::running() {
  return !exitCode().has_value();
}

std::optional<int> AgentProcess::waitExit(std::chrono::milliseconds deadline) {
  eventually([&] { return exitCode().has_value(); }, deadline, 20ms);
  return exit_code_;
}

void AgentProcess::signal(int sig) {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, sig);
}

std::string AgentProcess::log() const {
  return readWholeFile(opts_.log_path);
}

int AgentProcess::adminPort(std::chrono::milliseconds deadline) {
  static const std::regex kListening(R"(admin server listening[^\n]*addr="?[^ "\n]*:(\d+))");
  int port = -1;
  eventually(
      [&] {
        std::smatch m;
        const std::string text = log();
        if (std::regex_search(text, m, kListening)) {
          port = std::stoi(m[1]);
          return true;
        }
        return !running();
      },
      deadline, 50ms);
  return port;
}

uint64_t AgentProcess::rssBytes() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

std::vector<std::string> AgentProcess::filesOpenForWriting() const {
  std::vector<std::string> out;
  const std::string proc = "/proc/" + std::to_string(pid_);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(proc + "/fd", ec)) {
    const std::string fd = e.path().filename().string();
    if (fd == "1" || fd == "2") continue;  // the log the test gave it
    const std::string target = fs::read_symlink(e.path(), ec).string();
    if (ec || target.empty() || target[0] != '/' || target.rfind("/dev/", 0) == 0) continue;
    std::ifstream info(proc + "/fdinfo/" + fd);
    std::string key;
    unsigned flags = 0;
    while (info >> key) {
      if (key == "flags:") {
        info >> std::oct >> flags;
        break;
      }
    }
    if ((flags & O_ACCMODE) != O_RDONLY) out.push_back(target);
  }
  return out;
}

}  // namespace tsk::testing
