#pragma once
// Parser -> reducer, as the watcher wires them, for the reducer and validation tests: records
// whether each fed piece changed NodeState and counts malformed lines. Also capturedLog(), which
// runs a body with a Logger writing into a string.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/log.h"
#include "watcher/node_state_reducer.h"
#include "watcher/notify_parser.h"

namespace tsk::watcher::testing {

class Pipeline final : public ReducingHandler {
 public:
  explicit Pipeline(bool track = false, Logger& log = Logger::null())
      : ReducingHandler(log, {.track_peers = track}), parser(*this, {.track_peers = track}) {}

  bool feed(std::string_view bytes) {
    changed = false;
    parser.feed(bytes);
    return changed;
  }
  const NodeState& state() const { return reducer.state(); }
  uint64_t invalid(SelfProblem p) const {
    return reducer.invalidSelfNodes()[static_cast<size_t>(p)];
  }

  void onNotify(const Notify& n) override { changed |= reducer.apply(n); }
  void onMalformed(std::string_view, size_t) override { ++malformed; }
  void onOversized(size_t) override {}
  void onLineAborted() override { changed |= reducer.onLineAborted(); }

  NotifyParser parser;
  bool changed = false;
  int malformed = 0;
};

// Runs `body` with a Logger writing into a string, and returns what was logged.
template <typename Body>
std::string capturedLog(Body&& body) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  {
    Logger log(f);
    body(log);
  }
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

inline size_t occurrences(const std::string& hay, const std::string& needle) {
  size_t count = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

}  // namespace tsk::watcher::testing
