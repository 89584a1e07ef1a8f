#include "tools/kube-emu/discovery.h"

#include "tools/kube-emu/object_rules.h"

namespace tsk::kube_emu {

using nlohmann::json;

json versionInfo() {
  return {{"major", "1"},
          {"minor", "32"},
          {"gitVersion", "v1.32.0-kube-emu"},
          {"gitCommit", "0000000000000000000000000000000000000000"},
          {"gitTreeState", "clean"},
          {"buildDate", "2026-01-01T00:00:00Z"},
          {"goVersion", "go1.23.0"},
          {"compiler", "gc"},
          {"platform", "linux/amd64"}};
}

json apiVersions(const std::string& server_address) {
  return {{"kind", "APIVersions"},
          {"versions", {"v1"}},
          {"serverAddressByClientCIDRs",
           {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", server_address}}}}};
}

namespace {
json resourceEntry(const std::string& name, const std::string& kind, bool namespaced,
                   const json& verbs, const json& short_names) {
  json r = {{"name", name}, {"singularName", ""}, {"namespaced", namespaced},
            {"kind", kind}, {"verbs", verbs},     {"storageVersionHash", "kube-emu-" + name}};
  if (!short_names.empty()) r["shortNames"] = short_names;
  return r;
}
}  // namespace

json coreV1ResourceList() {
  const json object_verbs = {"create", "delete", "get", "list", "patch", "update"};
  return {{"kind", "APIResourceList"},
          {"groupVersion", "v1"},
          {"resources",
           {resourceEntry("configmaps", "ConfigMap", true, object_verbs, {"cm"}),
            resourceEntry("namespaces", "Namespace", false,
                          {"create", "delete", "get", "list", "patch", "update"}, {"ns"}),
            resourceEntry("secrets", "Secret", true, object_verbs, json::array())}}};
}

json authorizationGroup() {
  const json version = {{"groupVersion", "authorization.k8s.io/v1"}, {"version", "v1"}};
  return {{"name", "authorization.k8s.io"}, {"versions", {version}}, {"preferredVersion", version}};
}

json apiGroupList() {
  return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", {authorizationGroup()}}};
}

json authorizationV1ResourceList() {
  return {{"kind", "APIResourceList"},
          {"apiVersion", "v1"},
          {"groupVersion", "authorization.k8s.io/v1"},
          {"resources",
           {{{"name", "selfsubjectaccessreviews"},
             {"singularName", ""},
             {"namespaced", false},
             {"kind", "SelfSubjectAccessReview"},
             {"verbs", {"create"}}}}}};
}

json openApiV3Index() {
  return {{"paths", {{"api/v1", {{"serverRelativeURL", "/openapi/v3/api/v1?hash=kube-emu-1"}}}}}};
}

json openApiV3CoreV1() {
  json paths = json::object();
  const auto add = [&](const std::string& path, const std::string& kind) {
    const json params = json::array({{{"name", "fieldValidation"},
                                      {"in", "query"},
                                      {"schema", {{"type", "string"}, {"uniqueItems", true}}}},
                                     {{"name", "fieldManager"},
                                      {"in", "query"},
                                      {"schema", {{"type", "string"}, {"uniqueItems", true}}}}});
    const json gvk = {{"group", ""}, {"version", "v1"}, {"kind", kind}};
    json op = {{"parameters", params},
               {"responses", {{"200", {{"description", "OK"}}}}},
               {"x-kubernetes-action", "patch"},
               {"x-kubernetes-group-version-kind", gvk}};
    paths[path] = {{"patch", op}};
  };
  add("/api/v1/namespaces/{namespace}/secrets/{name}", "Secret");
  add("/api/v1/namespaces/{namespace}/configmaps/{name}", "ConfigMap");
  add("/api/v1/namespaces/{name}", "Namespace");
  return {{"openapi", "3.0.0"},
          {"info", {{"title", "Kubernetes (kube-emu)"}, {"version", "v1.32.0"}}},
          {"paths", paths},
          {"components", {{"schemas", json::object()}}}};
}

bool wantsTable(const std::string& accept) {
  // The first acceptable media type wins; kubectl lists the Table types first.
  const size_t table = accept.find("as=Table");
  return table != std::string::npos && accept.find("g=meta.k8s.io") != std::string::npos;
}

std::string humanDuration(std::chrono::seconds d) {
  const long long seconds = d.count();
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return std::to_string(seconds) + "s";
  const long long minutes = seconds / 60;
  if (minutes < 10) {
    const long long s = seconds % 60;
    return std::to_string(minutes) + "m" + (s == 0 ? "" : std::to_string(s) + "s");
  }
  if (minutes < 60 * 3) return std::to_string(minutes) + "m";
  const long long hours = minutes / 60;
  if (hours < 8) {
    const long long m = minutes % 60;
    return std::to_string(hours) + "h" + (m == 0 ? "" : std::to_string(m) + "m");
  }
  if (hours < 48) return std::to_string(hours) + "h";
  if (hours < 24 * 8) {
    const long long h = hours % 24;
    return std::to_string(hours / 24) + "d" + (h == 0 ? "" : std::to_string(h) + "h");
  }
  if (hours < 24 * 365 * 2) return std::to_string(hours / 24) + "d";
  const long long days = hours / 24;
  if (hours < 24 * 365 * 8) {
    const long long dy = days % 365;
    return std::to_string(days / 365) + "y" + (dy == 0 ? "" : std::to_string(dy) + "d");
  }
  return std::to_string(days / 365) + "y";
}

namespace {

json column(const std::string& name, const std::string& type, const std::string& format,
            const std::string& description) {
  return {{"name", name},
          {"type", type},
          {"format", format},
          {"description", description},
          {"priority", 0}};
}

json columns(Resource r) {
  const json name = column("Name", "string", "name",
                           "Name must be unique within a namespace. Is required when creating "
                           "resources, although some resources may allow a client to request the "
                           "generation of an appropriate name automatically. Name is primarily "
                           "intended for creation idempotence and configuration definition. Cannot "
                           "be updated. More info: "
                           "http://kubernetes.io/docs/user-guide/identifiers#names");
  const json age = column("Age", "string", "",
                          "CreationTimestamp is a timestamp representing the server time when "
                          "this object was created.");
  switch (r) {
    case Resource::kSecrets:
      return {name,
              column("Type", "string", "",
                     "Used to facilitate programmatic handling of "
                     "secret data."),
              column("Data", "string", "", "Contains the secret data."), age};
    case Resource::kConfigMaps:
      return {name, column("Data", "string", "", "Data contains the configuration data."), age};
    case Resource::kNamespaces:
      return {name, column("Status", "string", "", "The status of the namespace"), age};
  }
  return {name, age};
}

json row(Resource r, const json& obj, const std::string& include_object, Clock::Wall now) {
  const json& meta = obj.contains("metadata") ? obj["metadata"] : json::object();
  std::string age = "<unknown>";
  if (auto created = parseRfc3339(meta.value("creationTimestamp", ""))) {
    age = humanDuration(std::chrono::duration_cast<std::chrono::seconds>(now - *created));
  }
  json cells = {meta.value("name", "")};
  const auto count = [&](const char* f) {
    return obj.contains(f) && obj[f].is_object() ? obj[f].size() : size_t{0};
  };
  switch (r) {
    case Resource::kSecrets:
      cells.push_back(obj.value("type", "Opaque"));
      cells.push_back(count("data"));
      break;
    case Resource::kConfigMaps:
      cells.push_back(count("data") + count("binaryData"));
      break;
    case Resource::kNamespaces:
      cells.push_back(obj.contains("status") ? obj["status"].value("phase", "Active") : "Active");
      break;
  }
  cells.push_back(age);
  json out = {{"cells", cells}};
  if (include_object == "Object") {
    json full = obj;
    full["kind"] = resourceInfo(r).kind;
    full["apiVersion"] = "v1";
    out["object"] = full;
  } else if (include_object != "None") {
    json partial_meta = meta;
    partial_meta.erase("managedFields");
    out["object"] = {{"kind", "PartialObjectMetadata"},
                     {"apiVersion", "meta.k8s.io/v1"},
                     {"metadata", partial_meta}};
  }
  return out;
}

}  // namespace

json toTable(Resource r, const json& list_or_object, const std::string& include_object,
             Clock::Wall now) {
  json rows = json::array();
  std::string rv;
  if (list_or_object.contains("items")) {
    for (const auto& item : list_or_object["items"])
      rows.push_back(row(r, item, include_object, now));
    rv = list_or_object["metadata"].value("resourceVersion", "");
  } else {
    rows.push_back(row(r, list_or_object, include_object, now));
    rv = list_or_object["metadata"].value("resourceVersion", "");
  }
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/v1"},
          {"metadata", {{"resourceVersion", rv}}},
          {"columnDefinitions", columns(r)},
          {"rows", rows}};
}

}  // namespace tsk::kube_emu
