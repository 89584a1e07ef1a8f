#include "tools/kube-emu/patch.h"

#include <algorithm>
#include <optional>

namespace tsk::kube_emu {

using nlohmann::json;

namespace {

std::string goTypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::array:
      return "array";
    case json::value_t::string:
      return "string";
    case json::value_t::boolean:
      return "bool";
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "object";
    default:
      return "number";
  }
}

Error badPatch(const std::string& message) {
  return Error{message, 400};
}
Error unprocessable(const std::string& message) {
  return Error{message, 422};
}

// ---- strategic merge ----------------------------------------------------------------------

constexpr std::string_view kPatchDirective = "$patch";
constexpr std::string_view kRetainKeys = "$retainKeys";
constexpr std::string_view kSetElementOrderPrefix = "$setElementOrder/";
constexpr std::string_view kDeleteFromPrimitiveListPrefix = "$deleteFromPrimitiveList/";

// Lists in core/v1 Secret/ConfigMap metadata that merge instead of replacing.
bool mergesAsSet(const std::string& key) {
  return key == "finalizers";
}
bool mergesByUid(const std::string& key) {
  return key == "ownerReferences";
}

json mergeSetList(const json& original, const json& patch) {
  json out = original.is_array() ? original : json::array();
  for (const auto& v : patch) {
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  return out;
}

Result<json> mergeMap(const json& original, const json& patch);

Result<json> mergeKeyedList(const json& original, const json& patch, const std::string& key) {
  json out = original.is_array() ? original : json::array();
  for (const auto& item : patch) {
    if (!item.is_object() || !item.contains(key)) {
      return badPatch("map: " + item.dump() + " does not contain declared merge key: " + key);
    }
    auto it = std::find_if(out.begin(), out.end(), [&](const json& o) {
      return o.is_object() && o.contains(key) && o[key] == item[key];
    });
    const bool remove = item.value(std::string(kPatchDirective), "") == "delete";
    if (remove) {
      if (it != out.end()) out.erase(it);
      continue;
    }
    if (it == out.end()) {
      auto merged = mergeMap(json::object(), item);
      if (!merged) return merged.error();
      out.push_back(std::move(*merged));
    } else {
      auto merged = mergeMap(*it, item);
      if (!merged) return merged.error();
      *it = std::move(*merged);
    }
  }
  return out;
}

Result<json> mergeMap(const json& original, const json& patch) {
  json out = original.is_object() ? original : json::object();
  if (auto it = patch.find(kPatchDirective); it != patch.end()) {
    if (!it->is_string()) return badPatch("invalid value for $patch directive: " + it->dump());
    const std::string directive = *it;
    if (directive == "replace") {
      json replaced = patch;
      replaced.erase(std::string(kPatchDirective));
      return mergeMap(json::object(), replaced);
    }
    if (directive == "delete") return json(nullptr);
    if (directive != "merge") {
      return badPatch("Unknown patch type: " + directive + " in map: " + patch.dump());
    }
  }
  if (auto it = patch.find(kRetainKeys); it != patch.end() && it->is_array()) {
    for (auto o = out.begin(); o != out.end();) {
      const bool keep =
          std::find(it->begin(), it->end(), json(o.key())) != it->end() || patch.contains(o.key());
      o = keep ? std::next(o) : out.erase(o);
    }
  }
  for (const auto& [key, value] : patch.items()) {
    if (key == kPatchDirective || key == kRetainKeys || key.starts_with(kSetElementOrderPrefix)) {
      continue;
    }
    if (key.starts_with(kDeleteFromPrimitiveListPrefix)) {
      const std::string field = key.substr(kDeleteFromPrimitiveListPrefix.size());
      if (out.contains(field) && out[field].is_array() && value.is_array()) {
        json kept = json::array();
        for (const auto& v : out[field]) {
          if (std::find(value.begin(), value.end(), v) == value.end()) kept.push_back(v);
        }
        out[field] = kept;
      }
      continue;
    }
    if (value.is_null()) {
      out.erase(key);
      continue;
    }
    if (value.is_object()) {
      const json base = out.contains(key) ? out[key] : json::object();
      auto merged = mergeMap(base, value);
      if (!merged) return merged.error();
      if (merged->is_null()) {
        out.erase(key);
      } else {
        out[key] = std::move(*merged);
      }
      continue;
    }
    if (value.is_array() && mergesAsSet(key)) {
      out[key] = mergeSetList(out.contains(key) ? out[key] : json(), value);
      continue;
    }
    if (value.is_array() && mergesByUid(key)) {
      auto merged = mergeKeyedList(out.contains(key) ? out[key] : json(), value, "uid");
      if (!merged) return merged.error();
      out[key] = std::move(*merged);
      continue;
    }
    out[key] = value;
  }
  return out;
}

// ---- JSON patch ---------------------------------------------------------------------------

Result<json::json_pointer> pointer(const json& op, const char* member) {
  auto it = op.find(member);
  if (it == op.end() || !it->is_string()) {
    return unprocessable(op.value("op", "?") + " operation missing " + member);
  }
  try {
    return json::json_pointer(it->get<std::string>());
  } catch (const json::exception&) {
    return unprocessable("invalid JSON pointer: " + it->get<std::string>());
  }
}

std::string lastToken(const json::json_pointer& p) {
  return p.empty() ? "" : p.back();
}

Status applyOneJsonPatchOp(json& doc, const json& op) {
  const std::string name = op.value("op", "");
  auto path = pointer(op, "path");
  if (!path) return path.error();
  const std::string path_str = path->to_string();
  const auto parentExists = [&](const json::json_pointer& p) {
    return p.empty() || doc.contains(p.parent_pointer());
  };
  try {
    if (name == "test") {
      if (!op.contains("value")) return unprocessable("test operation missing value");
      if (!doc.contains(*path) || doc.at(*path) != op["value"]) {
        return unprocessable("testing value " + path_str + " failed: test failed");
      }
      return {};
    }
    if (name == "remove") {
      if (!doc.contains(*path)) {
        return unprocessable("Unable to remove nonexistent key: " + lastToken(*path) +
                             ": missing value");
      }
      doc = doc.patch(json::array({op}));
      return {};
    }
    if (name == "replace") {
      if (!op.contains("value")) return unprocessable("replace operation missing value");
      if (!doc.contains(*path)) {
        // Like kube-apiserver's json-patch: replacing a missing key of an object adds it.
        const bool parent_is_object = !path->empty() && doc.contains(path->parent_pointer()) &&
                                      doc.at(path->parent_pointer()).is_object();
        if (!parent_is_object) {
          return unprocessable("replace operation does not apply: doc is missing key: " + path_str +
                               ": missing value");
        }
        doc[*path] = op["value"];
        return {};
      }
      doc = doc.patch(json::array({op}));
      return {};
    }
    if (name == "add") {
      if (!op.contains("value")) return unprocessable("add operation missing value");
      if (!parentExists(*path)) {
        return unprocessable("add operation does not apply: doc is missing path: \"" + path_str +
                             "\": missing value");
      }
      doc = doc.patch(json::array({op}));
      return {};
    }
    if (name == "move" || name == "copy") {
      auto from = pointer(op, "from");
      if (!from) return from.error();
      if (!doc.contains(*from)) {
        return unprocessable(name + " operation does not apply: doc is missing from path: " +
                             from->to_string() + ": missing value");
      }
      if (!parentExists(*path)) {
        return unprocessable(name + " operation does not apply: doc is missing destination " +
                             "path: " + path_str + ": missing value");
      }
      doc = doc.patch(json::array({op}));
      return {};
    }
  } catch (const json::exception& e) {
    return unprocessable(name + " operation does not apply: " + e.what());
  }
  return unprocessable("Unexpected kind: " + name);
}

}  // namespace

std::optional<PatchType> patchTypeFromContentType(const std::string& content_type) {
  std::string media = content_type.substr(0, content_type.find(';'));
  media.erase(std::remove(media.begin(), media.end(), ' '), media.end());
  std::transform(media.begin(), media.end(), media.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (media == "application/strategic-merge-patch+json") return PatchType::kStrategicMerge;
  if (media == "application/merge-patch+json") return PatchType::kMerge;
  if (media == "application/json-patch+json") return PatchType::kJson;
  return std::nullopt;
}

Result<json> applyStrategicMergePatch(const json& original, const json& patch) {
  if (!patch.is_object()) {
    return badPatch("json: cannot unmarshal " + goTypeName(patch) +
                    " into Go value of type map[string]interface {}");
  }
  auto merged = mergeMap(original, patch);
  if (!merged) return merged.error();
  if (merged->is_null()) return badPatch("a $patch: delete directive at the top level is invalid");
  return merged;
}

Result<json> applyMergePatch(const json& original, const json& patch) {
  if (!patch.is_object()) {
    return badPatch("json: cannot unmarshal " + goTypeName(patch) +
                    " into Go value of type map[string]interface {}");
  }
  json out = original;
  out.merge_patch(patch);
  return out;
}

Result<json> applyJsonPatch(const json& original, const json& patch) {
  if (!patch.is_array()) {
    return badPatch("json: cannot unmarshal " + goTypeName(patch) +
                    " into Go value of type jsonpatch.Patch");
  }
  for (const auto& op : patch) {
    if (!op.is_object()) {
      return badPatch("json: cannot unmarshal " + goTypeName(op) +
                      " into Go value of type jsonpatch.Operation");
    }
  }
  json doc = original;
  for (const auto& op : patch) {
    if (auto st = applyOneJsonPatchOp(doc, op); !st) return st.error();
  }
  return doc;
}

Result<json> applyPatch(PatchType type, const json& original, const std::string& patch_body) {
  json patch = json::parse(patch_body, nullptr, /*allow_exceptions=*/false);
  if (patch.is_discarded()) {
    return badPatch("error decoding patch: invalid JSON in the request body");
  }
  switch (type) {
    case PatchType::kStrategicMerge:
      return applyStrategicMergePatch(original, patch);
    case PatchType::kMerge:
      return applyMergePatch(original, patch);
    case PatchType::kJson:
      return applyJsonPatch(original, patch);
  }
  return badPatch("unknown patch type");
}

}  // namespace tsk::kube_emu
