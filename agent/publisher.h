#pragma once
// Publisher: keeps each target object (Secret and/or ConfigMap) holding the latest identity,
// with as few API writes as possible. It runs on its own thread.
//
//   Publisher pub(std::move(targets), {.wait_min = 20ms, .wait_max = 1s}, log, clock);
//   pub.start();
//   pub.submit(node_state);              // from the watcher thread; cheap when nothing changed
//   ...
//   pub.flush(deadline);                 // SIGTERM: write what is pending, now
//   pub.stop();
//
// Rules:
// - Latest wins: only the newest identity per target is kept; a failed write is retried with
//   backoff (1 s doubling to 30 s, jittered) using whatever identity is newest at that moment.
//   The publisher is the only retry layer: each store call is one API request (the client only
//   re-sends once after a 401 with a re-read token), so no older identity is ever retried
//   underneath, and stop() never waits for someone else's retry loop. A Retry-After (429, 503)
//   is honoured plus up to retry_after_jitter, so a fleet told to come back in N seconds does
//   not come back in the same instant.
// - Create-if-missing lives here (not in the store): the publisher reads the object before its
//   first write and after every failure, so it knows whether to POST or PATCH. A write that
//   finds the object changed since the read (PATCH 404: deleted; POST 409: created by someone
//   else; PATCH 409) reads it again and retries at once, once; then with backoff.
// - The object is read once (GET) before the first write, and again after a failed write; the
//   publisher then writes only keys whose values differ from what the object holds, as one
//   strategic-merge PATCH per target. A restart with an unchanged identity writes nothing.
//   Only our keys are decoded: a bad value in someone else's key never blocks a write, a bad
//   value in one of ours counts as "differs" and is rewritten.
// - Drift: someone may delete the object or overwrite our keys. Every drift_check_interval
//   (plus up to 10 % jitter), and at once after checkSoon() (the agent calls it on every bus
//   reconnect), the publisher re-reads each object that it believes in sync (one GET) and
//   writes only the keys that differ; nothing when nothing differs. Until the object holds the
//   latest identity again, status() says it is not in sync and why; drift_repairs counts repairs.
// - One writer per key: a key of ours that metadata.managedFields says another field manager
//   owns is left alone by default (WritePolicy; never written, deleted or "repaired", so two
//   writers never fight), logged once per key and manager, and reported in status().foreign_keys.
//   The target is in sync when the keys the agent may write hold the latest identity.
// - Bursts coalesce in a quiet window (consul-template's `wait`): a write happens once no
//   change arrived for wait_min, and at the latest wait_max after the first change. The first
//   sync after start does not wait: a restarted agent is ready at once.
// - flush() (SIGTERM) ignores the window, the backoff and Retry-After, retries every
//   flush_retry, and gives up early on errors that time will not fix (HTTP 400, 401, 403, 404,
//   422; configuration and TLS verification errors).
// - Every wait (quiet window, backoff, drift check, flush deadline) is a Clock::waitUntil: with
//   a ManualClock a test advances time, which wakes the thread, and waitIdle() returns once
//   everything then due is done.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "agent/identity.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/log.h"
#include "k8s/client.h"
#include "watcher/node_state_reducer.h"

namespace tsk::agent {

// QuietWindow: when a burst of changes should be written. Pure; the publisher's thread asks
// due() after every change.
class QuietWindow {
 public:
  QuietWindow(std::chrono::milliseconds min, std::chrono::milliseconds max)
      : min_(min), max_(max) {}
  void onChange(Clock::Monotonic now) {
    if (!first_) first_ = now;
    last_ = now;
  }
  // When to write: last change + min, capped at first change + max; nullopt when idle.
  std::optional<Clock::Monotonic> due() const {
    if (!first_) return std::nullopt;
    return std::min(last_ + min_, *first_ + max_);
  }
  void clear() { first_.reset(); }

 private:
  std::chrono::milliseconds min_;
  std::chrono::milliseconds max_;
  std::optional<Clock::Monotonic> first_;
  Clock::Monotonic last_{};
};

struct PublishTarget {
  std::string label;  // metric label: "secret" or "configmap"
  std::unique_ptr<k8s::ObjectStore> store;
  IdentitySettings identity;
};

// Our keys as the object holds them: value, or nullopt when the key is present but its value
// cannot be decoded (so it differs from any value we want). Keys absent from the object are
// absent here.
using ObservedKeys = std::map<std::string, std::optional<std::string>>;
// Our keys' field managers as the object's metadata.managedFields name them (k8s::ObjectData's
// `managers`); keys no entry names are absent.
using KeyManagers = std::map<std::string, std::set<std::string>>;

struct WritePolicy {
  std::string field_manager = "ts-kube-agent";  // ours (k8s::ClientOptions::field_manager)
  ForeignKeyPolicy foreign = ForeignKeyPolicy::Skip;
};

struct WritePlan {
  k8s::DataChanges changes;  // the PATCH: only keys that differ and that the policy lets us write
  // Our keys that a field manager other than ours owns -> those managers (whatever the policy;
  // under Skip they are never in `changes`).
  KeyManagers foreign;
};

// The write that makes an object holding `observed` (with `managers` owning its keys) hold
// `desired`: only the keys that differ (nullopt: delete the key); tailscaled's reserved keys
// never; keys another field manager owns per `policy`. The single place that decides which keys
// a write touches, for the first sync, every later one and every drift repair alike, fed by the
// same GET.
WritePlan keysToWrite(const KeyValues& desired, const ObservedKeys& observed,
                      const KeyManagers& managers = {}, const WritePolicy& policy = {});

struct PublisherOptions {
  std::chrono::milliseconds wait_min{20};
  std::chrono::milliseconds wait_max{1'000};
  bool create_objects = true;
  std::chrono::milliseconds retry_initial{1'000};
  std::chrono::milliseconds retry_max{30'000};
  // Added (uniformly random, up to this) to a server's Retry-After before retrying.
  std::chrono::milliseconds retry_after_jitter{1'000};
  std::chrono::milliseconds flush_retry{200};  // between attempts while flushing at shutdown
  // How often an object believed in sync is re-read to catch external changes; 0 = only when
  // checkSoon() asks.
  std::chrono::milliseconds drift_check_interval{60'000};
  // Keys another field manager owns (metadata.managedFields): skipped by default.
  WritePolicy write_policy;
};

// What /readyz and /metrics read, per target.
struct TargetStatus {
  std::string label;
  std::string object;  // "secret ns/name"
  bool in_sync = false;
  bool identity_known = false;
  std::string last_error;  // "" when the last attempt succeeded
  uint64_t written = 0;
  uint64_t unchanged = 0;
  uint64_t failed = 0;
  uint64_t drift_checks = 0;   // re-reads of an object believed in sync that got an answer
  uint64_t drift_repairs = 0;  // writes that restored keys someone else changed or deleted
  std::optional<Clock::Wall> last_write;  // last successful write
  // Last time the object was confirmed to hold the latest identity: a write, or a read that
  // found it already there (the first sync after a start, a drift check).
  std::optional<Clock::Wall> last_in_sync;
  // Our keys another field manager owned at the last read -> those managers (see WritePolicy).
  KeyManagers foreign_keys;
};

class Publisher {
 public:
  Publisher(std::vector<PublishTarget> targets, PublisherOptions opts, Logger& log,
            Clock& clock = RealClock::instance());
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  void start();
  // Stops the thread (after the current API call returns, at most one request: cancel the
  // ApiClient to cut that short).
  void stop();

  // The node state changed: recompute each target's identity; if any differs from the last
  // submitted one, (re)open the quiet window. Thread-safe; cheap when nothing changed.
  void submit(const watcher::NodeState& state);
  // The same with precomputed identities, one per target (nullopt: nothing to publish yet).
  void submitIdentities(const std::vector<std::optional<KeyValues>>& identities);

  // Shutdown: write anything pending at once (no quiet window, short retries) until every
  // target is in sync or `deadline` (on the publisher's clock) passes. Logs plainly what could
  // not be written. Returns true when everything was written.
  bool flush(Clock::Monotonic deadline);
  // Logs what flush() logs when its deadline passes (per target, the keys not yet written),
  // at once, also while a flush runs on another thread. Returns whether anything was pending.
  bool reportUnwritten() const;

  // Re-read every object at once and repair any drift (after a bus reconnect: whatever
  // happened meanwhile is caught without waiting for the periodic check). Thread-safe.
  void checkSoon();

  // Blocks until nothing is due at the clock's current time and no API call is in flight (the
  // thread waits for the clock or a submit), or the thread stopped. With a ManualClock: after
  // advance() or submit*(), everything then due has been done when this returns.
  void waitIdle() const;

  bool alive() const;
  std::vector<TargetStatus> status() const;
  bool allInSync() const;

 private:
  struct Target;
  enum class Outcome { Written, Unchanged, Failed };

  void run();
  bool somethingDue(Clock::Monotonic now) const;
  std::optional<Clock::Monotonic> nextWake() const;
  void syncDueTargets();
  Outcome syncTarget(Target& t, const KeyValues& desired, bool reread, Error& error,
                     std::vector<std::string>& changed_keys, std::optional<KeyManagers>& foreign);
  // How long to wait before retrying after `error` (under mu_).
  std::chrono::milliseconds retryDelay(Target& t, const Error& error, bool flushing);
  // Logs (once per key and manager) and records our keys another writer owns.
  void noteForeign(Target& t, KeyManagers foreign);
  bool checkDue(const Target& t, Clock::Monotonic now) const;
  std::optional<Clock::Monotonic> nextCheck(Clock::Monotonic now);
  // Logs each target with an unwritten identity; `no_error_reason` when no attempt failed yet.
  void logUnwritten(const std::string& no_error_reason) const;

  PublisherOptions opts_;
  Logger& log_;
  Clock& clock_;
  std::vector<std::unique_ptr<Target>> targets_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  QuietWindow window_;
  bool stopping_ = false;
  bool flushing_ = false;
  bool alive_ = false;
  bool busy_ = false;                                // an API call is in flight
  std::minstd_rand jitter_{std::random_device{}()};  // drift-check and Retry-After jitter; mu_
  std::thread thread_;
};

}  // namespace tsk::agent
