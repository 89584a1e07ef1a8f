#include "tools/kube-emu/object_rules.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <set>

namespace tsk::kube_emu {

using nlohmann::json;

namespace {

constexpr size_t kMaxDataBytes = 1024 * 1024;

ApiResponse cannotBeHandled(Resource r, const std::string& why) {
  const std::string kind(resourceInfo(r).kind);
  return badRequest(kind + " in version \"v1\" cannot be handled as a " + kind + ": " + why);
}

std::string unmarshalError(const json& v, const std::string& go_field, const std::string& go_type) {
  return "json: cannot unmarshal " + goTypeName(v) + " into Go struct field " + go_field +
         " of type " + go_type;
}

// Checks that `v` is a JSON object of strings; returns the error text or "".
std::string checkStringMapTyped(const json& v, const std::string& go_field,
                                const std::string& map_type) {
  if (v.is_null()) return "";
  if (!v.is_object()) return unmarshalError(v, go_field, map_type);
  for (const auto& [k, val] : v.items()) {
    if (!val.is_string() && !val.is_null()) return unmarshalError(val, go_field, "string");
  }
  return "";
}

std::string checkStringMap(const json& v, const std::string& go_field) {
  return checkStringMapTyped(v, go_field, "map[string]string");
}

json stringMapWithoutNulls(const json& v) {
  json out = json::object();
  if (!v.is_object()) return out;
  for (const auto& [k, val] : v.items()) {
    if (val.is_string()) out[k] = val;
  }
  return out;
}

std::optional<ApiResponse> decodeMetadata(Resource r, const json& in, json& out) {
  if (in.is_null()) {
    out = json::object();
    return std::nullopt;
  }
  if (!in.is_object()) {
    return cannotBeHandled(r, unmarshalError(in, "Secret.metadata", "v1.ObjectMeta"));
  }
  out = json::object();
  for (const char* field : {"name", "generateName", "namespace", "uid", "resourceVersion",
                            "creationTimestamp", "deletionTimestamp"}) {
    if (!in.contains(field) || in[field].is_null()) continue;
    if (!in[field].is_string()) {
      return cannotBeHandled(
          r, unmarshalError(in[field], std::string("ObjectMeta.metadata.") + field, "string"));
    }
    out[field] = in[field];
  }
  for (const char* field : {"labels", "annotations"}) {
    if (!in.contains(field) || in[field].is_null()) continue;
    if (auto err = checkStringMap(in[field], std::string("ObjectMeta.metadata.") + field);
        !err.empty()) {
      return cannotBeHandled(r, err);
    }
    json m = stringMapWithoutNulls(in[field]);
    if (!m.empty()) out[field] = std::move(m);
  }
  for (const char* field : {"ownerReferences", "finalizers", "managedFields"}) {
    if (!in.contains(field) || in[field].is_null()) continue;
    if (!in[field].is_array()) {
      return cannotBeHandled(
          r, unmarshalError(in[field], std::string("ObjectMeta.metadata.") + field, "array"));
    }
    if (!in[field].empty()) out[field] = in[field];
  }
  return std::nullopt;
}

std::optional<ApiResponse> decodeBase64Map(Resource r, const json& in, const char* field) {
  if (auto err = checkStringMapTyped(in, std::string(resourceInfo(r).kind) + "." + field,
                                     "map[string][]uint8");
      !err.empty()) {
    return cannotBeHandled(r, err);
  }
  for (const auto& [k, v] : in.items()) {
    if (!v.is_string()) continue;
    if (const long off = invalidBase64Offset(v.get<std::string>()); off >= 0) {
      return cannotBeHandled(r, "illegal base64 data at input byte " + std::to_string(off));
    }
  }
  return std::nullopt;
}

std::optional<ApiResponse> decodeSecret(const json& in, json& out) {
  const Resource r = Resource::kSecrets;
  if (in.contains("data")) {
    if (auto err = decodeBase64Map(r, in["data"], "data")) return err;
  }
  if (in.contains("stringData")) {
    if (auto err = checkStringMap(in["stringData"], "Secret.stringData"); !err.empty()) {
      return cannotBeHandled(r, err);
    }
  }
  json data = stringMapWithoutNulls(in.value("data", json::object()));
  // stringData is write-only: folded into data, then dropped, like the real registry does.
  const json string_data = stringMapWithoutNulls(in.value("stringData", json::object()));
  for (const auto& [k, v] : string_data.items()) {
    data[k] = base64Encode(v.get<std::string>());
  }
  if (!data.empty()) out["data"] = std::move(data);
  if (in.contains("type") && !in["type"].is_null()) {
    if (!in["type"].is_string()) {
      return cannotBeHandled(r, unmarshalError(in["type"], "Secret.type", "v1.SecretType"));
    }
    out["type"] = in["type"];
  }
  if (!out.contains("type") || out["type"] == "") out["type"] = "Opaque";
  return std::nullopt;
}

std::optional<ApiResponse> decodeConfigMap(const json& in, json& out) {
  const Resource r = Resource::kConfigMaps;
  if (in.contains("data")) {
    if (auto err = checkStringMapTyped(in["data"], "ConfigMap.data", "map[string]string");
        !err.empty()) {
      return cannotBeHandled(r, err);
    }
    json data = stringMapWithoutNulls(in["data"]);
    if (!data.empty()) out["data"] = std::move(data);
  }
  if (in.contains("binaryData")) {
    if (auto err = decodeBase64Map(r, in["binaryData"], "binaryData")) return err;
    json data = stringMapWithoutNulls(in["binaryData"]);
    if (!data.empty()) out["binaryData"] = std::move(data);
  }
  return std::nullopt;
}

FieldCause invalidValue(const std::string& field, const std::string& value,
                        const std::string& why) {
  return {field, "FieldValueInvalid", "Invalid value: \"" + value + "\": " + why};
}

bool isValidConfigKey(const std::string& key) {
  if (key.empty() || key.size() > 253 || key == "." || key == "..") return false;
  return std::all_of(key.begin(), key.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}

void validateKeys(const json& m, const std::string& field, std::vector<FieldCause>& causes) {
  if (!m.is_object()) return;
  for (const auto& [k, v] : m.items()) {
    if (!isValidConfigKey(k)) {
      causes.push_back(invalidValue(
          field + "[" + k + "]", k,
          "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
          "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
          "'[-._a-zA-Z0-9]+')"));
    }
  }
}

size_t decodedSize(const json& m, bool base64) {
  size_t total = 0;
  if (!m.is_object()) return 0;
  for (const auto& [k, v] : m.items()) {
    const std::string& s = v.get_ref<const std::string&>();
    total += base64 ? s.size() / 4 * 3 : s.size();
  }
  return total;
}

const char* kDnsSubdomainHelp =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
}  // namespace

std::string goTypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::array:
      return "array";
    case json::value_t::string:
      return "string";
    case json::value_t::boolean:
      return "bool";
    case json::value_t::object:
      return "object";
    case json::value_t::null:
      return "null";
    default:
      return "number";
  }
}

std::string goFormat(const json& v) {
  switch (v.type()) {
    case json::value_t::object: {
      std::string out = "map[";
      bool first = true;
      for (const auto& [k, val] : v.items()) {  // nlohmann keeps object keys sorted, like Go
        out += (first ? "" : " ") + k + ":" + goFormat(val);
        first = false;
      }
      return out + "]";
    }
    case json::value_t::array: {
      std::string out = "[";
      for (size_t i = 0; i < v.size(); ++i) out += (i == 0 ? "" : " ") + goFormat(v[i]);
      return out + "]";
    }
    case json::value_t::string:
      return v.get<std::string>();
    case json::value_t::null:
    case json::value_t::discarded:
      return "<nil>";
    default:
      return v.dump();
  }
}

bool isValidDnsSubdomain(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    const std::string label = name.substr(start, dot == std::string::npos ? dot : dot - start);
    if (label.empty()) return false;
    if (!std::isalnum(static_cast<unsigned char>(label.front())) ||
        !std::isalnum(static_cast<unsigned char>(label.back()))) {
      return false;
    }
    for (unsigned char c : label) {
      if (!(std::islower(c) || std::isdigit(c) || c == '-')) return false;
    }
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

long invalidBase64Offset(const std::string& s) {
  const auto isB64 = [](unsigned char c) { return std::isalnum(c) || c == '+' || c == '/'; };
  size_t i = 0;
  size_t n = 0;  // significant characters seen
  for (; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\r' || c == '\n') continue;
    if (c == '=') break;
    if (!isB64(c)) return static_cast<long>(i);
    ++n;
  }
  if (i == s.size()) {
    return n % 4 == 0 ? -1 : static_cast<long>(s.size() - n % 4);
  }
  // Padding: exactly enough '=' to complete the final quantum, then nothing else.
  const size_t pad_needed = (4 - n % 4) % 4;
  if (pad_needed == 0 || pad_needed == 3) return static_cast<long>(i);
  size_t pads = 0;
  for (; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\r' || c == '\n') continue;
    if (c != '=' || pads == pad_needed) return static_cast<long>(i);
    ++pads;
  }
  return pads == pad_needed ? -1 : static_cast<long>(s.size());
}

std::string base64Encode(const std::string& bytes) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += kTable[(v >> 6) & 63];
    out += kTable[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kTable[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

DecodeResult decodeObject(Resource r, const std::string& body) {
  DecodeResult result;
  result.response.code = 200;
  const json in = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (in.is_discarded() || !in.is_object()) {
    result.response = badRequest(
        "the object provided is unrecognized (must be of type " +
        std::string(resourceInfo(r).kind) +
        "): couldn't get version/kind; json parse error: the body is not a JSON object (" +
        body.substr(0, 64) + ")");
    return result;
  }
  const ResourceInfo& info = resourceInfo(r);
  if (in.contains("kind") && in["kind"].is_string() && in["kind"] != "" &&
      in["kind"] != info.kind) {
    result.response = badRequest("the kind in the request body (" + in["kind"].get<std::string>() +
                                 ") does not match the resource \"" + std::string(info.plural) +
                                 "\" (kind " + std::string(info.kind) + ")");
    return result;
  }
  if (in.contains("apiVersion") && in["apiVersion"].is_string() && in["apiVersion"] != "" &&
      in["apiVersion"] != "v1") {
    result.response =
        badRequest("the API version in the data (" + in["apiVersion"].get<std::string>() +
                   ") does not match the expected API version (v1)");
    return result;
  }
  json out = {{"kind", info.kind}, {"apiVersion", "v1"}};
  json meta;
  if (auto err = decodeMetadata(r, in.value("metadata", json()), meta)) {
    result.response = *err;
    return result;
  }
  out["metadata"] = std::move(meta);
  if (in.contains("immutable") && !in["immutable"].is_null()) {
    if (!in["immutable"].is_boolean()) {
      result.response = cannotBeHandled(
          r, unmarshalError(in["immutable"], std::string(info.kind) + ".immutable", "bool"));
      return result;
    }
    out["immutable"] = in["immutable"];
  }
  std::optional<ApiResponse> err;
  switch (r) {
    case Resource::kSecrets:
      err = decodeSecret(in, out);
      break;
    case Resource::kConfigMaps:
      err = decodeConfigMap(in, out);
      break;
  }
  if (err) {
    result.response = *err;
    return result;
  }
  result.object = std::move(out);
  return result;
}

std::optional<ApiResponse> checkNamespaceMatches(const std::string& ns, const json& obj) {
  const auto& meta = obj["metadata"];
  if (meta.contains("namespace") && meta["namespace"] != "" && meta["namespace"] != ns) {
    return badRequest(
        "the namespace of the provided object does not match the namespace sent on the request");
  }
  return std::nullopt;
}

std::vector<FieldCause> validateObject(Resource r, const json& obj) {
  std::vector<FieldCause> causes;
  const json& meta = obj["metadata"];
  const std::string name = meta.value("name", "");
  if (name.empty()) {
    causes.push_back({"metadata.name", "FieldValueRequired",
                      "Required value: name or generateName is required"});
  } else if (!isValidDnsSubdomain(name)) {
    causes.push_back(invalidValue("metadata.name", name, kDnsSubdomainHelp));
  }
  if (obj.contains("data")) validateKeys(obj["data"], "data", causes);
  if (obj.contains("binaryData")) validateKeys(obj["binaryData"], "binaryData", causes);
  if (r == Resource::kConfigMaps && obj.contains("data") && obj.contains("binaryData")) {
    for (const auto& [k, v] : obj["binaryData"].items()) {
      if (obj["data"].contains(k)) {
        causes.push_back(
            invalidValue("data[" + k + "]", k, "duplicate of key present in binaryData"));
      }
    }
  }
  const size_t total = decodedSize(obj.value("data", json::object()), r == Resource::kSecrets) +
                       decodedSize(obj.value("binaryData", json::object()), true);
  if (total > kMaxDataBytes) {
    causes.push_back({"data", "FieldValueTooLong",
                      "Too long: must have at most " + std::to_string(kMaxDataBytes) + " bytes"});
  }
  return causes;
}

std::vector<FieldCause> validateUpdate(Resource r, const json& previous, const json& updated) {
  std::vector<FieldCause> causes;
  if (r == Resource::kSecrets &&
      previous.value("type", "Opaque") != updated.value("type", "Opaque")) {
    causes.push_back(invalidValue("type", updated.value("type", ""), "field is immutable"));
  }
  if (previous.value("immutable", false)) {
    if (!updated.value("immutable", false)) {
      causes.push_back({"immutable", "FieldValueForbidden",
                        "Forbidden: field is immutable when `immutable` is set"});
    }
    for (const char* field : {"data", "binaryData"}) {
      if (previous.value(field, json::object()) != updated.value(field, json::object())) {
        causes.push_back({field, "FieldValueForbidden",
                          "Forbidden: field is immutable when `immutable` is set"});
      }
    }
  }
  return causes;
}

// ---- managedFields ------------------------------------------------------------------------

namespace {

using FieldPath = std::vector<std::string>;

// Leaf fields of an object in managedFields terms: f:data/f:<key>, f:metadata/f:labels/f:<k>...
std::map<FieldPath, json> leafFields(const json& obj) {
  std::map<FieldPath, json> out;
  if (!obj.is_object()) return out;
  for (const char* map_field : {"data", "binaryData"}) {
    if (obj.contains(map_field) && obj[map_field].is_object()) {
      for (const auto& [k, v] : obj[map_field].items()) {
        out[{std::string("f:") + map_field, "f:" + k}] = v;
      }
    }
  }
  for (const char* scalar : {"type", "immutable"}) {
    if (obj.contains(scalar)) out[{std::string("f:") + scalar}] = obj[scalar];
  }
  if (obj.contains("metadata")) {
    for (const char* map_field : {"labels", "annotations"}) {
      if (obj["metadata"].contains(map_field)) {
        for (const auto& [k, v] : obj["metadata"][map_field].items()) {
          out[{"f:metadata", std::string("f:") + map_field, "f:" + k}] = v;
        }
      }
    }
  }
  return out;
}

std::set<FieldPath> pathsFromFieldsV1(const json& fields, FieldPath prefix = {}) {
  std::set<FieldPath> out;
  if (!fields.is_object()) return out;
  for (const auto& [k, v] : fields.items()) {
    if (k == ".") continue;
    FieldPath p = prefix;
    p.push_back(k);
    if (v.is_object() && !v.empty()) {
      auto sub = pathsFromFieldsV1(v, p);
      out.insert(sub.begin(), sub.end());
    } else {
      out.insert(p);
    }
  }
  return out;
}

json fieldsV1FromPaths(const std::set<FieldPath>& paths) {
  json out = json::object();
  for (const auto& p : paths) {
    json* node = &out;
    for (const auto& seg : p) {
      if (!node->contains(seg)) (*node)[seg] = json::object();
      node = &(*node)[seg];
    }
  }
  return out;
}

}  // namespace

void recordManagedFields(json& obj, const json* previous, const std::string& manager,
                         const std::string& time) {
  json entries = previous != nullptr && previous->contains("metadata")
                     ? previous->at("metadata").value("managedFields", json::array())
                     : json::array();
  const auto before = previous != nullptr ? leafFields(*previous) : std::map<FieldPath, json>{};
  const auto after = leafFields(obj);
  std::set<FieldPath> changed;
  for (const auto& [path, value] : after) {
    const auto it = before.find(path);
    if (it == before.end() || it->second != value) changed.insert(path);
  }
  json updated = json::array();
  std::set<FieldPath> mine;
  for (const auto& e : entries) {
    std::set<FieldPath> owned = pathsFromFieldsV1(e.value("fieldsV1", json::object()));
    std::erase_if(owned, [&](const FieldPath& p) { return !after.contains(p); });
    if (e.value("manager", "") == manager && e.value("operation", "") == "Update") {
      mine = std::move(owned);
      continue;
    }
    std::erase_if(owned, [&](const FieldPath& p) { return changed.contains(p); });
    if (owned.empty()) continue;
    json kept = e;
    kept["fieldsV1"] = fieldsV1FromPaths(owned);
    updated.push_back(std::move(kept));
  }
  mine.insert(changed.begin(), changed.end());
  if (!manager.empty() && !mine.empty()) {
    updated.push_back({{"manager", manager},
                       {"operation", "Update"},
                       {"apiVersion", "v1"},
                       {"time", time},
                       {"fieldsType", "FieldsV1"},
                       {"fieldsV1", fieldsV1FromPaths(mine)}});
  }
  if (updated.empty()) {
    obj["metadata"].erase("managedFields");
  } else {
    obj["metadata"]["managedFields"] = std::move(updated);
  }
}

json withoutVolatileMetadata(const json& obj) {
  json copy = obj;
  if (copy.contains("metadata")) {
    copy["metadata"].erase("resourceVersion");
    copy["metadata"].erase("managedFields");
  }
  return copy;
}

}  // namespace tsk::kube_emu
