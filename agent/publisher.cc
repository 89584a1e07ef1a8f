#include "agent/publisher.h"

#include <algorithm>
#include <cassert>
#include <map>

namespace tsk::agent {
namespace {

using std::chrono::milliseconds;

std::string joinKeys(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) {
    if (!out.empty()) out += ',';
    out += k;
  }
  return out;
}

std::string keyNames(const KeyValues& kv) {
  std::vector<std::string> names;
  for (const auto& [k, v] : kv) names.push_back(k);
  return joinKeys(names);
}

constexpr size_t kMaxWarnedForeign = 256;

std::string millisText(milliseconds d) {
  return std::to_string(d.count()) + "ms";
}

// The write found the object other than the read said (deleted, created or changed meanwhile):
// reading it again fixes that, waiting does not.
bool staleView(const Error& e) {
  return e.kind == ErrorKind::Http && (e.http_status == 404 || e.http_status == 409);
}

// At shutdown there is no time to wait for someone to fix RBAC, the configuration, the CA or
// the object; time fixes none of these.
bool permanent(const Error& e) {
  switch (e.kind) {
    case ErrorKind::Config:
    case ErrorKind::Tls:
      return true;
    case ErrorKind::Http:
      return e.http_status == 400 || e.http_status == 401 || e.http_status == 403 ||
             e.http_status == 404 || e.http_status == 422;
    default:
      return false;
  }
}

}  // namespace

std::string_view foreignKeyPolicyName(ForeignKeyPolicy p) {
  return p == ForeignKeyPolicy::Skip ? "skip" : "overwrite";
}

WritePlan keysToWrite(const KeyValues& desired, const ObservedKeys& observed,
                      const KeyManagers& managers, const WritePolicy& policy) {
  WritePlan plan;
  for (const auto& [key, value] : desired) {
    if (isReservedKey(key)) continue;  // tailscaled's own state: never ours to write
    if (const auto m = managers.find(key); m != managers.end()) {
      std::set<std::string> others = m->second;
      others.erase(policy.field_manager);
      if (!others.empty()) {
        plan.foreign.emplace(key, std::move(others));
        if (policy.foreign == ForeignKeyPolicy::Skip) continue;  // its owner's, not ours
      }
    }
    const auto it = observed.find(key);
    if (!value) {
      if (it != observed.end()) plan.changes.emplace(key, std::nullopt);
    } else if (it == observed.end() || it->second != *value) {
      plan.changes.emplace(key, *value);  // absent, different, or not decodable
    }
  }
  return plan;
}

struct Publisher::Target {
  explicit Target(PublishTarget t, const PublisherOptions& o)
      : spec(std::move(t)), backoff(o.retry_initial, o.retry_max) {}

  PublishTarget spec;
  Backoff backoff;
  // Guarded by Publisher::mu_.
  std::optional<KeyValues> desired;
  uint64_t desired_gen = 0;
  uint64_t synced_gen = 0;
  std::optional<Clock::Monotonic> retry_at;
  TargetStatus status;
  std::string pending_keys;   // keys the last failed attempt could not write
  bool attempted = false;     // a first sync was tried (it skips the quiet window)
  bool reread_retry = false;  // the last failure was a stale view, retried at once
  bool gave_up = false;       // flushing at shutdown: a permanent error (403, 404, ...) seen
  // A drift check failed or found the object differing: sync it again although the identity
  // did not change.
  bool stale = false;
  bool repairing = false;                    // the object differed: the next write repairs it
  std::optional<Clock::Monotonic> check_at;  // when to re-read the object (drift check)
  // Only touched by the publisher thread: our keys as the object holds them; nullopt = unknown,
  // read the object before the next write.
  std::optional<ObservedKeys> held;
  KeyManagers held_managers;  // who owns our keys, from the same read as `held`
  // (key, manager) pairs already logged as foreign-owned (each is logged once).
  std::set<std::pair<std::string, std::string>> warned_foreign;
  bool exists = true;  // the last GET found the object

  bool dirty() const { return desired && (desired_gen != synced_gen || stale); }
  // Due without waiting for the quiet window: the very first sync after start (a restart
  // should be ready at once; bursts are what the window is for).
  bool immediate() const { return !attempted; }
};

Publisher::Publisher(std::vector<PublishTarget> targets, PublisherOptions opts, Logger& log,
                     Clock& clock)
    : opts_(opts), log_(log), clock_(clock), window_(opts.wait_min, opts.wait_max) {
  for (auto& t : targets) {
    auto target = std::make_unique<Target>(std::move(t), opts_);
    target->status.label = target->spec.label;
    target->status.object = target->spec.store->describe();
    targets_.push_back(std::move(target));
  }
}

Publisher::~Publisher() {
  stop();
}

void Publisher::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  alive_ = true;
  thread_ = std::thread([this] { run(); });
}

void Publisher::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Publisher::waitIdle() const {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] {
    return stopping_ || !alive_ || (!busy_ && !somethingDue(clock_.monotonicNow()));
  });
}

void Publisher::checkSoon() {
  {
    std::lock_guard lock(mu_);
    const auto now = clock_.monotonicNow();
    for (auto& t : targets_) t->check_at = now;
  }
  cv_.notify_all();
}

bool Publisher::checkDue(const Target& t, Clock::Monotonic now) const {
  return !flushing_ && t.desired && !t.dirty() && !t.gave_up && t.check_at && *t.check_at <= now;
}

std::optional<Clock::Monotonic> Publisher::nextCheck(Clock::Monotonic now) {
  if (opts_.drift_check_interval <= milliseconds(0)) return std::nullopt;
  const auto jitter_max = opts_.drift_check_interval.count() / 10;
  std::uniform_int_distribution<int64_t> jitter(0, jitter_max);
  return now + opts_.drift_check_interval + milliseconds(jitter(jitter_));
}

void Publisher::submit(const watcher::NodeState& state) {
  std::vector<std::optional<KeyValues>> ids;
  ids.reserve(targets_.size());
  for (const auto& t : targets_) ids.push_back(identityFor(state, t->spec.identity));
  submitIdentities(ids);
}

void Publisher::submitIdentities(const std::vector<std::optional<KeyValues>>& identities) {
  assert(identities.size() == targets_.size());
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < targets_.size() && i < identities.size(); ++i) {
      auto& t = *targets_[i];
      const auto& id = identities[i];
      if (!id || id == t.desired) continue;  // unknown yet, or the same: keep the last one
      t.desired = *id;
      ++t.desired_gen;
      t.status.identity_known = true;
      changed = true;
    }
    if (changed) window_.onChange(clock_.monotonicNow());
  }
  if (changed) cv_.notify_all();
}

bool Publisher::somethingDue(Clock::Monotonic now) const {
  const auto due = window_.due();
  const bool window_due = flushing_ || (due && *due <= now);
  for (const auto& t : targets_) {
    if (checkDue(*t, now)) return true;
    if (!t->dirty() || t->gave_up) continue;
    if (t->retry_at ? *t->retry_at <= now : (window_due || t->immediate())) return true;
  }
  return false;
}

std::optional<Clock::Monotonic> Publisher::nextWake() const {
  std::optional<Clock::Monotonic> next;
  for (const auto& t : targets_) {
    if (!t->dirty()) {
      const bool checks = t->desired && t->check_at && !flushing_ && !t->gave_up;
      if (checks && (!next || *t->check_at < *next)) next = t->check_at;
      continue;
    }
    const auto at = t->retry_at ? t->retry_at : window_.due();
    if (at && (!next || *at < *next)) next = at;
  }
  return next;
}

void Publisher::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const auto now = clock_.monotonicNow();
    if (somethingDue(now)) {
      lock.unlock();
      syncDueTargets();
      lock.lock();
      continue;
    }
    cv_.notify_all();  // idle: waitIdle() callers may return
    if (const auto wake_at = nextWake()) {
      clock_.waitUntil(lock, cv_, *wake_at);
    } else {
      cv_.wait(lock);
    }
  }
  alive_ = false;
  cv_.notify_all();
}

void Publisher::syncDueTargets() {
  struct Job {
    Target* target;
    KeyValues desired;
    uint64_t gen;
    bool reread;  // read the object first, whatever we believe it holds
    bool check;   // only a drift check: the identity did not change
  };
  std::vector<Job> jobs;
  bool flushing = false;
  {
    std::lock_guard lock(mu_);
    const auto now = clock_.monotonicNow();
    const auto due = window_.due();
    flushing = flushing_;
    const bool window_due = flushing_ || (due && *due <= now);
    if (window_due) window_.clear();
    for (auto& t : targets_) {
      const bool reread = t->check_at && *t->check_at <= now;
      if (checkDue(*t, now)) {
        jobs.push_back({t.get(), *t->desired, t->desired_gen, true, true});
        continue;
      }
      if (!t->dirty() || t->gave_up) continue;
      if (t->retry_at ? *t->retry_at > now : !(window_due || t->immediate())) continue;
      t->attempted = true;
      jobs.push_back({t.get(), *t->desired, t->desired_gen, reread, false});
    }
    busy_ = true;
  }

  for (auto& job : jobs) {
    Target& t = *job.target;
    Error error;
    std::vector<std::string> changed;
    std::optional<KeyManagers> foreign;  // set when the object was read (or known)
    const Outcome outcome = syncTarget(t, job.desired, job.reread, error, changed, foreign);
    std::lock_guard lock(mu_);
    if (foreign) noteForeign(t, std::move(*foreign));
    flushing = flushing_;  // a flush may have begun while the request was in flight
    auto& st = t.status;
    const bool read_failed = job.check && outcome == Outcome::Failed && changed.empty();
    if (job.check && !read_failed) ++st.drift_checks;
    if (job.check && !changed.empty() && !t.repairing) {
      t.repairing = true;
      log_.warn(
          "the object no longer holds the latest identity (deleted, or keys changed by someone "
          "else); rewriting the keys that differ",
          {{"object", st.object}, {"keys", joinKeys(changed)}});
    }
    if (outcome == Outcome::Failed) {
      if (job.check) t.stale = true;  // retried with backoff until the object is repaired
      ++st.failed;
      // Warn on a new kind of error and every tenth repeat; the rest at debug level.
      const bool news = error.message != st.last_error || st.failed % 10 == 1;
      st.in_sync = false;
      st.last_error = error.message;
      // A write that found the object changed since the read: read again and retry at once,
      // once in a row (a second one is treated like any failure).
      const bool reread_at_once = staleView(error) && !t.reread_retry && opts_.create_objects;
      t.reread_retry = reread_at_once;
      if (flushing && permanent(error) && !reread_at_once) t.gave_up = true;
      t.pending_keys = changed.empty() ? keyNames(job.desired) : joinKeys(changed);
      const auto delay = reread_at_once ? milliseconds(0) : retryDelay(t, error, flushing);
      t.retry_at = clock_.monotonicNow() + delay;
      log_.log(news ? LogLevel::Warn : LogLevel::Debug,
               read_failed      ? "drift check failed: cannot read the object; retrying"
               : reread_at_once ? "the object changed between read and write; reading it again "
                                  "and retrying at once with the latest identity"
                                : "identity write failed; retrying with the latest identity",
               {{"object", st.object}, {"error", error.message}, {"retry_in", millisText(delay)}});
      continue;
    }
    if (!st.last_error.empty()) log_.info("identity in sync again", {{"object", st.object}});
    t.check_at = nextCheck(clock_.monotonicNow());
    st.last_in_sync = clock_.wallNow();                // written, or read back unchanged
    if (job.check && outcome == Outcome::Unchanged) {  // no drift: nothing else to record
      log_.debug("drift check: the object holds the latest identity", {{"object", st.object}});
      continue;
    }
    const bool repaired = t.repairing && outcome == Outcome::Written;
    t.repairing = false;
    t.stale = false;
    t.synced_gen = job.gen;
    t.retry_at.reset();
    t.backoff.reset();
    t.reread_retry = false;
    t.pending_keys.clear();
    st.in_sync = true;
    st.last_error.clear();
    if (outcome == Outcome::Written) {
      ++st.written;
      st.last_write = clock_.wallNow();
      if (repaired) {
        ++st.drift_repairs;
        log_.info("identity repaired", {{"object", st.object}, {"keys", joinKeys(changed)}});
      } else {
        log_.info("identity written", {{"object", st.object}, {"keys", joinKeys(changed)}});
      }
    } else {
      ++st.unchanged;
      log_.debug("identity unchanged; nothing written", {{"object", st.object}});
    }
  }

  {
    std::lock_guard lock(mu_);
    busy_ = false;
  }
  cv_.notify_all();
}

void Publisher::noteForeign(Target& t, KeyManagers foreign) {
  const auto policy = opts_.write_policy.foreign;
  for (const auto& [key, managers] : foreign) {
    for (const auto& manager : managers) {
      // Bounded: keys are the configured ones, managers come from one object's managedFields;
      // past kMaxWarnedForeign pairs (many writers over a long run) the rest go unlogged.
      if (t.warned_foreign.size() >= kMaxWarnedForeign) break;
      if (!t.warned_foreign.emplace(key, manager).second) continue;
      log_.warn(policy == ForeignKeyPolicy::Skip
                    ? "another field manager owns this key: leaving it to that writer (not "
                      "written, deleted or repaired; --foreign-keys=overwrite takes it)"
                    : "another field manager owns this key: overwriting it "
                      "(--foreign-keys=overwrite); the two writers will take turns",
                {{"object", t.status.object},
                 {"key", key},
                 {"field_manager", manager},
                 {"policy", std::string(foreignKeyPolicyName(policy))}});
    }
  }
  t.status.foreign_keys = std::move(foreign);
}

Publisher::Outcome Publisher::syncTarget(Target& t, const KeyValues& desired, bool reread,
                                         Error& error, std::vector<std::string>& changed_keys,
                                         std::optional<KeyManagers>& foreign) {
  if (reread) t.held.reset();
  if (!t.held) {
    k8s::KeyFilter ours;
    for (const auto& [k, v] : desired) ours.insert(k);
    auto got = t.spec.store->get(ours);
    if (!got) {
      error = got.error();
      return Outcome::Failed;
    }
    ObservedKeys held;
    t.exists = got->has_value();
    t.held_managers.clear();
    if (got->has_value()) {
      for (const auto& [k, v] : (*got)->data) held.emplace(k, v);
      for (const auto& k : (*got)->undecodable) held.emplace(k, std::nullopt);
      t.held_managers = std::move((*got)->managers);
    }
    t.held = std::move(held);
  }

  auto plan = keysToWrite(desired, *t.held, t.held_managers, opts_.write_policy);
  foreign = plan.foreign;
  const k8s::DataChanges& changes = plan.changes;
  for (const auto& [k, v] : changes) changed_keys.push_back(k);
  if (changes.empty()) return Outcome::Unchanged;

  // The one place that decides to create the object: the read said it is absent (a PATCH would
  // only answer 404). Without create_objects the PATCH's 404 says what is missing.
  Status st;
  if (!t.exists && opts_.create_objects) {
    std::map<std::string, std::string> data;
    for (const auto& [k, v] : changes) {
      if (v) data.emplace(k, *v);
    }
    st = t.spec.store->create(data);
  } else {
    st = t.spec.store->patch(changes);
  }
  if (!st) {
    error = st.error();
    t.held.reset();  // the object may differ from what we think; read it again first
    return Outcome::Failed;
  }
  t.exists = true;
  for (const auto& [k, v] : changes) {
    // A write that changed a value makes us its only (Update) owner; a deleted key has none.
    if (v) {
      (*t.held)[k] = *v;
      t.held_managers[k] = {opts_.write_policy.field_manager};
    } else {
      t.held->erase(k);
      t.held_managers.erase(k);
    }
  }
  return Outcome::Written;
}

milliseconds Publisher::retryDelay(Target& t, const Error& error, bool flushing) {
  if (flushing) return opts_.flush_retry;
  milliseconds delay = t.backoff.next();
  if (error.retry_after) {
    std::uniform_int_distribution<int64_t> jitter(
        0, std::max<int64_t>(0, opts_.retry_after_jitter.count()));
    delay = std::max(delay, *error.retry_after + milliseconds(jitter(jitter_)));
  }
  return delay;
}

bool Publisher::flush(Clock::Monotonic deadline) {
  std::unique_lock lock(mu_);
  flushing_ = true;
  for (auto& t : targets_) t->retry_at.reset();  // try at once, whatever the backoff said
  cv_.notify_all();
  clock_.waitUntil(lock, cv_, deadline, [&] {
    const bool pending = std::any_of(targets_.begin(), targets_.end(),
                                     [](const auto& t) { return t->dirty() && !t->gave_up; });
    return (!pending && !busy_) || !alive_;
  });
  const bool all_written =
      std::none_of(targets_.begin(), targets_.end(), [](const auto& t) { return t->dirty(); });
  if (!all_written) logUnwritten("deadline passed");
  return all_written;
}

bool Publisher::reportUnwritten() const {
  std::lock_guard lock(mu_);
  const bool pending =
      std::any_of(targets_.begin(), targets_.end(), [](const auto& t) { return t->dirty(); });
  if (pending) logUnwritten("shutdown interrupted by a second signal");
  return pending;
}

void Publisher::logUnwritten(const std::string& no_error_reason) const {
  for (const auto& t : targets_) {
    if (!t->dirty()) continue;
    const std::string keys = t->pending_keys.empty() ? keyNames(*t->desired) : t->pending_keys;
    log_.error(
        "shutdown: the latest identity was NOT written; the object may hold stale values",
        {{"object", t->status.object},
         {"keys", keys},
         {"last_error", t->status.last_error.empty() ? no_error_reason : t->status.last_error}});
  }
}

bool Publisher::alive() const {
  std::lock_guard lock(mu_);
  return alive_ && thread_.joinable();
}

std::vector<TargetStatus> Publisher::status() const {
  std::lock_guard lock(mu_);
  std::vector<TargetStatus> out;
  out.reserve(targets_.size());
  for (const auto& t : targets_) out.push_back(t->status);
  return out;
}

bool Publisher::allInSync() const {
  std::lock_guard lock(mu_);
  return std::all_of(targets_.begin(), targets_.end(),
                     [](const auto& t) { return t->status.in_sync; });
}

}  // namespace tsk::agent
