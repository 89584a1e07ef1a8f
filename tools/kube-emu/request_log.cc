#include "tools/kube-emu/request_log.h"

namespace tsk::kube_emu {

nlohmann::json RequestRecord::toJson() const {
  return {{"seq", seq},
          {"time", time},
          {"method", method},
          {"path", path},
          {"query", query},
          {"contentType", content_type},
          {"accept", accept},
          {"user", user},
          {"status", status},
          {"requestBytes", request_bytes},
          {"responseBytes", response_bytes},
          {"fault", fault},
          {"body", body},
          {"durationMs", duration_ms}};
}

uint64_t RequestLog::append(RequestRecord record) {
  std::lock_guard lock(mu_);
  record.seq = next_seq_++;
  records_.push_back(std::move(record));
  while (records_.size() > capacity_) records_.pop_front();
  return records_.back().seq;
}

std::vector<RequestRecord> RequestLog::entries(uint64_t after_seq) const {
  std::lock_guard lock(mu_);
  std::vector<RequestRecord> out;
  for (const auto& r : records_) {
    if (r.seq > after_seq) out.push_back(r);
  }
  return out;
}

void RequestLog::clear() {
  std::lock_guard lock(mu_);
  records_.clear();
}

}  // namespace tsk::kube_emu
