#pragma once
// Identity: turns the watcher's NodeState into the key/value map one target (Secret or
// ConfigMap) should hold. Pure functions; the Publisher diffs the result against the object.
//
//   IdentitySettings s{.keys = upstreamKeys(), .pod_uid = "3f0c..."};
//   if (auto kv = identityFor(node_state, s)) publisher.submit(*kv);
//
// Default keys match upstream containerboot (docs/PROTOCOL.md#keys-containerboot-writes) so the
// Tailscale operator keeps working:
//   device_id   = self StableID                     e.g. nSdcr7Qx2CNTRL
//   device_fqdn = self Name exactly (trailing dot)  e.g. demo-0.tail3f9a2c.ts.net.
//   device_ips  = JSON array of bare IPs, tailscaled's order  ["100.90.12.34","fd7a:..."]
//                 null (the JSON text) when the node has no addresses, as upstream writes
//   pod_uid     = POD_UID, when set
// Extra keys (config file): backend_state, tailnet_name, tags, key_expiry, host_name.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "watcher/node_state_reducer.h"

namespace tsk::agent {

enum class IdentityKey : uint8_t {
  DeviceId,
  DeviceFqdn,
  DeviceIps,
  PodUid,
  BackendState,
  TailnetName,
  Tags,
  KeyExpiry,
  HostName,
};

std::string_view identityKeyName(IdentityKey k);
std::optional<IdentityKey> identityKeyFromName(std::string_view name);
// "device_id, device_fqdn, ..." for error messages and --help.
std::string allIdentityKeyNames();

using KeySet = std::vector<IdentityKey>;  // in the order they were configured, no duplicates
KeySet upstreamKeys();                    // device_id, device_fqdn, device_ips, pod_uid

// What one target should hold. A nullopt value means "delete this key" (only used when
// clear_on_logout is set).
using KeyValues = std::map<std::string, std::optional<std::string>>;

struct IdentitySettings {
  KeySet keys = upstreamKeys();
  std::string pod_uid;           // "" = no pod_uid key
  bool clear_on_logout = false;  // delete the configured keys once tailscaled needs login
};

// The map to publish, or nullopt while there is nothing to publish yet (the self node is not
// known). After a logout the last identity stays as it is, unless clear_on_logout.
std::optional<KeyValues> identityFor(const watcher::NodeState& state, const IdentitySettings& s);

// Compact JSON array text of strings: ["a","b"]; [] when empty.
std::string jsonStringArray(const std::vector<std::string>& items);

// Keys that belong to tailscaled's own state in a shared Secret ("_..." and "profile-...");
// the agent never writes them.
bool isReservedKey(std::string_view key);

// What to do with one of our keys that another field manager owns (another writer of the same
// key, e.g. upstream containerboot's `storeDeviceID` / `storeDeviceEndpoints` writing
// device_id / device_fqdn / device_ips into its own state Secret).
enum class ForeignKeyPolicy {
  Skip,       // leave the key to its owner: never written, deleted or repaired by the agent
  Overwrite,  // write it anyway (the agent becomes its owner until the other writer writes again)
};
std::string_view foreignKeyPolicyName(ForeignKeyPolicy p);

}  // namespace tsk::agent
