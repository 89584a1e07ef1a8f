#pragma once
// Test support for the watcher: a NotifyHandler that records every callback as one line of text,
// and an oracle that computes the same text from nlohmann::json's DOM of a line, following the
// extraction rules of NotifyParser (docs/PROTOCOL.md#notify-fields-the-agent-reads). Comparing the
// two checks the streaming parser against a plain, obviously-correct parse.
#include <string>
#include <string_view>
#include <vector>

#include "watcher/events.h"

namespace tsk::watcher::testing {

std::string describe(const SelfNode& s);
std::string describe(const Notify& n);  // every field the parser extracts, bytes included

class RecordingHandler : public NotifyHandler {
 public:
  void onNotify(const Notify& n) override;
  void onMalformed(std::string_view reason, size_t line_bytes) override;
  void onOversized(size_t line_bytes) override;
  void onInitialStatusBegin() override;
  void onInitialPeer(std::optional<int64_t> node_id, bool online) override;
  void onPeerUpsert(int64_t node_id, std::optional<bool> online) override;
  void onPeerRemoved(int64_t node_id) override;
  void onPeerPatch(int64_t node_id, std::optional<bool> online) override;
  void onLineAborted() override;

  std::vector<std::string> events;
  std::vector<Notify> notifies;
  std::vector<std::string> malformed_reasons;
  size_t malformed = 0;
  size_t oversized = 0;
  size_t aborted = 0;
  bool keep_notifies = true;
};

// The events a correct parser yields for one complete line (ending in '\n'), computed from
// nlohmann::ordered_json. Throws if nlohmann rejects the line.
std::vector<std::string> oracleEvents(std::string_view line, bool track_peers);

// The expected Notify alone (no peer events).
Notify oracleNotify(std::string_view line);

// Lines of a fixture in tests/data, each with its '\n'.
std::vector<std::string> fixtureLines(const std::string& name);
std::string fixtureFile(const std::string& name);

}  // namespace tsk::watcher::testing
