#pragma once
// BusSim: a simulated tailscaled serving the LocalAPI IPN bus on a unix socket (docs/PROTOCOL.md),
// for the demo, the integration tests and the benchmarks. It speaks HTTP/1.1 the way Go's
// net/http does (Go-ordered headers, chunked bodies, keep-alive after a finished watch) and
// behaves like an H-era daemon by default:
//   - each watcher first gets the initial message its mask asks for (InitialStatus with N
//     generated ~1 KB peers, streamed in pieces by statusgen, never held whole), then its own
//     queue of `queue_capacity` (128) notifications;
//   - a watcher whose queue is full is closed with the fell-behind ErrMessage and the zero-size
//     chunk (T-era mode: the message is silently dropped instead);
//   - peer deltas reach watchers without 4096/32768 as blank lines; with 4096 patches are
//     promoted to PeersChanged nodes, with 32768 they stay PeerChangedPatch
//     (docs/PROTOCOL.md#blank-messages, docs/PROTOCOL.md#peer-deltas);
//   - a SelfChange is sent alone unless SimOptions::full_netmap: then, as tailscaled does while
//     a peer-bit watcher is attached, that watcher gets it with every peer (fullNetmap());
//   - Prefs, LoginFinished, DriveShares and UserProfiles lines on demand (the agent ignores them);
//   - 400 `bad mask`, 400 for NotifyRateLimit with new-style bits (H), 403 for a bad Host or
//     any Referer/Origin, 404 for unknown paths; GET /localapi/v0/status[?peers=false] too.
//
//   BusSim sim({.socket_path = dir + "/tailscaled.sock", .peers = 1000});
//   if (auto st = sim.start(); !st) die(st.error().message);
//   sim.selfChange(newIdentity);   // broadcast; also setState, churn, blank, malformed, ...
//   sim.restart({.down = 200ms, .remove_socket = true});
//   SimStats s = sim.stats();
//   sim.stop();                     // also done by the destructor
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "tools/statusgen/statusgen.h"

namespace tsk::tsbus_sim {

struct SimOptions {
  std::string socket_path = "/tmp/tsbus-sim.sock";
  uint64_t peers = 100;
  statusgen::Identity self;
  std::string version;  // Notify.Version / Tailscale-Version; "" = statusgen's T or H string
  bool h_era = true;    // false: T-era daemon (no PeerStatus.NodeID, no mask validation,
                        // a full queue drops messages silently)
  int state = 6;        // ipn.State (6 = Running)
  std::string tailnet_name = "example.com";
  std::string magic_dns_suffix = "tail3f9a2c.ts.net";
  double online_fraction = 0.5;
  uint64_t seed = 1;
  size_t queue_capacity = 128;     // per watcher, as tailscaled
  size_t chunk_bytes = 64 * 1024;  // chunk size used while streaming the initial message
  std::chrono::milliseconds selfchange_every{0};  // 0 = only on demand
  double churn_rate = 0;                          // add+remove pairs per second
  // Write everything queued for a watcher in one send (the benchmark's feeder, so a batch
  // arrives back-to-back). Off: one send per Notify, as tailscaled flushes each one.
  bool coalesce_writes = false;
  // Start like a daemon that has no netmap yet (first boot, or just restarted): initial messages
  // and /status carry the empty Self (ID "", InNetworkMap false), no peers, no tailnet, until
  // netmapArrived().
  bool pre_netmap = false;
  // Send every SelfChange (selfChange, netmapArrived, --selfchange-every, paced selfchange) as
  // the full netmap tailscaled sends while a watcher with the peer bits is attached: that
  // watcher gets SelfChange + PeersChanged with every peer (+ UserProfiles the first time in its
  // watch), the others SelfChange alone (+ "PeersChanged":[] with no peers), as upstream's
  // `setControlClientStatusLocked` / `notifyForSessionLocked` do (docs/PROTOCOL.md#peer-deltas).
  // Off by default: with N peers each such line is ~0.85 KB x N. fullNetmap() sends one anyway.
  bool full_netmap = false;
  // Tailnet features that decide null vs array in InitialStatus and /status (statusgen's
  // InitialStatusOptions): CertDomains, ExtraRecords, every peer's PeerAPIURL. Off: null, as the
  // testcontrol tailnet of tests/data/real-tailscaled.
  bool cert_domains = true;
  bool extra_records = true;
  bool peer_api = true;
  // One short human-readable line per event (connections, broadcasts, closures). May be empty.
  std::function<void(std::string_view)> on_event;
};

struct RestartOptions {
  std::chrono::milliseconds down{0};  // how long nothing listens
  bool remove_socket = false;         // unlink the socket file while down (else: ECONNREFUSED)
  bool pre_netmap = false;            // come back without a netmap, as tailscaled does, until
                                      // netmapArrived()
};

// Identity changes for selfChange(); unset fields keep their value.
struct IdentityUpdate {
  std::optional<std::string> stable_id = std::nullopt;
  std::optional<int64_t> node_id = std::nullopt;
  std::optional<std::string> name = std::nullopt;
  std::optional<std::vector<std::string>> addresses = std::nullopt;
  std::optional<std::string> host_name = std::nullopt;
  std::optional<std::vector<std::string>> tags = std::nullopt;
  std::optional<int64_t> user_id = std::nullopt;
  std::optional<std::string> key_expiry = std::nullopt;
  std::optional<std::string> node_key = std::nullopt;
};

// Message kinds counted in SimStats::sent (names are the JSON keys of GET /stats).
enum class MsgKind {
  Initial,
  SelfChange,
  State,
  Blank,
  PeersChanged,
  PeersRemoved,
  PeerPatch,
  Health,
  Engine,
  ErrMessage,
  FellBehind,
  Malformed,
  Oversized,
  BadFraming,
  FullNetmap,  // SelfChange + PeersChanged with every peer, to a peer-bit watcher
  UserProfiles,
  Prefs,
  LoginFinished,
  DriveShares,
  kCount,
};
std::string_view msgKindName(MsgKind k);

struct SimStats {
  bool listening = false;
  uint64_t watchers = 0;  // open watch sessions
  uint64_t connections_total = 0;
  uint64_t watch_sessions_total = 0;
  uint64_t closed_slow = 0;  // watchers closed with the fell-behind ErrMessage (H)
  // Of those, the ones whose socket still had room (under half its send buffer charged): the
  // simulator's writer thread lagged (a busy machine), not the consumer's reads.
  uint64_t closed_slow_writer_lag = 0;
  uint64_t dropped_slow = 0;  // messages dropped for a full queue (T-era mode)
  uint64_t restarts = 0;
  uint64_t bytes_sent = 0;
  std::map<std::string, uint64_t> sent;  // messages written to watchers, by kind name
  std::map<int, uint64_t> rejected;      // non-200 replies by status
  statusgen::Identity identity;
  int state = 0;
  uint64_t peers = 0;
  double churn_rate = 0;
  uint64_t churn_pairs = 0;  // pairs broadcast so far
  double pace_rate = 0;      // paced lines per second (0: no pace running)
  uint64_t pace_left = 0;    // paced lines still to send
  uint64_t pace_sent = 0;    // paced lines broadcast so far (all paces)
  bool full_netmap = false;  // every SelfChange goes out as a full netmap
  std::string version;
};

class BusSim {
 public:
  explicit BusSim(SimOptions opts);
  ~BusSim();
  BusSim(const BusSim&) = delete;
  BusSim& operator=(const BusSim&) = delete;

  // Binds the socket (removing a stale file, creating the directory), chmods it 0666, and starts
  // the accept and schedule threads.
  Status start();
  // Closes every watcher and the socket (the file is removed) and joins every thread.
  void stop();

  // Broadcasts, each to every open watcher per its mask.
  // SelfChange with the (new) identity, `count` times (one shared line).
  void selfChange(const IdentityUpdate& update = {}, uint64_t count = 1);
  void setState(int state);  // State, also used by later initials
  // The daemon's first netmap from control: initial messages carry the real Self again and a
  // SelfChange with it is broadcast (tailscale `ipn/ipnlocal` sends one for every full netmap).
  void netmapArrived();
  // Back to the pre-netmap state (what a restart with pre_netmap does) without a broadcast.
  void dropNetmap();
  void churn(uint64_t pairs);  // per pair: PeersRemoved [id] then PeersChanged [node]
  void setChurnRate(double pairs_per_second);
  void setSelfChangeEvery(std::chrono::milliseconds every);
  // Paced lines: `count` lines of `kind` ("blank" or "selfchange": the current identity,
  // unchanged) broadcast one at a time at `lines_per_second`, each on its own (with
  // coalesce_writes off, one send per line, as tailscaled flushes each Notify). Replaces a pace
  // that is still running; rate 0 or count 0 stops it. Time lost on a busy core is skipped,
  // not caught up: stats().pace_sent shows the rate achieved.
  void pace(double lines_per_second, std::string_view kind, uint64_t count);
  void patch(uint64_t count);  // PeerChangedPatch toggling Online of peers
  void blank(uint64_t count);  // blank Notify lines (what a plain watcher gets per delta)
  void flood(uint64_t count);  // `count` blank lines queued at once: overflows queues
  void health(bool warning = true);
  void engine();
  void errMessage(std::string_view text);
  void malformed(std::string_view line = {});  // a line that is not JSON (default) or `line`
  void oversized(uint64_t bytes);              // a valid Notify line of `bytes` bytes
  void badFraming();  // bytes that break the chunked framing (the client must drop the stream)
  void setPeers(uint64_t peers);  // N for later initial messages (no broadcast)
  // A full netmap from control with the current identity and peers: see SimOptions::full_netmap
  // for what each watcher gets. Without a peer-bit watcher it is a plain SelfChange.
  void fullNetmap();
  void setFullNetmap(bool on);  // SimOptions::full_netmap at run time
  // UserProfiles alone (new profiles from control): to peer-bit watchers; a blank line for the
  // others (docs/PROTOCOL.md#blank-messages).
  void userProfiles();
  // Lines every watcher gets and the agent ignores: Prefs (after a login: WantRunning and a
  // Config; else LoggedOut), LoginFinished, DriveShares.
  void prefs(bool logged_in = true);
  void loginFinished();
  void driveShares();
  // Fault injection: answer every new watch request with `status` and `message` (as http.Error
  // does) instead of streaming; status 0 turns it off. E.g. 403 "watch ipn bus access denied".
  void failWatches(int status, std::string message = {});

  // Closes every watcher (no zero chunk: the connection drops like a dying daemon) and the
  // listener; optionally removes the socket; after `down`, listens again. Returns at once.
  void restart(const RestartOptions& opts);

  SimStats stats() const;
  uint64_t watcherCount() const;
  const std::string& socketPath() const;
  const SimOptions& options() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tsk::tsbus_sim
