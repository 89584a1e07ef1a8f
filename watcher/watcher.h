#pragma once
// Watcher: the reconnecting bus reader. It owns a BusTransport (BusClient on the socket, or a
// fake in tests), a NotifyParser and the NodeStateReducer, runs on its own thread, and hands
// every snapshot the reducer publishes to a WatcherObserver. It never
// exits on its own: EOF, a missing socket, a refused connection, an HTTP error status or the
// fell-behind ErrMessage all lead to backoff (0.5 s doubling to 30 s, jittered, reset after a
// healthy minute), reconnect, and a resync from the fresh InitialStatus.
//
//   Watcher w(opts, observer, logger);   // or Watcher(opts, std::move(transport), ...)
//   w.start();   // spawns the thread
//   ...
//   w.stop();    // wakes it and joins; also done by the destructor
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/log.h"
#include "common/tailscaled_socket.h"
#include "watcher/bus_client.h"
#include "watcher/events.h"
#include "watcher/node_state_reducer.h"
#include "watcher/read_pacer.h"
#include "watcher/self_validation.h"

namespace tsk::watcher {

// How a session starts (docs/OPERATIONS.md#start-modes-and---track-peers). InitialStatus is the
// default; StatusFetch (docs/PROTOCOL.md#status-fetch-start-mode) is for giant tailnets that do not
// want peer counts: mask InitialState, then GET /localapi/v0/status?peers=false for the self
// identity.
enum class StartMode { InitialStatus, StatusFetch };

struct WatcherOptions {
  std::string socket_path{kDefaultTailscaledSocket};
  bool track_peers = false;  // adds NotifyPeerChanges|NotifyPeerPatches to the mask
  StartMode start_mode = StartMode::InitialStatus;
  uint64_t max_line_bytes = 1ull << 30;  // longer lines are skipped without buffering
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30'000};
  std::chrono::milliseconds healthy_reset{60'000};  // connection age that resets the backoff
  std::chrono::milliseconds connect_timeout{5'000};
  // BusClientOptions::max_read_delay: the read delay bound while lines come close together.
  std::chrono::microseconds max_read_delay{kDefaultMaxReadDelay};
};

// NodeState and NodeSnapshot (the reduced state of the node) live in watcher/node_state_reducer.h.

// Counters the watcher keeps; read by the agent for metrics.
struct WatcherStats {
  uint64_t notifies_by_kind[kNotifyKindCount] = {};
  uint64_t bytes_read = 0;
  uint64_t lines = 0;
  uint64_t malformed_lines = 0;
  uint64_t oversized_lines = 0;
  uint64_t connects = 0;
  uint64_t disconnects = 0;
  uint64_t self_changes = 0;  // NodeSnapshot::self_changes of the latest snapshot
  // Self nodes not published because validateSelf refused them, by SelfProblem (index).
  uint64_t invalid_self_nodes[kSelfProblemCount] = {};
  uint64_t largest_line = 0;
};

class WatcherObserver {
 public:
  virtual ~WatcherObserver() = default;
  // Each snapshot the reducer publishes, in order: after every event that changed NodeState
  // (connect, disconnect, initial status, status fetch, self change, state change, peer counts).
  // Called on the watcher thread; must not block for long.
  virtual void onStateChanged(const NodeSnapshotPtr& snapshot) = 0;
  // After every parsed line (cheap; used for rate metrics). Default: nothing.
  virtual void onNotify(uint32_t /*kinds*/, size_t /*bytes*/) {}
  virtual void onDisconnected(std::string_view /*reason*/) {}
  // A session ended or could not start; the next attempt is in `delay` (the backoff).
  virtual void onRetryScheduled(std::chrono::milliseconds /*delay*/) {}
};

class Watcher {
 public:
  // Reads the bus through a BusClient on opts.socket_path.
  Watcher(WatcherOptions opts, WatcherObserver& observer, Logger& log,
          Clock& clock = RealClock::instance());
  // Reads the bus through `transport` (kept for the watcher's life; stop() stops it).
  Watcher(WatcherOptions opts, std::unique_ptr<BusTransport> transport, WatcherObserver& observer,
          Logger& log, Clock& clock = RealClock::instance());
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  void start();
  void stop();
  NodeSnapshotPtr snapshot() const;  // the latest snapshot, thread-safe
  NodeState state() const;           // a copy of its state, thread-safe
  WatcherStats stats() const;        // a copy, thread-safe
  bool alive() const;                // the thread is running its loop (for /livez)
  uint64_t mask() const;             // the mask this watcher sends

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The mask for the given options (docs/PROTOCOL.md#the-watch-request-and-mask-bits): InitialStatus
// (16384) by default; with track_peers also PeerChanges|PeerPatches (4096|32768); StatusFetch uses
// InitialState (2). Never NotifyInitialNetMap (8) and never NotifyRateLimit (256).
uint64_t watchMask(const WatcherOptions& opts);

}  // namespace tsk::watcher
