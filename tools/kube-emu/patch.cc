#include "tools/kube-emu/patch.h"

#include "tools/kube-emu/object_rules.h"

#include <algorithm>
#include <optional>

namespace tsk::kube_emu {

using nlohmann::json;

namespace {

Error badPatch(const std::string& message) {
  return Error{message, 400};
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

}  // namespace

bool isStrategicMergePatch(const std::string& content_type) {
  std::string media = content_type.substr(0, content_type.find(';'));
  media.erase(std::remove(media.begin(), media.end(), ' '), media.end());
  std::transform(media.begin(), media.end(), media.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return media == "application/strategic-merge-patch+json";
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

Result<json> applyPatch(const json& original, const std::string& patch_body) {
  json patch = json::parse(patch_body, nullptr, /*allow_exceptions=*/false);
  if (patch.is_discarded()) {
    return badPatch("error decoding patch: invalid JSON in the request body");
  }
  return applyStrategicMergePatch(original, patch);
}

}  // namespace tsk::kube_emu
