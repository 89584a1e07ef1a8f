#pragma once
// Where tailscaled listens for its LocalAPI by default on Linux (tailscale
// `paths/paths.go` DefaultTailscaledSocket): the agent's --socket default and the watcher's.
#include <string_view>

namespace tsk {

inline constexpr std::string_view kDefaultTailscaledSocket = "/var/run/tailscale/tailscaled.sock";

}  // namespace tsk
