#pragma once
// RequestLog: every request the emulated API server saw, for assertions in tests ("exactly one
// PATCH with fieldManager=ts-kube-agent", "the retry came after the 429"). Bounded: the oldest
// entries are dropped past `capacity`. Thread-safe.
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tsk::kube_emu {

struct RequestRecord {
  uint64_t seq = 0;          // 1, 2, ... since start (not reset by clear())
  std::string time;          // RFC 3339 with milliseconds, UTC
  std::string method;        // "PATCH"
  std::string path;          // "/api/v1/namespaces/ns/secrets/x"
  std::string query;         // "fieldManager=ts-kube-agent" (raw, as sent)
  std::string content_type;  // request Content-Type
  std::string accept;        // request Accept
  std::string user;          // authenticated user, "system:anonymous", or "" when rejected
  int status = 0;            // HTTP status sent; 0 = connection dropped without a response
  size_t request_bytes = 0;
  size_t response_bytes = 0;
  std::string fault;  // "", "status", "429", "latency", "drop"
  std::string body;   // request body (first 16 KiB; request_bytes has the size)
  double duration_ms = 0;

  nlohmann::json toJson() const;
};

class RequestLog {
 public:
  explicit RequestLog(size_t capacity = 20'000) : capacity_(capacity) {}
  uint64_t append(RequestRecord record);  // assigns seq; returns it
  std::vector<RequestRecord> entries(uint64_t after_seq = 0) const;
  void clear();

 private:
  mutable std::mutex mu_;
  std::deque<RequestRecord> records_;
  uint64_t next_seq_ = 1;
  size_t capacity_;
};

}  // namespace tsk::kube_emu
