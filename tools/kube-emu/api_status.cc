#include "tools/kube-emu/api_status.h"

namespace tsk::kube_emu {

using nlohmann::json;

ApiResponse statusResponse(int code, std::string_view reason, const std::string& message,
                           json details) {
  json body = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
               {"status", "Failure"}, {"message", message}, {"reason", reason}};
  if (!details.is_null()) body["details"] = std::move(details);
  body["code"] = code;
  if (reason.empty()) body.erase("reason");
  return ApiResponse{code, std::move(body), {}};
}

ApiResponse statusSuccess(const json& details) {
  json body = {{"kind", "Status"},
               {"apiVersion", "v1"},
               {"metadata", json::object()},
               {"status", "Success"},
               {"details", details}};
  return ApiResponse{200, std::move(body), {}};
}

namespace {
json nameDetails(std::string_view resource, const std::string& name) {
  json d = json::object();
  if (!name.empty()) d["name"] = name;
  d["kind"] = resource;
  return d;
}

std::string qualified(std::string_view resource, const std::string& name) {
  std::string s(resource);
  if (!name.empty()) s += " \"" + name + "\"";
  return s;
}
}  // namespace

ApiResponse notFound(std::string_view resource, const std::string& name) {
  return statusResponse(404, "NotFound", qualified(resource, name) + " not found",
                        nameDetails(resource, name));
}

ApiResponse alreadyExists(std::string_view resource, const std::string& name) {
  return statusResponse(409, "AlreadyExists", qualified(resource, name) + " already exists",
                        nameDetails(resource, name));
}

ApiResponse conflict(std::string_view resource, const std::string& name) {
  return statusResponse(409, "Conflict",
                        "Operation cannot be fulfilled on " + qualified(resource, name) +
                            ": the object has been modified; please apply your changes to the "
                            "latest version and try again",
                        nameDetails(resource, name));
}

ApiResponse forbidden(const std::string& user, std::string_view verb, std::string_view resource,
                      const std::string& ns, const std::string& name) {
  std::string msg = qualified(resource, name) + " is forbidden: User \"" + user + "\" cannot " +
                    std::string(verb) + " resource \"" + std::string(resource) +
                    "\" in API group \"\"";
  msg += ns.empty() ? " at the cluster scope" : " in the namespace \"" + ns + "\"";
  return statusResponse(403, "Forbidden", msg, nameDetails(resource, name));
}

ApiResponse forbiddenPath(const std::string& user, std::string_view verb, const std::string& path) {
  return statusResponse(
      403, "Forbidden",
      "forbidden: User \"" + user + "\" cannot " + std::string(verb) + " path \"" + path + "\"",
      json::object());
}

ApiResponse unauthorized() {
  return statusResponse(401, "Unauthorized", "Unauthorized");
}

ApiResponse badRequest(const std::string& message) {
  return statusResponse(400, "BadRequest", message);
}

ApiResponse invalid(std::string_view kind, const std::string& name,
                    const std::vector<FieldCause>& causes) {
  std::string msg = std::string(kind) + " \"" + name + "\" is invalid: ";
  json jc = json::array();
  if (causes.size() > 1) msg += "[";
  for (size_t i = 0; i < causes.size(); ++i) {
    if (i > 0) msg += ", ";
    msg += causes[i].field + ": " + causes[i].message;
    jc.push_back(
        {{"reason", causes[i].reason}, {"message", causes[i].message}, {"field", causes[i].field}});
  }
  if (causes.size() > 1) msg += "]";
  json details = json::object();
  if (!name.empty()) details["name"] = name;
  if (!kind.empty()) details["kind"] = std::string(kind);
  details["causes"] = jc;
  return statusResponse(422, "Invalid", msg, details);
}

ApiResponse pathNotFound() {
  return statusResponse(404, "NotFound", "the server could not find the requested resource",
                        json::object());
}

ApiResponse methodNotAllowed() {
  return statusResponse(405, "MethodNotAllowed",
                        "the server does not allow this method on the requested resource",
                        json::object());
}

ApiResponse unsupportedMediaType() {
  return statusResponse(415, "UnsupportedMediaType", "415: Unsupported Media Type", json::object());
}

ApiResponse internalError(const std::string& message) {
  return statusResponse(500, "InternalError", "Internal error occurred: " + message,
                        {{"causes", json::array({{{"message", message}}})}});
}

ApiResponse serviceUnavailable(const std::string& message) {
  return statusResponse(503, "ServiceUnavailable", message);
}

ApiResponse tooManyRequests(int retry_after_seconds) {
  ApiResponse r =
      statusResponse(429, "TooManyRequests", "Too many requests, please try again later.",
                     {{"retryAfterSeconds", retry_after_seconds}});
  r.headers["Retry-After"] = std::to_string(retry_after_seconds);
  return r;
}

}  // namespace tsk::kube_emu
