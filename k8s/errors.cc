#include "k8s/errors.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "k8s/base64.h"

namespace tsk::k8s {
namespace {

std::string quote(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

// `patch secrets "ts-state" in namespace "ns"`
std::string target(std::string_view verb, const ObjectRef& ref) {
  std::string out(verb);
  out += " ";
  out += ref.resource;
  if (!ref.name.empty()) out += " " + quote(ref.name);
  out += " in namespace " + quote(ref.ns);
  return out;
}

std::string saidSuffix(std::string_view body) {
  const std::string said = kubernetesMessage(body);
  return said.empty() ? "" : " (Kubernetes said: " + said + ")";
}

std::string statusText(int status) {
  switch (status) {
    case 400:
      return "400 Bad Request";
    case 401:
      return "401 Unauthorized";
    case 403:
      return "403 Forbidden";
    case 404:
      return "404 Not Found";
    case 409:
      return "409 Conflict";
    case 413:
      return "413 Request Entity Too Large";
    case 415:
      return "415 Unsupported Media Type";
    case 422:
      return "422 Unprocessable Entity";
    case 429:
      return "429 Too Many Requests";
    case 500:
      return "500 Internal Server Error";
    case 502:
      return "502 Bad Gateway";
    case 503:
      return "503 Service Unavailable";
    case 504:
      return "504 Gateway Timeout";
    default:
      return std::to_string(status);
  }
}

std::string printableExcerpt(std::string_view body) {
  return sanitizedExcerpt(body, kMaxExcerptBytes);
}

void replaceAll(std::string& text, const std::string& needle, std::string_view with) {
  if (needle.empty()) return;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + with.size())) {
    text.replace(at, needle.size(), with);
  }
}

// The base64 characters of `secret` that do not depend on its neighbours, when it starts at byte
// offset `align` (0, 1, 2) of a longer encoded string; padding stripped.
std::string alignedBase64Core(std::string_view secret, size_t align) {
  std::string padded(align, '\0');
  padded += secret;
  std::string encoded = base64Encode(padded);
  encoded.erase(encoded.find_last_not_of('=') + 1);
  const size_t first = (8 * align + 5) / 6;               // the first character all of the secret
  const size_t last = (8 * (align + secret.size())) / 6;  // one past the last such character
  if (last <= first || last > encoded.size()) return "";
  return encoded.substr(first, last - first);
}

}  // namespace

std::string sanitizedExcerpt(std::string_view text, size_t limit) {
  std::string out;
  bool space = false;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const bool printable = u > 0x20 && u < 0x7f;
    if (!printable) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    if (out.size() >= limit) {
      out += "...";
      break;
    }
    out.push_back(c);
  }
  return out;
}

std::string redactCredentials(std::string text, const std::vector<std::string>& credentials) {
  std::vector<std::string> needles;
  for (const auto& secret : credentials) {
    if (secret.size() < 4) continue;
    needles.push_back(secret);
    for (size_t align = 0; align < 3; ++align) {
      std::string core = alignedBase64Core(secret, align);
      if (core.size() < 4) continue;
      std::string url = core;
      std::replace(url.begin(), url.end(), '+', '-');
      std::replace(url.begin(), url.end(), '/', '_');
      needles.push_back(std::move(core));
      needles.push_back(std::move(url));
    }
  }
  // Longest first, so a shorter needle never splits a longer one's match.
  std::sort(needles.begin(), needles.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& needle : needles) replaceAll(text, needle, "[REDACTED]");
  return text;
}

std::string singularKind(std::string_view resource) {
  if (!resource.empty() && resource.back() == 's') resource.remove_suffix(1);
  return std::string(resource);
}

std::string kubernetesMessage(std::string_view body) {
  if (body.empty()) return "";
  auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) {
    auto it = parsed.find("message");
    if (it != parsed.end() && it->is_string()) {
      return printableExcerpt(it->get_ref<const std::string&>());
    }
  }
  return printableExcerpt(body);
}

std::string roleRuleFor(std::string_view verb, const ObjectRef& ref) {
  std::string rule = "{apiGroups: [\"\"], resources: [" + quote(ref.resource) + "], ";
  if (verb != "create" && !ref.name.empty()) rule += "resourceNames: [" + quote(ref.name) + "], ";
  rule += "verbs: [" + quote(verb) + "]}";
  return rule;
}

Error forbiddenError(std::string_view verb, const ObjectRef& ref, std::string_view body) {
  return Error{"forbidden: cannot " + target(verb, ref) + saidSuffix(body) +
                   ". Grant it with a Role rule: " + roleRuleFor(verb, ref),
               403};
}

Error unauthorizedError(std::string_view verb, const ObjectRef& ref, std::string_view body,
                        std::string_view token_file) {
  std::string msg = "unauthorized: the API server rejected the agent's credentials (401) for " +
                    target(verb, ref);
  if (!token_file.empty())
    msg += " even after re-reading the token file " + std::string(token_file);
  msg += saidSuffix(body);
  msg +=
      ". The token is invalid, expired or revoked: check the service account token (or the "
      "kubeconfig user)";
  return Error{msg, 401};
}

Error tokenRereadFailedError(std::string_view verb, std::string_view url,
                             std::string_view token_file, std::string_view reread_error,
                             std::string_view body) {
  return Error{"unauthorized: the API server rejected the agent's credentials (401) for " +
                   std::string(verb) + " " + std::string(url) + "; re-reading the token file " +
                   std::string(token_file) + " failed (" + std::string(reread_error) +
                   "), so the rejected token is the last one read from it" + saidSuffix(body) +
                   ". Fix the token mount (kubelet rotates the service-account token in place) "
                   "or the kubeconfig tokenFile",
               401};
}

Error missingObjectError(const ObjectRef& ref) {
  const std::string ns(ref.ns);
  return Error{singularKind(ref.resource) + " " + ns + "/" + std::string(ref.name) +
                   " does not exist and the agent may not create it: create it, or allow "
                   "\"create\" on " +
                   quote(ref.resource) + " in namespace " + ns,
               404};
}

Error httpStatusError(std::string_view verb, const ObjectRef& ref, int status,
                      std::string_view body) {
  std::string msg =
      "cannot " + target(verb, ref) + ": the API server answered " + statusText(status);
  msg += saidSuffix(body);
  if (status == 409) {
    msg += "; another writer changed the object at the same time";
  } else if (status == 429 || status >= 500) {
    msg += "; the API server is overloaded or unavailable; check its health";
  } else if (status == 422 || status == 400) {
    msg += "; the change was rejected as invalid (check key names: letters, digits, '-', '_', '.')";
  }
  return Error{msg, status};
}

Error responseError(std::string_view verb, const ObjectRef& ref, int status, std::string_view body,
                    std::string_view token_file) {
  switch (status) {
    case 401:
      return unauthorizedError(verb, ref, body, token_file);
    case 403:
      return forbiddenError(verb, ref, body);
    default:
      return httpStatusError(verb, ref, status, body);
  }
}

}  // namespace tsk::k8s
