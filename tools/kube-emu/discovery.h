#pragma once
// The discovery documents kubectl reads before it does anything (/version, /api, /api/v1,
// /apis). No OpenAPI, no API groups, no server-side Tables: kubectl falls back to printing the
// JSON it gets (name and age columns) and is used with --validate=false.
#include <string>

#include <nlohmann/json.hpp>

namespace tsk::kube_emu {

nlohmann::json versionInfo();
nlohmann::json apiVersions(const std::string& server_address);
nlohmann::json coreV1ResourceList();
nlohmann::json apiGroupList();  // empty

}  // namespace tsk::kube_emu
