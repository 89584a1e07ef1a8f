#pragma once
// The texts of errors a user sees from the k8s module: what failed (verb, resource, namespace,
// name), what Kubernetes said, and what to do (for a 403, the Role rule that would allow it).
// Kept in one place so the wording is consistent and unit-tested. Never given token or Secret
// values: only names and the API server's Status message.
//
//   ObjectRef ref{"secrets", "tailscale", "ts-state"};
//   return responseError("patch", ref, resp, tokens.tokenFile());
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace tsk::k8s {

struct ObjectRef {
  std::string_view resource;  // "secrets" or "configmaps"
  std::string_view ns;
  std::string_view name;
};

// How much of a server's text goes into one error: enough to recognise a Status message or a
// proxy's page, short enough for a log line and the /readyz body.
inline constexpr size_t kMaxExcerptBytes = 200;

// `text` on one line, at most `limit` bytes (then "..."): control characters and non-ASCII bytes
// become spaces, runs of whitespace one space, ends trimmed. Safe for logs, labels and /readyz.
std::string sanitizedExcerpt(std::string_view text, size_t limit = kMaxExcerptBytes);
// `text` with every occurrence of each credential replaced by "[REDACTED]": the token itself and
// the base64 (standard and URL-safe alphabet, at each of the three byte alignments, so also inside
// the encoding of a longer string such as "Bearer <token>"). Servers and proxies echo the
// Authorization header in error pages; ApiClient passes everything a server says that may reach
// an error, a log line or /readyz through this. Credentials shorter than 4 bytes are left alone
// (they would match ordinary text; such a token is not a credential worth the name).
std::string redactCredentials(std::string text, const std::vector<std::string>& credentials);

// "secret" for "secrets", "configmap" for "configmaps".
std::string singularKind(std::string_view resource);
// The API server's Status `message` from an error body; else a short printable excerpt of the
// body; else "" for an empty body.
std::string kubernetesMessage(std::string_view body);
// The Role rule granting `verb` on the object. `create` cannot be restricted by name in RBAC, so
// its rule has no resourceNames.
std::string roleRuleFor(std::string_view verb, const ObjectRef& ref);

// 403: forbidden: cannot patch secrets "ts-state" in namespace "ns" (Kubernetes said: ...).
// Grant it with a Role rule: {apiGroups: [""], resources: ["secrets"], ...}
Error forbiddenError(std::string_view verb, const ObjectRef& ref, std::string_view body);
// 401 after the token was re-read (or could not be re-read).
Error unauthorizedError(std::string_view verb, const ObjectRef& ref, std::string_view body,
                        std::string_view token_file);
// 401 after the token file was to be re-read but could not be (the previous token was sent
// again and rejected). `request` is "PATCH https://host/path"; `body` is already redacted.
Error tokenRereadFailedError(std::string_view verb, std::string_view url,
                             std::string_view token_file, std::string_view reread_error,
                             std::string_view body);
// 404 on a patch: the object does not exist (the caller that may create it does so instead).
Error missingObjectError(const ObjectRef& ref);
// Any other non-success status (409, 422, 429, 5xx, ...). The caller retries what time may fix.
Error httpStatusError(std::string_view verb, const ObjectRef& ref, int status,
                      std::string_view body);

// Picks the right one of the above for a non-2xx status: kind Http, Error.http_status the status.
Error responseError(std::string_view verb, const ObjectRef& ref, int status, std::string_view body,
                    std::string_view token_file);

}  // namespace tsk::k8s
