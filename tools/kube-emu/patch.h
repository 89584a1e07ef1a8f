#pragma once
// The three PATCH flavours kube-apiserver accepts for built-in objects, applied to JSON:
//   strategic merge (application/strategic-merge-patch+json): maps merge recursively, `null`
//     deletes a key, `$patch: replace|delete` directives, lists replace except the few
//     core/v1 metadata lists that merge (finalizers as a set, ownerReferences by uid);
//   JSON merge patch, RFC 7386 (application/merge-patch+json);
//   JSON patch, RFC 6902 (application/json-patch+json): add, remove, replace, move, copy, test.
// Errors carry the HTTP code the API server would answer: 400 for a malformed patch, 422 for a
// patch that does not apply (a failed test, a missing path).
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace tsk::kube_emu {

enum class PatchType { kStrategicMerge, kMerge, kJson };

// Maps a Content-Type (parameters ignored) to a patch type; nullopt if not a patch type.
std::optional<PatchType> patchTypeFromContentType(const std::string& content_type);

Result<nlohmann::json> applyPatch(PatchType type, const nlohmann::json& original,
                                  const std::string& patch_body);

Result<nlohmann::json> applyStrategicMergePatch(const nlohmann::json& original,
                                                const nlohmann::json& patch);
Result<nlohmann::json> applyMergePatch(const nlohmann::json& original, const nlohmann::json& patch);
Result<nlohmann::json> applyJsonPatch(const nlohmann::json& original, const nlohmann::json& patch);

}  // namespace tsk::kube_emu
