#pragma once
// The JSON shape of a Notify line: every path with the JSON type found there, arrays collapsed
// to "[]" and map keys that are data rather than field names (node keys, user IDs, capability
// URLs, IP prefixes) collapsed to "*". Used to check that tsbus-sim's lines have the shape of
// what a real tailscaled sends (tests/data/real-tailscaled).
//
//   Shape s = shapeOf(nlohmann::json::parse(line));
//   s[".Self.TailscaleIPs"] == "null"; s[".Self.TailscaleIPs[]"] absent
#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>

namespace tsk::testing::shape {

// path -> JSON type name ("null", "boolean", "number", "string", "array", "object").
using Shape = std::map<std::string, std::string>;

inline std::string typeName(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return "boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return "number";
    case nlohmann::json::value_t::string:
      return "string";
    case nlohmann::json::value_t::array:
      return "array";
    case nlohmann::json::value_t::object:
      return "object";
    default:
      return "other";
  }
}

// A key that names data, not a field: Go field names are identifiers starting upper-case.
inline bool isDataKey(const std::string& k) {
  if (k.empty()) return true;
  for (const char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return true;
  }
  return !std::isupper(static_cast<unsigned char>(k[0]));
}

inline void addShape(const nlohmann::json& j, const std::string& path, Shape& out) {
  const auto t = typeName(j);
  auto [it, inserted] = out.emplace(path, t);
  if (!inserted && it->second != t) it->second = "mixed(" + it->second + "," + t + ")";
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) addShape(v, path + "." + (isDataKey(k) ? "*" : k), out);
  } else if (j.is_array()) {
    for (const auto& v : j) addShape(v, path + "[]", out);
  }
}

inline Shape shapeOf(const nlohmann::json& j) {
  Shape s;
  addShape(j, "", s);
  return s;
}

// The kind of a Notify line: its non-null top-level field names other than Version, joined with
// '+' (tailscaled v1.102.5 writes ErrMessage, LoginFinished, State, Prefs, NetMap, Engine,
// BrowseToURL and DriveShares as null in every line that does not carry them).
inline std::string kindOf(const nlohmann::json& j) {
  std::string out;
  for (const auto& [k, v] : j.items()) {
    if (k == "Version" || v.is_null()) continue;
    if (!out.empty()) out += '+';
    out += k;
  }
  return out.empty() ? "(blank)" : out;
}

}  // namespace tsk::testing::shape
