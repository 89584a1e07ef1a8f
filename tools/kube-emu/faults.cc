#include "tools/kube-emu/faults.h"

namespace tsk::kube_emu {

using nlohmann::json;

namespace {

bool matches(const std::string& method, const std::string& path_prefix, const std::string& m,
             const std::string& p) {
  return (method.empty() || method == m) && (path_prefix.empty() || p.starts_with(path_prefix));
}

Result<FaultKind> kindFromName(const std::string& s) {
  if (s == "status" || s == "5xx" || s == "error") return FaultKind::kStatus;
  if (s == "429" || s == "throttle") return FaultKind::k429;
  if (s == "latency" || s == "delay") return FaultKind::kLatency;
  if (s == "drop" || s == "close") return FaultKind::kDrop;
  return Error{"fault: unknown kind \"" + s + "\" (expected status, 429, latency or drop)"};
}

template <typename T>
Result<T> field(const json& j, const char* key, T fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const json::exception&) {
    return Error{std::string("fault: \"") + key + "\" has the wrong type: " + j[key].dump()};
  }
}

}  // namespace

const char* faultKindName(FaultKind k) {
  switch (k) {
    case FaultKind::kStatus:
      return "status";
    case FaultKind::k429:
      return "429";
    case FaultKind::kLatency:
      return "latency";
    case FaultKind::kDrop:
      return "drop";
  }
  return "?";
}

json FaultRule::toJson() const {
  return {{"kind", faultKindName(kind)}, {"count", count},   {"method", method},
          {"path", path_prefix},         {"status", status}, {"retryAfter", retry_after_seconds},
          {"latencyMs", latency.count()}};
}

Result<FaultRule> FaultRule::fromJson(const json& j) {
  if (!j.is_object()) return Error{"fault: expected a JSON object"};
  FaultRule r;
  auto kind = kindFromName(j.value("kind", "status"));
  if (!kind) return kind.error();
  r.kind = *kind;
  auto count = field<int>(j, "count", 1);
  auto method = field<std::string>(j, "method", "");
  auto path = field<std::string>(j, "path", "");
  auto status = field<int>(j, "status", r.kind == FaultKind::k429 ? 429 : 503);
  auto retry = field<int>(j, "retryAfter", 1);
  auto latency = field<int64_t>(j, "latencyMs", 0);
  for (const Error* e : {count ? nullptr : &count.error(), method ? nullptr : &method.error(),
                         path ? nullptr : &path.error(), status ? nullptr : &status.error(),
                         retry ? nullptr : &retry.error(), latency ? nullptr : &latency.error()}) {
    if (e != nullptr) return *e;
  }
  r.count = *count;
  r.method = *method;
  r.path_prefix = *path;
  r.status = *status;
  r.retry_after_seconds = *retry;
  r.latency = std::chrono::milliseconds(*latency);
  if (r.count == 0 || r.count < -1) return Error{"fault: count must be positive, or -1 (forever)"};
  if (r.kind == FaultKind::kStatus && (r.status < 400 || r.status > 599)) {
    return Error{"fault: status must be 400..599, got " + std::to_string(r.status)};
  }
  return r;
}

json RandomFaults::toJson() const {
  return {{"enabled", enabled},
          {"seed", seed},
          {"p5xx", p_status},
          {"p429", p_429},
          {"pDrop", p_drop},
          {"pLatency", p_latency},
          {"status", status},
          {"retryAfter", retry_after_seconds},
          {"latencyMs", latency.count()},
          {"method", method},
          {"path", path_prefix}};
}

Result<RandomFaults> RandomFaults::fromJson(const json& j) {
  if (!j.is_object()) return Error{"random faults: expected a JSON object"};
  RandomFaults r;
  try {
    r.enabled = j.value("enabled", true);
    r.seed = j.value("seed", uint64_t{1});
    r.p_status = j.value("p5xx", 0.0);
    r.p_429 = j.value("p429", 0.0);
    r.p_drop = j.value("pDrop", 0.0);
    r.p_latency = j.value("pLatency", 0.0);
    r.status = j.value("status", 503);
    r.retry_after_seconds = j.value("retryAfter", 1);
    r.latency = std::chrono::milliseconds(j.value("latencyMs", int64_t{50}));
    r.method = j.value("method", "");
    r.path_prefix = j.value("path", "");
  } catch (const json::exception& e) {
    return Error{std::string("random faults: a field has the wrong type: ") + e.what()};
  }
  const double total = r.p_status + r.p_429 + r.p_drop + r.p_latency;
  if (r.p_status < 0 || r.p_429 < 0 || r.p_drop < 0 || r.p_latency < 0 || total > 1.0) {
    return Error{"random faults: probabilities must be >= 0 and sum to at most 1"};
  }
  return r;
}

void FaultInjector::add(FaultRule rule) {
  std::lock_guard lock(mu_);
  rules_.push_back(std::move(rule));
}

void FaultInjector::setRandom(RandomFaults random) {
  std::lock_guard lock(mu_);
  random_ = std::move(random);
  rng_.seed(random_.seed);
}

void FaultInjector::clear() {
  std::lock_guard lock(mu_);
  rules_.clear();
  random_ = RandomFaults{};
}

std::optional<FaultRule> FaultInjector::next(const std::string& method, const std::string& path) {
  std::lock_guard lock(mu_);
  for (auto it = rules_.begin(); it != rules_.end(); ++it) {
    if (!matches(it->method, it->path_prefix, method, path)) continue;
    FaultRule hit = *it;
    if (it->count > 0 && --it->count == 0) rules_.erase(it);
    return hit;
  }
  if (!random_.enabled || !matches(random_.method, random_.path_prefix, method, path)) {
    return std::nullopt;
  }
  const double draw = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  double edge = random_.p_status;
  FaultRule r;
  if (draw < edge) {
    r.kind = FaultKind::kStatus;
    r.status = random_.status;
    return r;
  }
  if (draw < (edge += random_.p_429)) {
    r.kind = FaultKind::k429;
    r.retry_after_seconds = random_.retry_after_seconds;
    return r;
  }
  if (draw < (edge += random_.p_drop)) {
    r.kind = FaultKind::kDrop;
    return r;
  }
  if (draw < (edge += random_.p_latency)) {
    r.kind = FaultKind::kLatency;
    r.latency = random_.latency;
    return r;
  }
  return std::nullopt;
}

json FaultInjector::toJson() const {
  std::lock_guard lock(mu_);
  json rules = json::array();
  for (const auto& r : rules_) rules.push_back(r.toJson());
  return {{"rules", rules}, {"random", random_.toJson()}};
}

}  // namespace tsk::kube_emu
