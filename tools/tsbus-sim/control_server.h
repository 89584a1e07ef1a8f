#pragma once
// ControlServer: the loopback HTTP control plane of tsbus-sim (cpp-httplib), so a person, the
// demo and the benchmark scripts can drive a running simulator with curl:
//
//   POST /selfchange        JSON body {name, addresses, stable_id, node_id, host_name, tags,
//                           user_id, key_expiry, node_key} (all optional): new identity +
//                           SelfChange
//   POST /selfchange-same?count=C   the unchanged identity again (as every full netmap
//                           sends it), C times (default 1)
//   POST /selfchange-every?ms=M   schedule (0 = off)
//   POST /state?value=N     State notification (ipn.State, 0-6 or anything else)
//   POST /restart?down_ms=D&remove_socket=0|1
//   POST /churn?rate=R      add+remove pairs per second (0 = off);  ?count=C: C pairs now
//   POST /pace?rate=R&kind=blank|selfchange&count=C   C lines sent one at a time at R lines/s
//                           (one send each without --coalesce-writes, like tailscaled's
//                           per-Notify Flush); rate=0 stops a running pace
//   POST /patch?count=C     PeerChangedPatch (Online toggles)
//   POST /blank?count=C     blank lines
//   POST /flood?count=C     C blank lines queued at once (default: queue capacity + 1), which
//                           closes every watcher with the fell-behind ErrMessage
//   POST /malformed         a non-JSON line (or the request body as the line)
//   POST /oversized?bytes=B a valid line of B bytes
//   POST /health?ok=0|1     Health notification;  POST /engine;  POST /err?text=T
//   POST /peers?count=N     N for later initial messages
//   POST /fail-watch?status=S&text=T   answer watch requests with S and T (S=0: off)
//   POST /bad-framing       bytes that break the chunked framing
//   GET  /stats             JSON: watchers, sent by kind, closed_slow, identity, ...
//
//   ControlServer control(sim);
//   auto port = control.start("127.0.0.1", 0);   // the bound port
//   control.stop();
#include <memory>
#include <string>

#include "common/result.h"
#include "tools/tsbus-sim/bus_sim.h"

namespace tsk::tsbus_sim {

class ControlServer {
 public:
  explicit ControlServer(BusSim& sim);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  Result<int> start(const std::string& host, int port);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The JSON of GET /stats.
std::string statsJson(const SimStats& s);

}  // namespace tsk::tsbus_sim
