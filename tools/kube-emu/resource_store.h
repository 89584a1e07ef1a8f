#pragma once
// ResourceStore: the emulated etcd + registry for core/v1 Secrets, ConfigMaps and Namespaces.
// Every method takes the already-authorized request and answers what kube-apiserver would:
// the object or list (200/201), or a Status (400 decode errors, 404, 409 AlreadyExists/Conflict,
// 422 Invalid). One resourceVersion counter spans all objects, like etcd's revision. Namespaces
// exist implicitly (GET of any valid name answers an Active Namespace). Thread-safe.
//
//   ResourceStore store(clock);
//   auto r = store.create(Resource::kSecrets, "ns", R"({"metadata":{"name":"s"}})", {"kubectl"});
//   r = store.patch(Resource::kSecrets, "ns", "s", PatchType::kStrategicMerge,
//                   R"({"data":{"k":"dg=="}})", {"ts-kube-agent"});
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <tuple>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "tools/kube-emu/api_status.h"
#include "tools/kube-emu/patch.h"

namespace tsk::kube_emu {

enum class Resource { kSecrets, kConfigMaps, kNamespaces };

struct ResourceInfo {
  std::string_view plural;     // "secrets"
  std::string_view kind;       // "Secret"
  std::string_view list_kind;  // "SecretList"
  bool namespaced;
};

const ResourceInfo& resourceInfo(Resource r);
std::optional<Resource> resourceFromPlural(std::string_view plural);

struct WriteOptions {
  std::string field_manager;  // recorded in metadata.managedFields
  bool dry_run = false;       // ?dryRun=All: validate and answer, store nothing
};

struct ListOptions {
  std::string label_selector;  // "k=v,k2!=v,k3,!k4,k5 in (a,b)"
  std::string field_selector;  // "metadata.name=x"
};

class ResourceStore {
 public:
  explicit ResourceStore(Clock& clock);

  ApiResponse get(Resource r, const std::string& ns, const std::string& name) const;
  // ns empty: all namespaces.
  ApiResponse list(Resource r, const std::string& ns, const ListOptions& opts) const;
  ApiResponse create(Resource r, const std::string& ns, const std::string& body,
                     const WriteOptions& opts);
  ApiResponse replace(Resource r, const std::string& ns, const std::string& name,
                      const std::string& body, const WriteOptions& opts);
  ApiResponse patch(Resource r, const std::string& ns, const std::string& name, PatchType type,
                    const std::string& body, const WriteOptions& opts);
  ApiResponse remove(Resource r, const std::string& ns, const std::string& name,
                     const WriteOptions& opts);

  // Direct access for tests and the control API (no validation beyond JSON shape).
  std::optional<nlohmann::json> find(Resource r, const std::string& ns,
                                     const std::string& name) const;
  nlohmann::json dump() const;  // {"secrets":[...],"configmaps":[...],"namespaces":[...]}
  void clear();
  uint64_t resourceVersion() const;

 private:
  using Key = std::tuple<Resource, std::string, std::string>;  // resource, namespace, name

  ApiResponse store(Resource r, const std::string& ns, const std::string& name, nlohmann::json obj,
                    const nlohmann::json* previous, const WriteOptions& opts, int success_code);
  nlohmann::json implicitNamespace(const std::string& name) const;
  std::string now() const;
  std::string newUid();

  Clock& clock_;
  mutable std::mutex mu_;
  std::map<Key, nlohmann::json> objects_;
  uint64_t revision_ = 1;
  std::mt19937_64 rng_;
  const std::string start_time_;
};

// Formats a wall time as RFC 3339 with second precision, UTC ("2026-01-02T15:04:05Z").
std::string formatRfc3339(Clock::Wall t);
// Parses the same format; nullopt if it does not parse.
std::optional<Clock::Wall> parseRfc3339(const std::string& s);

}  // namespace tsk::kube_emu
