#pragma once
// What a tailscaled version offers a bus watcher (docs/PROTOCOL.md#released-versions), read from
// the Tailscale-Version response header or Notify.Version: "1.102.5-t1234abcd-g5678" -> 1.102.
#include <charconv>
#include <optional>
#include <string_view>

namespace tsk::watcher {

struct DaemonVersion {
  int major = 0;
  int minor = 0;
  bool atLeast(DaemonVersion o) const {
    return major > o.major || (major == o.major && minor >= o.minor);
  }
};

// nullopt when the text does not start with "MAJOR.MINOR".
inline std::optional<DaemonVersion> parseDaemonVersion(std::string_view v) {
  DaemonVersion out;
  const char* p = v.data();
  const char* end = v.data() + v.size();
  auto r = std::from_chars(p, end, out.major);
  if (r.ec != std::errc{} || r.ptr == end || *r.ptr != '.') return std::nullopt;
  r = std::from_chars(r.ptr + 1, end, out.minor);
  if (r.ec != std::errc{}) return std::nullopt;
  return out;
}

// The first releases with each piece the agent uses (tailscale `ipn/backend.go` NotifyWatchOpt,
// `ipn/ipnlocal/local.go`): SelfChange, the InitialStatus watch bit, the fell-behind close.
inline constexpr DaemonVersion kFirstWithSelfChange{1, 98};
inline constexpr DaemonVersion kFirstWithInitialStatus{1, 100};
inline constexpr DaemonVersion kFirstWithFellBehindClose{1, 102};

}  // namespace tsk::watcher
