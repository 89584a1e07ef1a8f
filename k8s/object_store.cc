// SecretStore and ConfigMapStore: get, create, and a strategic-merge PATCH of `data` that names
// only the changed keys, so keys written by others (tailscaled's own state) are left alone. One
// API request each; whether to create a missing object is the publisher's decision (it reads the
// object first and knows), not a fallback here.
#include <nlohmann/json.hpp>

#include "k8s/base64.h"
#include "k8s/client.h"
#include "k8s/errors.h"

namespace tsk::k8s {
namespace {

using json = nlohmann::json;

enum class Kind { Secret, ConfigMap };

// Percent-encodes a path segment or query value (names are DNS labels, so this is defensive).
std::string escaped(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

bool isSuccess(int status) {
  return status >= 200 && status < 300;
}

class KubeObjectStore final : public ObjectStore {
 public:
  KubeObjectStore(ApiClient& api, Kind kind, std::string ns, std::string name)
      : api_(api),
        kind_(kind),
        ns_(std::move(ns)),
        name_(std::move(name)),
        resource_(kind == Kind::Secret ? "secrets" : "configmaps") {}

  Result<std::optional<ObjectData>> get(const KeyFilter& only) override {
    auto resp = api_.request("GET", objectPath(), resource_);
    if (!resp) return prefixed("get", resp.error());
    if (resp->status == 404) return std::optional<ObjectData>();
    if (!isSuccess(resp->status)) return failure("get", *resp);
    return decodeObject(resp->body, only);
  }

  Status create(const std::map<std::string, std::string>& data) override {
    auto body = createBody(data);
    if (!body) return body.error();
    auto resp = api_.request("POST", collectionPath() + fieldManagerQuery(), resource_, *body,
                             "application/json");
    if (!resp) return prefixed("create", resp.error());
    if (isSuccess(resp->status)) return {};
    if (resp->status == 409) {
      return withRetryAfter(
          Error{describe() + " already exists (create answered 409 AlreadyExists)", 409}, *resp);
    }
    if (resp->status == 404) {
      return withRetryAfter(
          Error{"cannot create " + describe() + ": namespace \"" + ns_ +
                    "\" does not exist (Kubernetes said: " + kubernetesMessage(resp->body) +
                    "); create the namespace or fix --namespace",
                404},
          *resp);
    }
    return failure("create", *resp);
  }

  Status patch(const DataChanges& changes) override {
    if (changes.empty()) return {};
    auto body = patchBody(changes);
    if (!body) return body.error();
    auto resp = api_.request("PATCH", objectPath() + fieldManagerQuery(), resource_, *body,
                             "application/strategic-merge-patch+json");
    if (!resp) return prefixed("patch", resp.error());
    if (isSuccess(resp->status)) return {};
    if (resp->status == 404) return withRetryAfter(missingObjectError(ref()), *resp);
    return failure("patch", *resp);
  }

  std::string describe() const override {
    return singularKind(resource_) + " " + ns_ + "/" + name_;
  }

 private:
  ObjectRef ref() const { return ObjectRef{resource_, ns_, name_}; }
  std::string collectionPath() const {
    return "/api/v1/namespaces/" + escaped(ns_) + "/" + resource_;
  }
  std::string objectPath() const { return collectionPath() + "/" + escaped(name_); }
  std::string fieldManagerQuery() const {
    return "?fieldManager=" + escaped(api_.options().field_manager);
  }

  static Error withRetryAfter(Error e, const HttpResponse& resp) {
    e.retry_after = resp.retry_after;
    return e;
  }

  Error failure(std::string_view verb, const HttpResponse& resp) const {
    return withRetryAfter(
        responseError(verb, ref(), resp.status, resp.body, api_.config().token_file), resp);
  }

  // Transport and configuration errors already say what failed; add which object it was for.
  Error prefixed(std::string_view verb, Error e) const {
    e.message = "cannot " + std::string(verb) + " " + describe() + ": " + e.message;
    return e;
  }

  // A value as it goes into `data`: base64 for a Secret, the text itself for a ConfigMap.
  Result<json> encodeValue(const std::string& key, const std::string& value) const {
    if (kind_ == Kind::Secret) return json(base64Encode(value));
    json text(value);
    try {
      (void)text.dump();
    } catch (const json::type_error&) {
      return Error{describe() + ": the value for key \"" + key +
                       "\" is not valid UTF-8; ConfigMap data holds text only (use a Secret)",
                   ErrorKind::Config};
    }
    return text;
  }

  Result<std::string> patchBody(const DataChanges& changes) const {
    json data = json::object();
    for (const auto& [key, value] : changes) {
      if (!value) {
        data[key] = nullptr;  // strategic merge: null deletes the key
        continue;
      }
      auto encoded = encodeValue(key, *value);
      if (!encoded) return encoded.error();
      data[key] = std::move(encoded).value();
    }
    return json{{"data", std::move(data)}}.dump();
  }

  Result<std::string> createBody(const std::map<std::string, std::string>& values) const {
    json data = json::object();
    for (const auto& [key, value] : values) {
      auto encoded = encodeValue(key, value);
      if (!encoded) return encoded.error();
      data[key] = std::move(encoded).value();
    }
    json object = {{"apiVersion", "v1"},
                   {"kind", kindName()},
                   {"metadata", {{"name", name_}, {"namespace", ns_}}}};
    if (kind_ == Kind::Secret) object["type"] = "Opaque";
    if (!data.empty()) object["data"] = std::move(data);
    return object.dump();
  }

  std::string kindName() const { return kind_ == Kind::Secret ? "Secret" : "ConfigMap"; }

  // The answer must be the object asked for: a proxy, a wrong server URL or a misbehaving server
  // can answer 200 with some other object, whose keys must not be taken for ours.
  Status checkIdentity(const json& object) const {
    const auto text = [](const json& parent, const char* field) -> std::string {
      if (!parent.is_object()) return "";
      const auto it = parent.find(field);
      return it != parent.end() && it->is_string() ? it->get<std::string>() : "";
    };
    const std::string kind = text(object, "kind");
    const auto meta = object.find("metadata");
    const std::string name = meta != object.end() ? text(*meta, "name") : "";
    const std::string ns = meta != object.end() ? text(*meta, "namespace") : "";
    if (kind == kindName() && name == name_ && ns == ns_) return {};
    const auto shown = [](const std::string& s) {
      return s.empty() ? std::string("(none)") : "\"" + s.substr(0, 253) + "\"";
    };
    return Error{"get " + describe() + ": the API server answered with another object (kind " +
                     shown(kind) + ", namespace " + shown(ns) + ", name " + shown(name) +
                     "); refusing it. Check that the kubeconfig's server URL points at the API "
                     "server itself and not at a proxy or another service",
                 ErrorKind::Parse};
  }

  Result<std::optional<ObjectData>> decodeObject(const std::string& body,
                                                 const KeyFilter& only) const {
    const json object = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!object.is_object()) {
      return Error{"get " + describe() + ": the API server's answer is not a JSON object",
                   ErrorKind::Parse};
    }
    if (auto st = checkIdentity(object); !st) return st.error();
    ObjectData out;
    if (auto meta = object.find("metadata"); meta != object.end() && meta->is_object()) {
      if (auto rv = meta->find("resourceVersion"); rv != meta->end() && rv->is_string()) {
        out.resource_version = rv->get<std::string>();
      }
      if (auto mf = meta->find("managedFields"); mf != meta->end()) decodeManagers(*mf, only, out);
    }
    auto status = decodeMap(object, "data", kind_ == Kind::Secret, only, out);
    if (!status) return status.error();
    if (kind_ == Kind::ConfigMap) {
      status = decodeMap(object, "binaryData", /*base64=*/true, only, out);
      if (!status) return status.error();
    }
    return std::optional<ObjectData>(std::move(out));
  }

  // Who owns which of the keys asked for. Entries that are not what Kubernetes writes (no
  // manager name, fieldsType other than FieldsV1) are ignored: ownership is advisory here and
  // a malformed entry must not stop the read.
  void decodeManagers(const json& entries, const KeyFilter& only, ObjectData& out) const {
    if (!entries.is_array()) return;
    for (const auto& entry : entries) {
      if (!entry.is_object()) continue;
      const auto manager = entry.find("manager");
      const auto fields = entry.find("fieldsV1");
      if (manager == entry.end() || !manager->is_string() || fields == entry.end() ||
          !fields->is_object()) {
        continue;
      }
      for (const char* map : {"f:data", "f:binaryData"}) {
        if (kind_ == Kind::Secret && std::string_view(map) == "f:binaryData") continue;
        const auto keys = fields->find(map);
        if (keys == fields->end() || !keys->is_object()) continue;
        for (const auto& [field, unused] : keys->items()) {
          if (!field.starts_with("f:")) continue;
          std::string key = field.substr(2);
          if (!only.empty() && !only.contains(key)) continue;
          out.managers[std::move(key)].insert(manager->get<std::string>());
        }
      }
    }
  }

  // One map of the object. A value that is not a string or not valid base64 goes into
  // `undecodable` (only for the keys asked for); it never fails the whole read.
  Status decodeMap(const json& object, const char* field, bool base64, const KeyFilter& only,
                   ObjectData& out) const {
    auto it = object.find(field);
    if (it == object.end() || it->is_null()) return {};
    if (!it->is_object()) {
      return Error{"get " + describe() + ": `" + field + "` is not a map", ErrorKind::Parse};
    }
    for (const auto& [key, value] : it->items()) {
      if (!only.empty() && !only.contains(key)) continue;
      if (!value.is_string()) {
        out.undecodable.insert(key);
        continue;
      }
      if (!base64) {
        out.data[key] = value.get<std::string>();
        continue;
      }
      auto decoded = base64Decode(value.get_ref<const std::string&>());
      if (!decoded) {
        out.undecodable.insert(key);
        continue;
      }
      out.data[key] = std::move(*decoded);
    }
    return {};
  }

  ApiClient& api_;
  const Kind kind_;
  const std::string ns_;
  const std::string name_;
  const std::string resource_;
};

}  // namespace

std::unique_ptr<ObjectStore> makeSecretStore(ApiClient& api, std::string ns, std::string name) {
  return std::make_unique<KubeObjectStore>(api, Kind::Secret, std::move(ns), std::move(name));
}

std::unique_ptr<ObjectStore> makeConfigMapStore(ApiClient& api, std::string ns, std::string name) {
  return std::make_unique<KubeObjectStore>(api, Kind::ConfigMap, std::move(ns), std::move(name));
}

}  // namespace tsk::k8s
