#pragma once
// Decoding of the Kubernetes protobuf encoding (application/vnd.kubernetes.protobuf) for the
// few kinds kube-emu serves, so that kubectl, which sends built-in objects as protobuf on
// create and replace, works against the emulator. The envelope is the 4-byte magic "k8s\0"
// followed by a runtime.Unknown {typeMeta, raw}; raw is the object's generated.proto message.
// Only the fields kube-emu models are decoded; others are skipped. Responses stay JSON (clients
// decode by the response Content-Type).
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace tsk::kube_emu {

inline constexpr const char* kProtobufMediaType = "application/vnd.kubernetes.protobuf";

// Decodes an enveloped Secret, ConfigMap, Namespace or SelfSubjectAccessReview into the JSON
// the API would have received. Errors say what was malformed.
Result<nlohmann::json> decodeKubernetesProtobuf(const std::string& bytes);

}  // namespace tsk::kube_emu
