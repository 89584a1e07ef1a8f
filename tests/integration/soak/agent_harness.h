#pragma once
// Test harness for running the real ts-kube-agent binary against in-process simulators (the
// soak and security suites share it):
//   AgentProcess       spawns the binary (posix_spawn) with exactly the environment given,
//                      stdout+stderr to a log file; SIGKILLs and reaps it on destruction;
//                      finds the admin port in its log; samples its RSS from /proc.
//   ServiceAccountDir  a temp dir shaped like /var/run/secrets/kubernetes.io/serviceaccount
//                      (token, ca.crt, namespace); rotateToken() replaces the token atomically.
//   httpGet            one GET on 127.0.0.1:port (status 0 when the request failed).
//   (TempDir and eventually: tests/support/util.)
//
//   ServiceAccountDir sa(pki.caPem(), "tailscale", "token-1");
//   AgentProcess agent({.binary = TSK_AGENT_BIN,
//                       .args = {"--socket", sock, "--admin-addr", "127.0.0.1:0",
//                                "--service-account-dir", sa.path()},
//                       .env = inClusterEnv(emu.port()),
//                       .log_path = dir + "/agent.log"});
//   const int admin = agent.adminPort();
//   ASSERT_TRUE(eventually([&] { return httpGet(admin, "/readyz").status == 200; }, 30s, 50ms));
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/util/eventually.h"
#include "tests/support/util/temp_dir.h"

namespace tsk::testing {

using namespace std::chrono_literals;

struct HttpResult {
  int status = 0;  // 0: no response (refused, reset, timeout)
  std::string body;
};
HttpResult httpGet(int port, const std::string& path,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

// Writes `contents` to `path` through a temp file and rename (readers never see half a file).
void writeFileAtomically(const std::string& path, const std::string& contents);
std::string readWholeFile(const std::string& path);

class ServiceAccountDir {
 public:
  ServiceAccountDir(const std::string& ca_pem, const std::string& ns, const std::string& token);
  std::string path() const { return dir_.path().string(); }
  void rotateToken(const std::string& token);  // what kubelet does for bound tokens

 private:
  TempDir dir_;
};

// The environment an in-cluster pod sees, pointing at 127.0.0.1:<api_port>; plus PATH, and the
// sanitizer options of this process (so an instrumented agent reports the same way).
std::map<std::string, std::string> inClusterEnv(int api_port);

class AgentProcess {
 public:
  struct Options {
    std::string binary;
    std::vector<std::string> args;
    std::map<std::string, std::string> env;  // the whole environment of the child
    std::string log_path;                    // stdout and stderr, appended
    std::string cwd;                         // working directory ("" = the test's)
  };
  explicit AgentProcess(Options opts);  // throws std::runtime_error if spawning fails
  ~AgentProcess();                      // SIGKILL + waitpid if still running
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();                 // not exited (reaps it if it has)
  std::optional<int> exitCode();  // exit status, 128+signal; nullopt if running
  std::optional<int> waitExit(std::chrono::milliseconds deadline);
  void signal(int sig);
  std::string log() const;  // everything it printed so far
  // The port from the "admin server listening addr=HOST:PORT" line; -1 if it did not appear
  // (or the process exited) within the deadline.
  int adminPort(std::chrono::milliseconds deadline = std::chrono::milliseconds(30'000));
  // Resident set size from /proc/<pid>/status (VmRSS), 0 if unavailable.
  uint64_t rssBytes() const;
  // Regular files it holds open for writing right now (from /proc/<pid>/fd and fdinfo), other
  // than its log (stdout/stderr). A sidecar with a read-only root filesystem must have none.
  std::vector<std::string> filesOpenForWriting() const;

 private:
  Options opts_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace tsk::testing
