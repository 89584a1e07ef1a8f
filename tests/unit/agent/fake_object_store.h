#pragma once
// FakeObjectStore: an in-memory k8s::ObjectStore for the publisher's unit tests (no HTTPS, no
// emulator). It behaves like one Secret behind KubeObjectStore: get() answers nullopt for an
// absent object, create() 409 for an existing one, patch() 404 for a missing one; writes make
// the writer the owner (metadata.managedFields) of the keys they set. Tests inject errors per
// verb, change the object behind the publisher's back, and read the calls made.
//
// The publisher owns the store (unique_ptr); the test keeps the shared State.
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "k8s/client.h"
#include "k8s/errors.h"

namespace tsk::agent::testing {

class FakeObjectStore final : public k8s::ObjectStore {
 public:
  struct Call {
    std::string verb;                            // "get", "create", "patch"
    std::map<std::string, std::string> created;  // create: the data
    k8s::DataChanges changes;                    // patch: the changes
    bool failed = false;
  };

  class State {
   public:
    // The next call of `verb` ("get", "create", "patch") fails with `error` (queued in order).
    void failNext(const std::string& verb, Error error) {
      std::lock_guard lock(mu_);
      faults_.push_back({verb, std::move(error)});
    }
    // Every call of `verb` fails with `error` until clearFaults().
    void failAlways(const std::string& verb, Error error) {
      std::lock_guard lock(mu_);
      always_[verb] = std::move(error);
    }
    // Runs `fn` when the next call of `verb` arrives, before the store answers it (on the
    // publisher's thread, no store lock held): someone else acting between the publisher's read
    // and its write, or a newer identity arriving while a write is in flight.
    void beforeNext(const std::string& verb, std::function<void()> fn) {
      std::lock_guard lock(mu_);
      hooks_.push_back({verb, std::move(fn)});
    }
    void clearFaults() {
      std::lock_guard lock(mu_);
      faults_.clear();
      always_.clear();
    }
    // Someone else creates/changes the object (`manager` then owns the keys set).
    void put(const std::map<std::string, std::string>& data, const std::string& manager) {
      std::lock_guard lock(mu_);
      if (!object_) object_.emplace();
      for (const auto& [k, v] : data) {
        (*object_)[k] = v;
        managers_[k] = {manager};
      }
    }
    // A key whose value does not decode (not base64, not a string).
    void putUndecodable(const std::string& key, const std::string& manager) {
      std::lock_guard lock(mu_);
      if (!object_) object_.emplace();
      object_->erase(key);
      undecodable_.insert(key);
      managers_[key] = {manager};
    }
    void remove() {
      std::lock_guard lock(mu_);
      object_.reset();
      managers_.clear();
      undecodable_.clear();
    }
    std::optional<std::map<std::string, std::string>> object() const {
      std::lock_guard lock(mu_);
      return object_;
    }
    std::vector<Call> calls() const {
      std::lock_guard lock(mu_);
      return calls_;
    }
    size_t count(const std::string& verb) const {
      std::lock_guard lock(mu_);
      size_t n = 0;
      for (const auto& c : calls_) n += c.verb == verb ? 1 : 0;
      return n;
    }
    // Successful create/patch calls.
    size_t writes() const {
      std::lock_guard lock(mu_);
      size_t n = 0;
      for (const auto& c : calls_) n += c.verb != "get" && !c.failed ? 1 : 0;
      return n;
    }

   private:
    friend class FakeObjectStore;
    void runHook(const std::string& verb) {
      std::function<void()> fn;
      {
        std::lock_guard lock(mu_);
        for (auto it = hooks_.begin(); it != hooks_.end(); ++it) {
          if (it->first == verb) {
            fn = std::move(it->second);
            hooks_.erase(it);
            break;
          }
        }
      }
      if (fn) fn();
    }
    std::optional<Error> takeFault(const std::string& verb) {
      if (auto it = always_.find(verb); it != always_.end()) return it->second;
      for (auto it = faults_.begin(); it != faults_.end(); ++it) {
        if (it->first == verb) {
          Error e = std::move(it->second);
          faults_.erase(it);
          return e;
        }
      }
      return std::nullopt;
    }

    mutable std::mutex mu_;
    std::optional<std::map<std::string, std::string>> object_;
    std::map<std::string, std::set<std::string>> managers_;
    std::set<std::string> undecodable_;
    std::deque<std::pair<std::string, Error>> faults_;
    std::map<std::string, Error> always_;
    std::deque<std::pair<std::string, std::function<void()>>> hooks_;
    std::vector<Call> calls_;
  };

  static constexpr const char* kDescription = "secret tailscale/ts-state";

  explicit FakeObjectStore(std::shared_ptr<State> state,
                           std::string field_manager = "ts-kube-agent")
      : state_(std::move(state)), field_manager_(std::move(field_manager)) {}

  static k8s::ObjectRef ref() { return {"secrets", "tailscale", "ts-state"}; }

  Result<std::optional<k8s::ObjectData>> get(const k8s::KeyFilter& only) override {
    state_->runHook("get");
    std::lock_guard lock(state_->mu_);
    state_->calls_.push_back({"get", {}, {}, false});
    if (auto e = state_->takeFault("get")) return fail(*e);
    if (!state_->object_) return std::optional<k8s::ObjectData>();
    k8s::ObjectData out;
    const auto wanted = [&](const std::string& k) { return only.empty() || only.contains(k); };
    for (const auto& [k, v] : *state_->object_) {
      if (wanted(k)) out.data[k] = v;
    }
    for (const auto& k : state_->undecodable_) {
      if (wanted(k)) out.undecodable.insert(k);
    }
    for (const auto& [k, m] : state_->managers_) {
      if (wanted(k)) out.managers[k] = m;
    }
    return std::optional<k8s::ObjectData>(std::move(out));
  }

  Status create(const std::map<std::string, std::string>& data) override {
    state_->runHook("create");
    std::lock_guard lock(state_->mu_);
    state_->calls_.push_back({"create", data, {}, false});
    if (auto e = state_->takeFault("create")) return fail(*e);
    if (state_->object_) {
      return fail(Error{std::string(kDescription) + " already exists (create answered 409)", 409});
    }
    state_->object_ = data;
    for (const auto& [k, v] : data) state_->managers_[k] = {field_manager_};
    return {};
  }

  Status patch(const k8s::DataChanges& changes) override {
    state_->runHook("patch");
    std::lock_guard lock(state_->mu_);
    state_->calls_.push_back({"patch", {}, changes, false});
    if (auto e = state_->takeFault("patch")) return fail(*e);
    if (!state_->object_) return fail(k8s::missingObjectError(ref()));
    for (const auto& [k, v] : changes) {
      state_->undecodable_.erase(k);
      if (v) {
        (*state_->object_)[k] = *v;
        state_->managers_[k] = {field_manager_};
      } else {
        state_->object_->erase(k);
        state_->managers_.erase(k);
      }
    }
    return {};
  }

  std::string describe() const override { return kDescription; }

 private:
  Error fail(Error e) {  // under state_->mu_
    state_->calls_.back().failed = true;
    return e;
  }

  std::shared_ptr<State> state_;
  std::string field_manager_;
};

}  // namespace tsk::agent::testing
