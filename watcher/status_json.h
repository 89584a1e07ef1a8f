#pragma once
// parseStatusJson: the body of GET /localapi/v0/status (an ipnstate.Status, indented or not) into
// the InitialStatus the reducer applies (NodeStateReducer::applyStatus), for
// StartMode::StatusFetch (docs/PROTOCOL.md#status-fetch-start-mode). The body is small (a few KB
// with ?peers=false; the watcher reads at most 4 MiB), so it is parsed whole with nlohmann::json,
// with the shape rules the NotifyParser applies to Notify.InitialStatus (notify_parser.h):
//   - exactly one JSON object, nested at most 64 deep, without a NUL byte;
//   - no key the parser keeps (BackendState, Self, MagicDNSSuffix, CurrentTailnet, Peer; the
//     Self's ID, NodeID, DNSName, TailscaleIPs, KeyExpiry, Tags, HostName, Online, UserID; the
//     tailnet's Name and MagicDNSSuffix) twice in its object;
//   - kept strings at most 4,096 bytes, kept arrays (TailscaleIPs, Tags) at most 64 strings.
// Values of another type than expected are ignored, as the NotifyParser does. Whether the Self
// is a publishable identity is validateSelf's decision (watcher/self_validation.h), made by the
// reducer.
#include <optional>
#include <string>
#include <string_view>

#include "watcher/events.h"

namespace tsk::watcher {

// Returns nullopt and sets `error` (what is wrong, and for a JSON error at which byte of the
// body, 0-based) when the body is not a Status by the rules above.
std::optional<InitialStatus> parseStatusJson(std::string_view body, std::string* error = nullptr);

}  // namespace tsk::watcher
