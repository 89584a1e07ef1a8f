#pragma once
// statusgen: fast generators of realistic watch-ipn-bus lines (docs/PROTOCOL.md), for tests,
// tsbus-sim and benchmarks. Every function produces one compact Go-style ipn.Notify line ending in
// '\n'. The big one, writeInitialStatus, streams the line into a sink in pieces of about 64 KiB and
// never holds the whole line, so a 250k-peer (~250 MB) InitialStatus costs no memory.
//
//   statusgen::InitialStatusOptions o;
//   o.peers = 250'000;
//   statusgen::writeInitialStatus([&](std::string_view piece) { send(piece); }, o);
//   send(statusgen::selfChangeLine(o.self));
//   send(statusgen::peersChangedLine(statusgen::peerAt(7, o.seed)));
//   send(statusgen::peersRemovedLine({statusgen::peerAt(7, o.seed).node_id}));
//
// Output is deterministic for a given seed. Peer i of a generated InitialStatus has NodeID
// peerAt(i, seed).node_id, so a simulator can later remove or patch exactly those peers.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tsk::statusgen {

using Sink = std::function<void(std::string_view)>;

inline constexpr std::string_view kVersionT = "1.99.0-t5e1f0a9c2-g7b3d2e8f1";
inline constexpr std::string_view kVersionH = "1.103.0-t8c2d4e6f1-g3a5b7c9d2";

// The self node, the same identity as fixtures 01/02 by default.
struct Identity {
  std::string stable_id = "nSdcr7Qx2CNTRL";
  int64_t node_id = 4815162342001;
  std::string name = "demo-sidecar-0.tail3f9a2c.ts.net.";  // FQDN with the trailing dot
  std::vector<std::string> addresses = {"100.90.12.34", "fd7a:115c:a1e0::6a01:c22"};  // bare
  std::string host_name = "demo-sidecar-0";
  std::vector<std::string> tags = {"tag:k8s"};
  int64_t user_id = 6412345678901234;
  std::string key_expiry;  // RFC 3339, "" = no expiry (omitted)
  std::string node_key = "nodekey:6f3366a4016e39671091cf449b75c698f673b07d8bacdb15d127afcdf79f6bbd";
};

// A peer, as far as the bus deltas are concerned. peerAt() derives everything from (index, seed).
struct PeerNode {
  int64_t node_id = 0;
  std::string stable_id;
  std::string name;  // FQDN with trailing dot
  std::string host_name;
  std::string node_key;  // "nodekey:" + 64 hex
  std::string ipv4;      // bare
  std::string ipv6;      // bare
  int64_t user_id = 0;
  bool online = false;
};
PeerNode peerAt(uint64_t index, uint64_t seed = 1, double online_fraction = 0.5);

struct InitialStatusOptions {
  uint64_t peers = 0;
  // H-era PeerStatus.NodeID; false = T-era (docs/PROTOCOL.md#released-versions)
  bool with_node_id = true;
  double online_fraction = 0.5;  // share of peers with Online:true (deterministic per index)
  Identity self;
  uint64_t seed = 1;
  std::string version;  // "" = kVersionH with NodeID, kVersionT without
  std::string backend_state = "Running";
  bool with_state = false;  // NotifyInitialState: SessionID + "State":6 instead of null
  std::string tailnet_name = "example.com";
  std::string magic_dns_suffix = "tail3f9a2c.ts.net";
  // Before the daemon's first netmap (first boot, and every restart until control answers):
  // tailscale `ipn/ipnlocal` `updateStatusLocked` / `StatusBuilder.MutateSelfStatus` still fill
  // a Self, an empty one (ID "", NodeID 0, zero node key, DNSName "", TailscaleIPs null,
  // InNetworkMap false, HostName = the OS host name), with no peers and no tailnet.
  bool pre_netmap = false;
  // Tailnet features that decide null vs array (Go writes an empty slice field as null). The
  // defaults are a production tailnet; the recorded testcontrol tailnet
  // (tests/data/real-tailscaled) has none of them.
  bool cert_domains = true;   // CertDomains [self name] (HTTPS certificates enabled), else null
  bool extra_records = true;  // ExtraRecords (DNS extra records, H only), else null
  bool peer_api = true;       // every peer's PeerAPIURL (peers run peerapi), else null
};

// The first message: Version + InitialStatus (ipnstate.Status with `peers` PeerStatus objects of
// ~1 KB each: nodekey map keys, TailscaleIPs, AllowedIPs, PeerAPIURL, nanosecond times, and, for
// some peers, CapMap, sshHostKeys, Location, Tags, PrimaryRoutes). Written in pieces into `sink`.
// Returns the number of bytes written (the line length including '\n').
uint64_t writeInitialStatus(const Sink& sink, const InitialStatusOptions& opts);
// The same as one string (small N only: tests).
std::string initialStatusLine(const InitialStatusOptions& opts);

// Small lines (each ends in '\n'). `version` "" means kVersionT.
std::string selfChangeLine(const Identity& self, std::string_view version = {});
std::string stateLine(int state, std::string_view version = {});
std::string blankLine(std::string_view version = {});
std::string peersChangedLine(const PeerNode& peer, std::string_view version = {});
std::string peersRemovedLine(std::span<const int64_t> node_ids, std::string_view version = {});
std::string peerPatchLine(int64_t node_id, bool online, std::string_view version = {});
std::string errMessageLine(std::string_view text, std::string_view version = {});
std::string healthLine(bool warning = true, std::string_view version = {});
std::string engineLine(std::string_view version = {});
// The lines the agent ignores but a real daemon sends on login/logout: Prefs (`logged_in`:
// WantRunning, a Config with the node's profile; else LoggedOut and Config null), LoginFinished
// ({}), DriveShares ([]).
std::string prefsLine(const Identity& self, bool logged_in, std::string_view version = {});
std::string loginFinishedLine(std::string_view version = {});
std::string driveSharesLine(std::string_view version = {});
// UserProfiles alone, with every profile of the fixed user table (a peer-bit watcher gets one
// when control sends new profiles).
std::string userProfilesLine(std::string_view version = {});

// A full netmap as a watcher with the peer bits gets it (docs/PROTOCOL.md#peer-deltas):
// SelfChange + PeersChanged with every peer (`peers` nodes: peer_at(i), or peerAt(i, seed,
// online_fraction)) + with_profiles, UserProfiles with every profile. With peers = 0 it is also
// what a watcher without the bits gets while a peer-bit watcher is attached
// ("PeersChanged":[]).
struct FullNetmapOptions {
  Identity self;
  uint64_t peers = 0;
  std::function<PeerNode(uint64_t)> peer_at;  // empty: peerAt(i, seed, online_fraction)
  uint64_t seed = 1;
  double online_fraction = 0.5;
  bool with_profiles = false;
  std::string version;  // "" = kVersionT
};
// Streamed into `sink` in ~64 KiB pieces (a 250k-peer line is ~210 MB); returns its length.
uint64_t writeFullNetmap(const Sink& sink, const FullNetmapOptions& opts);
std::string fullNetmapLine(const FullNetmapOptions& opts);

// The terminal message of a lagging watcher at H
// (docs/PROTOCOL.md#framing-and-the-fell-behind-close).
inline constexpr std::string_view kFellBehindMessage =
    "IPN bus consumer fell behind; closing watch";

}  // namespace tsk::statusgen
