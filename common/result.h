#pragma once
// Result<T>: a value or an Error, for failures a caller is expected to handle (network, files,
// configuration). Impossible states are asserted instead. Every Error message a user can see
// says what happened and what to do about it.
#include <cassert>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace tsk {

// What kind of failure an Error is, separate from any HTTP status: callers decide on the kind
// (exit code 2 for Config, retry Transport/Timeout, give up on Tls at shutdown, ...) and on
// `code` only for an Http error.
enum class ErrorKind {
  Other,      // anything not listed below
  Config,     // the configuration is wrong (flags, kubeconfig, files): fixing it needs a person
  Transport,  // could not connect, or the connection broke before a complete answer
  Timeout,    // no complete answer within the deadline
  Tls,        // TLS verification of the peer failed: retrying will not help
  Http,       // the server answered with a status that is an error; `code` holds it
  Parse,      // the answer arrived but is not what was expected (not JSON, another object, ...)
  Cancelled,  // shutting down
};

struct Error {
  Error() = default;
  Error(std::string m) : message(std::move(m)) {}  // NOLINT(google-explicit-constructor)
  // An HTTP status error: kind Http.
  Error(std::string m, int status)
      : message(std::move(m)), kind(ErrorKind::Http), http_status(status) {}
  Error(std::string m, ErrorKind k, int status = 0)
      : message(std::move(m)), kind(k), http_status(status) {}

  std::string message;
  ErrorKind kind = ErrorKind::Other;
  int http_status = 0;  // of an Http error (403, 404, ...); 0 for every other kind
  // How long the server asked the caller to wait before trying again (Retry-After, parsed and
  // bounded by whoever parsed it); nullopt when it did not say.
  std::optional<std::chrono::milliseconds> retry_after;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<Error>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace tsk
