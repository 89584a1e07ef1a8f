#pragma once
// FaultInjector: scripted and random failures of the emulated API server.
//
// Scripted rules are consumed in order: each matching request (method and path prefix, empty =
// any) uses up one count of the first matching rule. Kinds:
//   kStatus   answer `status` (5xx) with a Status body;
//   k429      answer 429 TooManyRequests with Retry-After: retry_after_seconds;
//   kLatency  wait `latency`, then serve the request normally;
//   kDrop     close the connection without any response.
// Random mode (soak tests) draws each request's fate from a seeded generator, so a run with the
// same seed and the same request sequence fails the same way.
//
//   injector.add({.kind = FaultKind::k429, .count = 2, .method = "PATCH"});
//   injector.setRandom({.enabled = true, .seed = 7, .p_status = 0.05, .p_drop = 0.01});
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace tsk::kube_emu {

enum class FaultKind { kStatus, k429, kLatency, kDrop };

const char* faultKindName(FaultKind k);  // "status", "429", "latency", "drop"

struct FaultRule {
  FaultKind kind = FaultKind::kStatus;
  int count = 1;                         // requests affected; -1 = until cleared
  std::string method;                    // "PATCH"; empty = any
  std::string path_prefix;               // "/api/v1/namespaces/ns/secrets"; empty = any
  int status = 503;                      // kStatus
  int retry_after_seconds = 1;           // k429
  std::chrono::milliseconds latency{0};  // kLatency

  nlohmann::json toJson() const;
  static Result<FaultRule> fromJson(const nlohmann::json& j);
};

struct RandomFaults {
  bool enabled = false;
  uint64_t seed = 1;
  double p_status = 0;   // probability of a 5xx (status below)
  double p_429 = 0;      // probability of a 429
  double p_drop = 0;     // probability of a dropped connection
  double p_latency = 0;  // probability of added latency
  int status = 503;
  int retry_after_seconds = 1;
  std::chrono::milliseconds latency{50};
  std::string method;
  std::string path_prefix;

  nlohmann::json toJson() const;
  static Result<RandomFaults> fromJson(const nlohmann::json& j);
};

class FaultInjector {
 public:
  void add(FaultRule rule);
  void setRandom(RandomFaults random);
  void clear();  // scripted rules and random mode
  // The fault for this request, if any (consumes one count of a scripted rule).
  std::optional<FaultRule> next(const std::string& method, const std::string& path);
  nlohmann::json toJson() const;

 private:
  mutable std::mutex mu_;
  std::deque<FaultRule> rules_;
  RandomFaults random_;
  std::mt19937_64 rng_{1};
};

}  // namespace tsk::kube_emu
