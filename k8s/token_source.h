#pragma once
// TokenSource: the bearer token for API requests. A static token (kubeconfig `token`) never
// changes; a token file (service-account `token`, kubeconfig `tokenFile`) is re-read at most every
// `refresh` and at once after invalidate() (the client calls it on a 401), because kubelet
// rotates bound tokens in place. The file must be a regular file of at most 64 KiB (see
// common/read_file.h). If a later re-read fails (the file vanished, became a directory or a device,
// grew too large, holds a character that cannot go into a header), the last good token is kept,
// a warning naming the file and the reason is logged, and lastReadError() says what failed.
// Thread-safe. Token values are never logged.
//
//   TokenSource tokens(cfg.token, cfg.token_file, 60s, clock, log);
//   auto token = tokens.token();        // "" when no bearer auth is configured
//   if (status == 401 && tokens.refreshable()) tokens.invalidate();
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/log.h"
#include "common/result.h"

namespace tsk::k8s {

// An error unless `token` can be sent as "Authorization: Bearer <token>": no control character
// (CR, LF, NUL, ...) but tab, no DEL, as Go's net/http refuses invalid header field values
// (golang.org/x/net/http/httpguts ValidHeaderFieldValue) and so client-go with it. A CR/LF would
// otherwise end the header and inject others. `origin` names where the token came from ("the
// token file /x", "users[\"u\"].user.token"). The message never holds the token.
Status validateToken(std::string_view token, std::string_view origin);

class TokenSource {
 public:
  // A non-empty `token_file` takes precedence over `static_token` (as in client-go).
  TokenSource(std::string static_token, std::string token_file, std::chrono::seconds refresh,
              Clock& clock, Logger& log);

  // The current token; an Error only if the file has never been read successfully (or the static
  // token is not a valid header value).
  Result<std::string> token();
  // Why the most recent read of the token file failed; "" if it succeeded (or there is no file).
  std::string lastReadError();
  // The next token() re-reads the file.
  void invalidate();
  // True when a token file backs this source (so a 401 may be cured by re-reading it).
  bool refreshable() const { return !token_file_.empty(); }
  const std::string& tokenFile() const { return token_file_; }

 private:
  Result<std::string> readTokenFile() const;

  const std::string static_token_;
  const std::string token_file_;
  const std::chrono::seconds refresh_;
  Clock& clock_;
  Logger& log_;
  std::mutex mu_;
  std::optional<std::string> cached_;
  Clock::Monotonic read_at_{};
  bool stale_ = true;
  std::string last_read_error_;
};

}  // namespace tsk::k8s
