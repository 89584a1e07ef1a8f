#pragma once
// What kube-apiserver checks and fills in for core/v1 Secrets and ConfigMaps:
// decoding (400 "... cannot be handled as a Secret: ..."), field validation (422 Invalid with
// causes), Secret stringData folded into base64 data, and metadata.managedFields bookkeeping per
// field manager. (No label or field selectors: lists are not filtered.)
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "tools/kube-emu/api_status.h"
#include "tools/kube-emu/resource_store.h"

namespace tsk::kube_emu {

struct DecodeResult {
  nlohmann::json object;  // normalized: known fields only, stringData folded into data
  ApiResponse response;   // the 400 Status when decoding failed
  bool ok() const { return response.code == 200; }
};

// Parses and normalizes a request body the way the API server's decoder would.
DecodeResult decodeObject(Resource r, const std::string& body);
// 400 if metadata.namespace is set and differs from the namespace in the URL.
std::optional<ApiResponse> checkNamespaceMatches(const std::string& ns, const nlohmann::json& obj);
std::vector<FieldCause> validateObject(Resource r, const nlohmann::json& obj);
std::vector<FieldCause> validateUpdate(Resource r, const nlohmann::json& previous,
                                       const nlohmann::json& updated);

// How Go's encoding/json names a JSON value's type in an unmarshal error: "string", "array"...
std::string goTypeName(const nlohmann::json& v);
// A JSON value printed the way Go's fmt %v prints the decoded interface{}: map[k:v k2:v2].
std::string goFormat(const nlohmann::json& v);

bool isValidDnsSubdomain(const std::string& name);

// -1 when `s` is valid standard base64 (padding required), else the offset of the first bad
// byte, as Go's "illegal base64 data at input byte N".
long invalidBase64Offset(const std::string& s);
std::string base64Encode(const std::string& bytes);

// Updates obj.metadata.managedFields: the fields this write changed now belong to `manager`.
void recordManagedFields(nlohmann::json& obj, const nlohmann::json* previous,
                         const std::string& manager, const std::string& time);
// The object without resourceVersion and managedFields (to detect no-op writes).
nlohmann::json withoutVolatileMetadata(const nlohmann::json& obj);

}  // namespace tsk::kube_emu
