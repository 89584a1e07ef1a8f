#include "k8s/token_source.h"

#include "common/read_file.h"
#include "common/text.h"
#include "k8s/file_limits.h"

namespace tsk::k8s {
namespace {}  // namespace

Status validateToken(std::string_view token, std::string_view origin) {
  for (size_t i = 0; i < token.size(); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      const std::string what = c == '\r'   ? "a carriage return (CR)"
                               : c == '\n' ? "a line feed (LF)"
                                           : "a control character";
      return Error{"the bearer token from " + std::string(origin) + " holds " + what + " at byte " +
                   std::to_string(i + 1) +
                   ", which cannot be sent in an HTTP header (it would end the Authorization "
                   "header and start others); the agent refuses it: write the token alone, on "
                   "one line"};
    }
  }
  return {};
}

TokenSource::TokenSource(std::string static_token, std::string token_file,
                         std::chrono::seconds refresh, Clock& clock, Logger& log)
    : static_token_(std::move(static_token)),
      token_file_(std::move(token_file)),
      refresh_(refresh),
      clock_(clock),
      log_(log) {}

Result<std::string> TokenSource::readTokenFile() const {
  auto content = readFileContents(token_file_, kMaxTokenFileBytes);
  if (!content) {
    return Error{"bearer token: " + content.error().message +
                 "; check the service-account token mount (or the kubeconfig tokenFile path)"};
  }
  std::string token(trimSpace(*content));
  if (token.empty()) {
    return Error{"bearer token file " + token_file_ +
                 " is empty; check the service-account token mount (or the kubeconfig tokenFile)"};
  }
  if (auto valid = validateToken(token, "the token file " + token_file_); !valid) {
    return valid.error();
  }
  return token;
}

std::string TokenSource::lastReadError() {
  std::lock_guard lock(mu_);
  return last_read_error_;
}

Result<std::string> TokenSource::token() {
  if (token_file_.empty()) {
    if (auto valid = validateToken(static_token_, "the kubeconfig user's token"); !valid) {
      return valid.error();
    }
    return static_token_;
  }
  std::lock_guard lock(mu_);
  const auto now = clock_.monotonicNow();
  if (cached_ && !stale_ && now - read_at_ < refresh_) return *cached_;
  auto fresh = readTokenFile();
  last_read_error_ = fresh ? "" : fresh.error().message;
  if (!fresh) {
    if (!cached_) return fresh.error();
    log_.warn(
        "cannot re-read the bearer token file; keeping the previous token and trying again after "
        "the refresh period or the next 401",
        {{"file", token_file_}, {"error", fresh.error().message}});
    read_at_ = now;  // try again after the next refresh period, not on every request
    stale_ = false;
    return *cached_;
  }
  if (cached_ && *cached_ != *fresh)
    log_.info("bearer token file changed", {{"file", token_file_}});
  cached_ = std::move(fresh).value();
  read_at_ = now;
  stale_ = false;
  return *cached_;
}

void TokenSource::invalidate() {
  std::lock_guard lock(mu_);
  stale_ = true;
}

}  // namespace tsk::k8s
