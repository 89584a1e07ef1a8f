#pragma once
// ResourceStore: the emulated etcd + registry for core/v1 Secrets and ConfigMaps.
// Every method takes the already-authorized request and answers what kube-apiserver would:
// the object or list (200/201), or a Status (400 decode errors, 404, 409 AlreadyExists/Conflict,
// 422 Invalid). One resourceVersion counter spans all objects, like etcd's revision. Namespaces
// are not objects: any namespace in a path holds objects. Thread-safe.
//
//   ResourceStore store(clock);
//   auto r = store.create(Resource::kSecrets, "ns", R"({"metadata":{"name":"s"}})", {"kubectl"});
//   r = store.patch(Resource::kSecrets, "ns", "s", R"({"data":{"k":"dg=="}})", {"ts-kube-agent"});
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

enum class Resource { kSecrets, kConfigMaps };

struct ResourceInfo {
  std::string_view plural;     // "secrets"
  std::string_view kind;       // "Secret"
  std::string_view list_kind;  // "SecretList"
};

const ResourceInfo& resourceInfo(Resource r);
std::optional<Resource> resourceFromPlural(std::string_view plural);

struct WriteOptions {
  std::string field_manager;  // recorded in metadata.managedFields
};

class ResourceStore {
 public:
  explicit ResourceStore(Clock& clock);

  ApiResponse get(Resource r, const std::string& ns, const std::string& name) const;
  // ns empty: all namespaces. Not filtered (kube-emu has no label or field selectors).
  ApiResponse list(Resource r, const std::string& ns) const;
  ApiResponse create(Resource r, const std::string& ns, const std::string& body,
                     const WriteOptions& opts);
  ApiResponse replace(Resource r, const std::string& ns, const std::string& name,
                      const std::string& body, const WriteOptions& opts);
  // A strategic merge patch (patch.h).
  ApiResponse patch(Resource r, const std::string& ns, const std::string& name,
                    const std::string& body, const WriteOptions& opts);
  ApiResponse remove(Resource r, const std::string& ns, const std::string& name);

  // Direct access for tests and the control API (no validation beyond JSON shape).
  std::optional<nlohmann::json> find(Resource r, const std::string& ns,
                                     const std::string& name) const;
  nlohmann::json dump() const;  // {"secrets":[...],"configmaps":[...]}
  void clear();
  uint64_t resourceVersion() const;

 private:
  using Key = std::tuple<Resource, std::string, std::string>;  // resource, namespace, name

  ApiResponse store(Resource r, const std::string& ns, const std::string& name, nlohmann::json obj,
                    const nlohmann::json* previous, const WriteOptions& opts, int success_code);
  std::string now() const;
  std::string newUid();

  Clock& clock_;
  mutable std::mutex mu_;
  std::map<Key, nlohmann::json> objects_;
  uint64_t revision_ = 1;
  std::mt19937_64 rng_;
};

// Formats a wall time as RFC 3339 with second precision, UTC ("2026-01-02T15:04:05Z").
std::string formatRfc3339(Clock::Wall t);

}  // namespace tsk::kube_emu
