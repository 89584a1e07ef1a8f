#include "watcher/watcher.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "common/backoff.h"
#include "watcher/bus_client.h"
#include "watcher/daemon_version.h"
#include "watcher/notify_parser.h"
#include "watcher/status_json.h"

namespace tsk::watcher {
namespace {

constexpr uint64_t kNotifyInitialState = 2;
constexpr uint64_t kNotifyPeerChanges = 4096;
constexpr uint64_t kNotifyInitialStatus = 16384;
constexpr uint64_t kNotifyPeerPatches = 32768;

constexpr std::string_view kFellBehind = "IPN bus consumer fell behind; closing watch";
constexpr uint64_t kMaxStatusBody = 4ull << 20;  // status?peers=false is a few KB

std::string millis(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + "ms";
}

}  // namespace

uint64_t watchMask(const WatcherOptions& opts) {
  uint64_t mask =
      opts.start_mode == StartMode::StatusFetch ? kNotifyInitialState : kNotifyInitialStatus;
  if (opts.track_peers) mask |= kNotifyPeerChanges | kNotifyPeerPatches;
  return mask;
}

// The watcher thread's machinery. The NotifyHandler callbacks run on that thread only; the
// latest snapshot (a shared pointer) and the stats are kept under `mu` for other threads.
struct Watcher::Impl final : ReducingHandler {
  WatcherOptions opts;
  WatcherObserver& observer;
  Logger& log;
  Clock& clock;
  const uint64_t mask;
  std::unique_ptr<BusTransport> transport;
  BusTransport& client;
  NotifyParser parser;
  StopSignal stop_signal;
  std::thread thread;
  std::atomic<bool> alive{false};
  std::atomic<bool> started{false};

  mutable std::mutex mu;
  NodeSnapshotPtr published;
  WatcherStats stats;

  // Watcher thread only.
  uint64_t failed_attempts = 0;  // connection attempts that failed since the last success
  std::string end_reason;        // set when a line ends the session (fell behind)
  uint64_t malformed_burst = 0;  // malformed/oversized lines since the last good one
  uint64_t invalid_seen = 0;     // reducer.invalidSelfNodesTotal() last copied into stats
  bool warned_old_daemon = false;

  Impl(WatcherOptions o, std::unique_ptr<BusTransport> t, WatcherObserver& obs, Logger& l, Clock& c)
      : ReducingHandler(l, ReducerOptions{.track_peers = o.track_peers}),
        opts(std::move(o)),
        observer(obs),
        log(l),
        clock(c),
        mask(watchMask(opts)),
        transport(std::move(t)),
        client(*transport),
        parser(*this, ParserOptions{.track_peers = opts.track_peers,
                                    .max_line_bytes = opts.max_line_bytes}),
        published(reducer.latest()) {}

  // ----- publishing -----------------------------------------------------------------------

  // Hands on the reducer's snapshot, if the last event changed anything.
  void publish() {
    NodeSnapshotPtr snap = reducer.publish();
    if (!snap) return;
    {
      std::lock_guard lock(mu);
      published = snap;
      stats.self_changes = snap->self_changes;
    }
    observer.onStateChanged(snap);
  }

  // Copies the reducer's count of refused self nodes into the stats when it moved.
  void noteInvalidSelfNodes() {
    if (reducer.invalidSelfNodesTotal() != invalid_seen) {
      invalid_seen = reducer.invalidSelfNodesTotal();
      std::lock_guard lock(mu);
      std::copy(std::begin(reducer.invalidSelfNodes()), std::end(reducer.invalidSelfNodes()),
                std::begin(stats.invalid_self_nodes));
    }
  }

  // ----- NotifyHandler --------------------------------------------------------------------

  void onNotify(const Notify& n) override {
    {
      std::lock_guard lock(mu);
      ++stats.lines;
      for (int bit = 0; bit < kNotifyKindCount; ++bit) {
        if (n.kinds & (1u << bit)) ++stats.notifies_by_kind[bit];
      }
      stats.largest_line = std::max<uint64_t>(stats.largest_line, n.bytes);
    }
    if (malformed_burst > 1) {
      log.info("bus: the stream is parsing again",
               {{"skipped_lines", std::to_string(malformed_burst)}});
    }
    malformed_burst = 0;
    reducer.apply(n);
    noteInvalidSelfNodes();
    publish();
    if (n.err_message) onErrMessage(*n.err_message);
    observer.onNotify(n.kinds, n.bytes);
  }

  void onErrMessage(const std::string& text) {
    if (text == kFellBehind) {
      end_reason = "tailscaled closed the watch: " + text;
      return;
    }
    log.warn("tailscaled reported an error", {{"err_message", text}});
  }

  void onMalformed(std::string_view reason, size_t line_bytes) override {
    {
      std::lock_guard lock(mu);
      ++stats.malformed_lines;
      stats.largest_line = std::max<uint64_t>(stats.largest_line, line_bytes);
    }
    if (malformed_burst++ == 0) {
      log.warn(
          "bus: skipped a malformed line (further ones until the next good line are "
          "counted, not logged)",
          {{"reason", std::string(reason)}, {"bytes", std::to_string(line_bytes)}});
    }
  }

  void onOversized(size_t line_bytes) override {
    {
      std::lock_guard lock(mu);
      ++stats.oversized_lines;
      stats.largest_line = std::max<uint64_t>(stats.largest_line, line_bytes);
    }
    if (malformed_burst++ == 0) {
      log.warn("bus: skipped a line longer than max_line_bytes without buffering it",
               {{"bytes", std::to_string(line_bytes)},
                {"max_line_bytes", std::to_string(opts.max_line_bytes)}});
    }
  }

  void onLineAborted() override {
    reducer.onLineAborted();
    publish();
  }

  // ----- sessions -------------------------------------------------------------------------

  struct SessionResult {
    bool connected = false;  // the watch got its 200
    std::string reason;      // why it ended (or why it could not start)
  };

  SessionResult runSession() {
    SessionResult result;
    auto head = client.openWatch(mask);
    if (!head) {
      result.reason = head.error().message;
      return result;
    }
    result.connected = true;
    end_reason.clear();
    malformed_burst = 0;
    parser.reset();
    {
      std::lock_guard lock(mu);
      ++stats.connects;
    }
    log.info("bus connected", {{"socket", opts.socket_path},
                               {"mask", std::to_string(mask)},
                               {"tailscale_version", head->tailscale_version},
                               {"after_failed_attempts", std::to_string(failed_attempts)}});
    const bool status_fetch =
        opts.start_mode == StartMode::StatusFetch || !knowsInitialStatus(*head);
    reducer.onConnected(head->tailscale_version);
    publish();

    if (status_fetch) {
      if (auto st = fetchStatus(); !st) {
        result.reason = st.error().message;
        client.close();
        return result;
      }
    }
    const BodyEnd end = client.readBody([this](std::string_view bytes) {
      {
        std::lock_guard lock(mu);
        stats.bytes_read += bytes.size();
      }
      parser.feed(bytes);
      return end_reason.empty();
    });
    client.close();
    if (parser.reset()) {
      std::lock_guard lock(mu);
      ++stats.malformed_lines;  // a truncated last line
    }
    if (!end_reason.empty()) {
      result.reason = end_reason;
    } else if (end.kind == BodyEndKind::Complete) {
      result.reason = "tailscaled ended the watch (end of the response body)";
    } else {
      result.reason = end.message;
    }
    return result;
  }

  // Whether the daemon sends an InitialStatus for our mask. One before 1.100 ignores the bit
  // (docs/PROTOCOL.md#released-versions): the snapshot then comes from /localapi/v0/status, as
  // in StartMode::StatusFetch, and peer counts are unknown. Said once per process.
  bool knowsInitialStatus(const ResponseHead& head) {
    const auto v = parseDaemonVersion(head.tailscale_version);
    if (!v || v->atLeast(kFirstWithInitialStatus)) return true;
    if (!warned_old_daemon) {
      warned_old_daemon = true;
      const bool no_selfchange = !v->atLeast(kFirstWithSelfChange);
      log.warn(no_selfchange
                   ? "tailscaled is older than 1.98: it sends no SelfChange, so the identity is "
                     "read from /localapi/v0/status at each connect and changes in between go "
                     "unseen; upgrade tailscaled (1.100 or later)"
                   : "tailscaled is older than 1.100: it ignores the InitialStatus watch bit, so "
                     "the identity is read from /localapi/v0/status instead (peer counts "
                     "unknown); upgrade tailscaled for peer counts",
               {{"tailscale_version", head.tailscale_version}});
    }
    return false;
  }

  // StartMode::StatusFetch (docs/PROTOCOL.md#status-fetch-start-mode): the watch is registered (we
  // hold its 200), so a SelfChange after this snapshot cannot be missed.
  Status fetchStatus() {
    std::string body;
    auto head = client.get(
        "/localapi/v0/status?peers=false",
        [&](std::string_view bytes) {
          body.append(bytes);
          return true;
        },
        kMaxStatusBody);
    if (!head) return Error{"cannot read the initial status: " + head.error().message};
    std::string error;
    auto st = parseStatusJson(body, &error);
    if (!st) return Error{"tailscaled's /localapi/v0/status reply is not a Status: " + error};
    reducer.applyStatus(*st);
    noteInvalidSelfNodes();
    publish();
    return {};
  }

  // ----- the loop -------------------------------------------------------------------------

  void run() {
    Backoff backoff(opts.backoff_initial, opts.backoff_max);
    std::string last_reason;
    while (!stop_signal.stopped()) {
      const auto began = clock.monotonicNow();
      const SessionResult r = runSession();
      if (stop_signal.stopped()) break;
      if (r.connected) {
        failed_attempts = 0;
        {
          std::lock_guard lock(mu);
          ++stats.disconnects;
        }
        reducer.onDisconnected();
        publish();
        observer.onDisconnected(r.reason);
        if (clock.monotonicNow() - began >= opts.healthy_reset) backoff.reset();
      } else {
        ++failed_attempts;
      }
      const auto delay = backoff.next();
      if (r.connected || r.reason != last_reason) {
        log.warn(r.connected ? "bus disconnected; reconnecting" : "cannot watch the bus; retrying",
                 {{"reason", r.reason}, {"retry_in", millis(delay)}});
      } else {
        log.debug("bus still unavailable", {{"reason", r.reason},
                                            {"attempts", std::to_string(failed_attempts)},
                                            {"retry_in", millis(delay)}});
      }
      last_reason = r.reason;
      // The retry is due `delay` after now on the injected clock (a ManualClock in the unit
      // tests), taken before the observer runs so that an observer moving the clock counts.
      const auto retry_at = clock.monotonicNow() + delay;
      observer.onRetryScheduled(delay);
      stop_signal.waitUntil(clock, retry_at);
    }
  }
};

Watcher::Watcher(WatcherOptions opts, WatcherObserver& observer, Logger& log, Clock& clock)
    : Watcher(opts,
              std::make_unique<BusClient>(BusClientOptions{.socket_path = opts.socket_path,
                                                           .connect_timeout = opts.connect_timeout,
                                                           .max_read_delay = opts.max_read_delay}),
              observer, log, clock) {}

Watcher::Watcher(WatcherOptions opts, std::unique_ptr<BusTransport> transport,
                 WatcherObserver& observer, Logger& log, Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(opts), std::move(transport), observer, log, clock)) {}

Watcher::~Watcher() {
  stop();
}

void Watcher::start() {
  auto& d = *impl_;
  if (d.started.exchange(true)) return;
  d.alive = true;
  d.thread = std::thread([&d] {
    d.run();
    d.alive = false;
  });
}

void Watcher::stop() {
  auto& d = *impl_;
  d.stop_signal.stop();
  d.client.stop();
  if (d.thread.joinable()) d.thread.join();
}

NodeSnapshotPtr Watcher::snapshot() const {
  std::lock_guard lock(impl_->mu);
  return impl_->published;
}

NodeState Watcher::state() const {
  return snapshot()->state;
}

WatcherStats Watcher::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

bool Watcher::alive() const {
  return impl_->alive;
}

uint64_t Watcher::mask() const {
  return impl_->mask;
}

}  // namespace tsk::watcher
