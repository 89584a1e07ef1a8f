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
            resourceEntry("secrets", "Secret", true, object_verbs, json::array())}}};
}

json apiGroupList() {
  return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", json::array()}};
}

}  // namespace tsk::kube_emu
