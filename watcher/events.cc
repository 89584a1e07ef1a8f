#include "watcher/events.h"

#include <array>

namespace tsk::watcher {
namespace {
constexpr std::array<std::string_view, 7> kStateNames = {
    "NoState", "InUseOtherUser", "NeedsLogin", "NeedsMachineAuth",
    "Stopped", "Starting",       "Running"};
constexpr std::array<std::string_view, kNotifyKindCount> kKindNames = {
    "blank",          "initial_status", "self_change",   "state",  "err_message", "peers_changed",
    "peers_removed",  "peer_patch",     "user_profiles", "health", "engine",      "prefs",
    "login_finished", "browse_to_url",  "netmap",        "other"};
}  // namespace

std::string_view backendStateName(BackendState s) {
  const int i = static_cast<int>(s);
  if (i < 0 || i >= static_cast<int>(kStateNames.size())) return "Unknown";
  return kStateNames[static_cast<size_t>(i)];
}

BackendState backendStateFromInt(int64_t v) {
  if (v < 0 || v >= static_cast<int64_t>(kStateNames.size())) return BackendState::Unknown;
  return static_cast<BackendState>(v);
}

BackendState backendStateFromString(std::string_view s) {
  for (size_t i = 0; i < kStateNames.size(); ++i) {
    if (kStateNames[i] == s) return static_cast<BackendState>(i);
  }
  return BackendState::Unknown;
}

std::string_view notifyKindName(int bit) {
  if (bit < 0 || bit >= kNotifyKindCount) return "unknown";
  return kKindNames[static_cast<size_t>(bit)];
}

}  // namespace tsk::watcher
