#pragma once
// The discovery documents kubectl reads before it does anything (/version, /api, /api/v1,
// /apis, authorization.k8s.io), and server-side Table rendering for `kubectl get` (kubectl asks
// with Accept: application/json;as=Table;v=v1;g=meta.k8s.io).
#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "tools/kube-emu/resource_store.h"

namespace tsk::kube_emu {

nlohmann::json versionInfo();
nlohmann::json apiVersions(const std::string& server_address);
nlohmann::json coreV1ResourceList();
nlohmann::json apiGroupList();
nlohmann::json authorizationGroup();
nlohmann::json authorizationV1ResourceList();
// A minimal OpenAPI v3 index and core/v1 document: just enough for kubectl to learn that the
// server validates fields itself (the PATCH operations list ?fieldValidation=), so that
// `kubectl apply` and `kubectl replace` skip client-side schema validation.
nlohmann::json openApiV3Index();
nlohmann::json openApiV3CoreV1();

// True if the Accept header asks for a meta.k8s.io Table.
bool wantsTable(const std::string& accept);
// Renders a list or a single object as a Table. include_object: "None", "Metadata" (default),
// "Object" (the ?includeObject= parameter).
nlohmann::json toTable(Resource r, const nlohmann::json& list_or_object,
                       const std::string& include_object, Clock::Wall now);
// Kubernetes' duration.HumanDuration: "45s", "3m20s", "5h", "12d"...
std::string humanDuration(std::chrono::seconds d);

}  // namespace tsk::kube_emu
