#pragma once
// Responses of the emulated API server, and the `Status` bodies kube-apiserver sends for errors,
// with the same reasons, codes and message shapes, e.g.
//   secrets "ts-state" is forbidden: User "system:serviceaccount:ns:sa" cannot patch resource
//   "secrets" in API group "" in the namespace "ns"
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace tsk::kube_emu {

struct ApiResponse {
  int code = 200;
  nlohmann::json body;
  std::map<std::string, std::string> headers;

  bool ok() const { return code >= 200 && code < 300; }
};

// One entry of details.causes in an Invalid (422) Status.
struct FieldCause {
  std::string field;    // "data[bad/key]"
  std::string reason;   // "FieldValueInvalid", "FieldValueRequired", "FieldValueTooLong", ...
  std::string message;  // "Invalid value: \"bad/key\": a valid config key must ..."
};

ApiResponse statusResponse(int code, std::string_view reason, const std::string& message,
                           nlohmann::json details = nullptr);
ApiResponse statusSuccess(const nlohmann::json& details);

ApiResponse notFound(std::string_view resource, const std::string& name);
ApiResponse alreadyExists(std::string_view resource, const std::string& name);
ApiResponse conflict(std::string_view resource, const std::string& name);
// `name` empty: a collection request (list, create). `ns` empty: cluster scope.
ApiResponse forbidden(const std::string& user, std::string_view verb, std::string_view resource,
                      const std::string& ns, const std::string& name);
ApiResponse forbiddenPath(const std::string& user, std::string_view verb, const std::string& path);
ApiResponse unauthorized();
ApiResponse badRequest(const std::string& message);
ApiResponse invalid(std::string_view kind, const std::string& name,
                    const std::vector<FieldCause>& causes);
ApiResponse pathNotFound();
ApiResponse methodNotAllowed();
ApiResponse unsupportedMediaType();
ApiResponse internalError(const std::string& message);
ApiResponse serviceUnavailable(const std::string& message);
ApiResponse tooManyRequests(int retry_after_seconds);

}  // namespace tsk::kube_emu
