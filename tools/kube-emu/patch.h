#pragma once
// The PATCH the agent sends, applied to JSON the way kube-apiserver does for built-in objects:
//   strategic merge (application/strategic-merge-patch+json): maps merge recursively, `null`
//     deletes a key, `$patch: replace|delete` directives, lists replace except the few
//     core/v1 metadata lists that merge (finalizers as a set, ownerReferences by uid).
// JSON merge patch and JSON patch are not served (415): tests of those run against a real
// kube-apiserver (tests/integration/real_apiserver).
// Errors carry the HTTP code the API server would answer (400 for a malformed patch).
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace tsk::kube_emu {

// True for application/strategic-merge-patch+json (parameters ignored).
bool isStrategicMergePatch(const std::string& content_type);

Result<nlohmann::json> applyPatch(const nlohmann::json& original, const std::string& patch_body);
Result<nlohmann::json> applyStrategicMergePatch(const nlohmann::json& original,
                                                const nlohmann::json& patch);

}  // namespace tsk::kube_emu
