#include "agent/identity.h"

#include <array>

#include "common/log.h"

namespace tsk::agent {
namespace {

constexpr std::array<std::string_view, 9> kKeyNames = {"device_id", "device_fqdn",   "device_ips",
                                                       "pod_uid",   "backend_state", "tailnet_name",
                                                       "tags",      "key_expiry",    "host_name"};

std::optional<std::string> valueFor(IdentityKey k, const watcher::NodeState& st,
                                    const watcher::SelfNode& self, const IdentitySettings& s) {
  switch (k) {
    case IdentityKey::DeviceId:
      return self.stable_id;
    case IdentityKey::DeviceFqdn:
      return self.name;
    case IdentityKey::DeviceIps:
      // Upstream json.Marshal()s a nil []string when the node has no addresses
      // (docs/PROTOCOL.md#keys-containerboot-writes).
      if (self.addresses.empty()) return std::string("null");
      return jsonStringArray(self.addresses);
    case IdentityKey::PodUid:
      return s.pod_uid;
    case IdentityKey::BackendState:
      return std::string(watcher::backendStateName(st.state));
    case IdentityKey::TailnetName:
      return st.tailnet_name;
    case IdentityKey::Tags:
      return jsonStringArray(self.tags);
    case IdentityKey::KeyExpiry:
      return self.key_expiry;
    case IdentityKey::HostName:
      return self.host_name;
  }
  return std::nullopt;
}

}  // namespace

std::string_view identityKeyName(IdentityKey k) {
  return kKeyNames[static_cast<size_t>(k)];
}

std::optional<IdentityKey> identityKeyFromName(std::string_view name) {
  for (size_t i = 0; i < kKeyNames.size(); ++i) {
    if (kKeyNames[i] == name) return static_cast<IdentityKey>(i);
  }
  return std::nullopt;
}

std::string allIdentityKeyNames() {
  std::string out;
  for (const auto n : kKeyNames) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

KeySet upstreamKeys() {
  return {IdentityKey::DeviceId, IdentityKey::DeviceFqdn, IdentityKey::DeviceIps,
          IdentityKey::PodUid};
}

std::optional<KeyValues> identityFor(const watcher::NodeState& state, const IdentitySettings& s) {
  const bool logged_out =
      s.clear_on_logout && state.synced && state.state == watcher::BackendState::NeedsLogin;
  if (!state.self && !logged_out) return std::nullopt;
  KeyValues out;
  for (const auto k : s.keys) {
    const auto name = std::string(identityKeyName(k));
    if (k == IdentityKey::PodUid) {
      // pod_uid describes the pod, not the device: it stays after a logout.
      if (!s.pod_uid.empty()) out.emplace(name, s.pod_uid);
      continue;
    }
    if (logged_out) {
      out.emplace(name, std::nullopt);
      continue;
    }
    out.emplace(name, valueFor(k, state, *state.self, s));
  }
  return out;
}

std::string jsonStringArray(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    appendJsonEscaped(out, items[i]);
    out += '"';
  }
  out += ']';
  return out;
}

bool isReservedKey(std::string_view key) {
  return key.starts_with("_") || key.starts_with("profile-");
}

}  // namespace tsk::agent
