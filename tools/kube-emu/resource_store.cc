#include "tools/kube-emu/resource_store.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <regex>
#include <set>
#include <vector>

#include "tools/kube-emu/object_rules.h"

namespace tsk::kube_emu {

using nlohmann::json;

namespace {

constexpr ResourceInfo kSecrets{"secrets", "Secret", "SecretList"};
constexpr ResourceInfo kConfigMaps{"configmaps", "ConfigMap", "ConfigMapList"};

std::string metaString(const json& obj, const char* field) {
  const auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return {};
  const auto f = m->find(field);
  return f != m->end() && f->is_string() ? f->get<std::string>() : std::string();
}

}  // namespace

const ResourceInfo& resourceInfo(Resource r) {
  switch (r) {
    case Resource::kSecrets:
      return kSecrets;
    case Resource::kConfigMaps:
      return kConfigMaps;
  }
  return kSecrets;
}

std::optional<Resource> resourceFromPlural(std::string_view plural) {
  if (plural == "secrets") return Resource::kSecrets;
  if (plural == "configmaps") return Resource::kConfigMaps;
  return std::nullopt;
}

std::string formatRfc3339(Clock::Wall t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

ResourceStore::ResourceStore(Clock& clock) : clock_(clock), rng_(std::random_device{}()) {}

std::string ResourceStore::now() const {
  return formatRfc3339(clock_.wallNow());
}

std::string ResourceStore::newUid() {
  // RFC 4122 version 4 layout.
  const uint64_t hi = rng_();
  const uint64_t lo = rng_();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0x0fff),
                static_cast<unsigned>(((lo >> 48) & 0x3fff) | 0x8000),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

std::optional<json> ResourceStore::find(Resource r, const std::string& ns,
                                        const std::string& name) const {
  std::lock_guard lock(mu_);
  const auto it = objects_.find({r, ns, name});
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

ApiResponse ResourceStore::get(Resource r, const std::string& ns, const std::string& name) const {
  const ResourceInfo& info = resourceInfo(r);
  if (auto obj = find(r, ns, name)) return ApiResponse{200, *obj, {}};
  return notFound(info.plural, name);
}

ApiResponse ResourceStore::list(Resource r, const std::string& ns) const {
  const ResourceInfo& info = resourceInfo(r);

  std::vector<json> items;
  uint64_t revision = 0;
  {
    std::lock_guard lock(mu_);
    revision = revision_;
    for (const auto& [key, obj] : objects_) {
      const auto& [kr, kns, kname] = key;
      if (kr != r || (!ns.empty() && kns != ns)) continue;
      items.push_back(obj);
    }
  }
  json out_items = json::array();
  for (auto& item : items) {
    item.erase("kind");
    item.erase("apiVersion");
    out_items.push_back(std::move(item));
  }
  return ApiResponse{200,
                     json{{"kind", info.list_kind},
                          {"apiVersion", "v1"},
                          {"metadata", {{"resourceVersion", std::to_string(revision)}}},
                          {"items", std::move(out_items)}},
                     {}};
}

ApiResponse ResourceStore::create(Resource r, const std::string& ns, const std::string& body,
                                  const WriteOptions& opts) {
  const ResourceInfo& info = resourceInfo(r);
  auto decoded = decodeObject(r, body);
  if (!decoded.ok()) return decoded.response;
  json obj = std::move(decoded.object);
  json& meta = obj["metadata"];
  if (auto err = checkNamespaceMatches(ns, obj)) return *err;
  if (meta.contains("resourceVersion") && !metaString(obj, "resourceVersion").empty()) {
    return internalError("resourceVersion should not be set on objects to be created");
  }
  std::string name = metaString(obj, "name");
  if (name.empty() && !metaString(obj, "generateName").empty()) {
    static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    std::lock_guard lock(mu_);
    name = metaString(obj, "generateName");
    for (int i = 0; i < 5; ++i) name += kAlphabet[rng_() % (sizeof kAlphabet - 1)];
  }
  meta["name"] = name;
  meta["namespace"] = ns;
  if (auto causes = validateObject(r, obj); !causes.empty()) {
    return invalid(info.kind, name, causes);
  }
  std::lock_guard lock(mu_);
  const Key key{r, ns, name};
  if (objects_.contains(key)) return alreadyExists(info.plural, name);
  meta["uid"] = newUid();
  meta["creationTimestamp"] = now();
  return store(r, ns, name, std::move(obj), nullptr, opts, 201);
}

ApiResponse ResourceStore::replace(Resource r, const std::string& ns, const std::string& name,
                                   const std::string& body, const WriteOptions& opts) {
  const ResourceInfo& info = resourceInfo(r);
  auto decoded = decodeObject(r, body);
  if (!decoded.ok()) return decoded.response;
  json obj = std::move(decoded.object);
  if (auto err = checkNamespaceMatches(ns, obj)) return *err;
  const std::string body_name = metaString(obj, "name");
  if (body_name != name) {
    return badRequest("the name of the object (" + body_name +
                      ") does not match the name on the URL (" + name + ")");
  }
  obj["metadata"]["namespace"] = ns;
  if (auto causes = validateObject(r, obj); !causes.empty()) {
    return invalid(info.kind, name, causes);
  }
  std::lock_guard lock(mu_);
  const auto it = objects_.find({r, ns, name});
  if (it == objects_.end()) return notFound(info.plural, name);
  const json previous = it->second;
  const std::string wanted_rv = metaString(obj, "resourceVersion");
  if (!wanted_rv.empty() && wanted_rv != metaString(previous, "resourceVersion")) {
    return conflict(info.plural, name);
  }
  if (auto causes = validateUpdate(r, previous, obj); !causes.empty()) {
    return invalid(info.kind, name, causes);
  }
  obj["metadata"]["uid"] = previous["metadata"]["uid"];
  obj["metadata"]["creationTimestamp"] = previous["metadata"]["creationTimestamp"];
  return store(r, ns, name, std::move(obj), &previous, opts, 200);
}

ApiResponse ResourceStore::patch(Resource r, const std::string& ns, const std::string& name,
                                 const std::string& body, const WriteOptions& opts) {
  const ResourceInfo& info = resourceInfo(r);
  std::lock_guard lock(mu_);
  const auto it = objects_.find({r, ns, name});
  if (it == objects_.end()) return notFound(info.plural, name);
  const json previous = it->second;
  auto patched = applyPatch(previous, body);
  if (!patched) return badRequest(patched.error().message);
  auto decoded = decodeObject(r, patched->dump());
  if (!decoded.ok()) {
    // The strategic-merge path reports decoding errors as an Invalid "patch" field holding the
    // patch printed the way Go prints a map.
    const std::string kind(info.kind);
    const std::string prefix = kind + " in version \"v1\" cannot be handled as a " + kind + ": ";
    std::string why = decoded.response.body.value("message", "");
    if (why.starts_with(prefix)) why = why.substr(prefix.size());
    const json patch_json = json::parse(body, nullptr, /*allow_exceptions=*/false);
    return invalid(
        "", "",
        {{"patch", "FieldValueInvalid",
          "Invalid value: \"" + goFormat(patch_json) + "\": error decoding from json: " + why}});
  }
  json obj = std::move(decoded.object);
  if (metaString(obj, "name") != name) {
    return badRequest("the name of the object (" + metaString(obj, "name") +
                      ") does not match the name on the URL (" + name + ")");
  }
  if (auto err = checkNamespaceMatches(ns, obj)) return *err;
  if (metaString(obj, "resourceVersion") != metaString(previous, "resourceVersion") ||
      metaString(obj, "uid") != metaString(previous, "uid")) {
    return conflict(info.plural, name);
  }
  if (auto causes = validateObject(r, obj); !causes.empty()) {
    return invalid(info.kind, name, causes);
  }
  if (auto causes = validateUpdate(r, previous, obj); !causes.empty()) {
    return invalid(info.kind, name, causes);
  }
  obj["metadata"]["creationTimestamp"] = previous["metadata"]["creationTimestamp"];
  return store(r, ns, name, std::move(obj), &previous, opts, 200);
}

ApiResponse ResourceStore::remove(Resource r, const std::string& ns, const std::string& name) {
  const ResourceInfo& info = resourceInfo(r);
  std::lock_guard lock(mu_);
  const auto it = objects_.find({r, ns, name});
  if (it == objects_.end()) return notFound(info.plural, name);
  const json details = {
      {"name", name}, {"kind", std::string(info.plural)}, {"uid", metaString(it->second, "uid")}};
  objects_.erase(it);
  ++revision_;
  return statusSuccess(details);
}

// Called with mu_ held: stamps resourceVersion and managedFields, stores.
ApiResponse ResourceStore::store(Resource r, const std::string& ns, const std::string& name,
                                 json obj, const json* previous, const WriteOptions& opts,
                                 int success_code) {
  const ResourceInfo& info = resourceInfo(r);
  obj["kind"] = info.kind;
  obj["apiVersion"] = "v1";
  recordManagedFields(obj, previous, opts.field_manager, now());
  if (previous != nullptr && withoutVolatileMetadata(*previous) == withoutVolatileMetadata(obj)) {
    // A no-op write keeps the resourceVersion, as the real API server does.
    return ApiResponse{success_code, *previous, {}};
  }
  obj["metadata"]["resourceVersion"] = std::to_string(revision_ + 1);
  ++revision_;
  objects_[{r, ns, name}] = obj;
  return ApiResponse{success_code, std::move(obj), {}};
}

json ResourceStore::dump() const {
  std::lock_guard lock(mu_);
  json out = {{"secrets", json::array()},
              {"configmaps", json::array()},
              {"resourceVersion", std::to_string(revision_)}};
  for (const auto& [key, obj] : objects_) {
    out[std::string(resourceInfo(std::get<0>(key)).plural)].push_back(obj);
  }
  return out;
}

void ResourceStore::clear() {
  std::lock_guard lock(mu_);
  objects_.clear();
  ++revision_;
}

uint64_t ResourceStore::resourceVersion() const {
  std::lock_guard lock(mu_);
  return revision_;
}

}  // namespace tsk::kube_emu
