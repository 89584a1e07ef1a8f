#pragma once
// Test support for the suite that runs the agent against real tailscaled daemons (built from
// tailscale.com v1.102.5 by scripts/real-tailscale/build.sh) and a real control server
// (realts-control: tailscale's testcontrol with an admin API, tools/realts/cmd/realts-control).
// Everything listens on 127.0.0.1 or unix sockets in a temp dir.
//
//   auto bins = RealTsBinaries::load();                 // the build fixture's bin dir, or a skip
//   RealTsControl control(bins->dir, tmp / "control");  // one control server per test
//   RealTsNode a(bins->dir, tmp / "a", "node-a", control.url);
//   a.start(); a.up();                                  // tailscaled, then `tailscale up`
//   nlohmann::json st = a.status();                     // `tailscale status --json`
//   control.admin("POST", "/rename", {{"node", id}, {"name", "x"}});
//   a.kill9(); a.start();                               // same state dir
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/agent/agent_fixture.h"
#include "tests/integration/real_apiserver/real_apiserver.h"

namespace tsk::testing::realts {

namespace fs = std::filesystem;
using agent::e2e::AgentProcess;

// Where the build fixture put the binaries. `skip_reason` is set when the build was skipped
// because no Go toolchain is installed (the only reason this suite may skip); `error` when the
// bin dir is missing for any other reason.
struct RealTsBinaries {
  std::string dir;
  std::string skip_reason;
  std::string error;
  static RealTsBinaries load(const std::string& bindir_file);
};

// realts-control as a child process; its URLs come from the env file it writes.
class RealTsControl {
 public:
  RealTsControl(const std::string& bin_dir, const fs::path& dir);
  ~RealTsControl();
  // Sends a JSON request to the admin API; throws with the answer when it is not 200.
  nlohmann::json admin(const std::string& method, const std::string& path,
                       const nlohmann::json& body = nlohmann::json::object()) const;
  std::string url;        // http://127.0.0.1:PORT, for `tailscale up --login-server`
  std::string admin_url;  // http://127.0.0.1:PORT
  std::string logs() const { return proc_->logs(); }

 private:
  int admin_port_ = 0;
  std::unique_ptr<AgentProcess> proc_;
};

// One tailscaled (userspace networking, its own state dir and socket) and its CLI.
class RealTsNode {
 public:
  RealTsNode(std::string bin_dir, fs::path dir, std::string hostname, std::string control_url);
  ~RealTsNode();
  void start();    // tailscaled on the state dir; returns once the socket answers `status`
  void kill9();    // SIGKILL and reap (the state dir stays)
  void sigterm();  // SIGTERM and reap
  bool running();
  // `tailscale --socket=SOCK args...`.
  CommandOutput cli(const std::vector<std::string>& args) const;
  // `tailscale up --login-server=URL --hostname=NAME`; throws with the output on failure.
  void up(const std::vector<std::string>& extra = {}) const;
  nlohmann::json status() const;  // `tailscale status --json`; null when it fails
  // Peers in `tailscale status --json` that are in the network map. tailscaled 1.102.5 keeps a
  // peer that a full netmap dropped in its status as a magicsock-only entry ("ID":"",
  // "InNetworkMap":false, "InMagicSock":true) until a later netmap change; that one is not a peer.
  size_t statusPeerCount() const;
  const std::string& socket() const { return socket_; }
  const fs::path& dir() const { return dir_; }
  std::string logs() const { return proc_ ? proc_->logs() : ""; }

 private:
  std::string bin_dir_;
  fs::path dir_;
  std::string hostname_;
  std::string control_url_;
  std::string socket_;
  std::unique_ptr<AgentProcess> proc_;
};

// Records the raw Notify lines of one watch-ipn-bus stream (`curl -N --unix-socket`) into a
// file, for the fixtures under tests/data/real-tailscaled. Stops (SIGTERM) on destruction.
class BusRecorder {
 public:
  BusRecorder(const std::string& socket, uint64_t mask, const fs::path& out);
  ~BusRecorder();
  BusRecorder(const BusRecorder&) = delete;
  BusRecorder& operator=(const BusRecorder&) = delete;
  std::vector<std::string> lines() const;  // the non-empty lines recorded so far

 private:
  pid_t pid_ = -1;
  fs::path out_;
};

}  // namespace tsk::testing::realts
