// tsbus-sim: a simulated tailscaled serving the LocalAPI IPN bus on a unix socket, driven by
// flags and a loopback HTTP control server. See --help.
#include <signal.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/tsbus-sim/bus_sim.h"
#include "tools/tsbus-sim/control_server.h"

namespace {

using tsk::tsbus_sim::BusSim;
using tsk::tsbus_sim::ControlServer;
using tsk::tsbus_sim::SimOptions;

constexpr const char* kHelp =
    R"(tsbus-sim: a simulated tailscaled IPN bus (LocalAPI watch-ipn-bus) on a unix socket.

Usage: tsbus-sim [flags]

Bus:
  --socket PATH             unix socket to serve (default /tmp/tsbus-sim/tailscaled.sock);
                            created 0666, a stale file is replaced, the directory is created
  --peers N                 peers in InitialStatus (default 100; ~1 KB each)
  --state N                 ipn.State at start (default 6 = Running)
  --pre-netmap              start without a netmap: the initial message carries the empty
                            Self (ID "", InNetworkMap false) until POST /netmap
  --daemon-version STR      Notify.Version and Tailscale-Version (default: a 1.103 H string,
                            or a 1.99 T string with --t-era)
  --t-era                   behave like tailscaled 1.99 (T): no PeerStatus.NodeID, no mask
                            validation, a full watcher queue drops messages silently
  --queue N                 per-watcher queue (default 128, as tailscaled)
  --chunk-bytes N           chunk size while streaming the initial message (default 65536)
  --online-fraction F       share of generated peers online (default 0.5)
  --seed N                  generator seed (default 1)
  --tailnet NAME            CurrentTailnet.Name (default example.com)
  --magic-dns-suffix S      (default tail3f9a2c.ts.net)
  --full-netmap             send every SelfChange as tailscaled's full netmap: a watcher with
                            the peer bits (4096/32768) gets SelfChange + PeersChanged with every
                            peer (+ UserProfiles the first time in its watch), the others
                            SelfChange alone ("PeersChanged":[] with no peers); ~0.85 KB x N
                            per line, so off by default (POST /full-netmap sends one anyway)
  --testcontrol-tailnet     no HTTPS certs, DNS extra records or peer API in the tailnet:
                            InitialStatus CertDomains, ExtraRecords and every peer's
                            PeerAPIURL are null, as with tailscale's testcontrol
Self identity:
  --self-name FQDN          (default demo-sidecar-0.tail3f9a2c.ts.net.)
  --self-stable-id ID       (default nSdcr7Qx2CNTRL)
  --self-node-id N          (default 4815162342001)
  --self-addresses A,B      bare IPs (default 100.90.12.34,fd7a:115c:a1e0::6a01:c22)
  --self-hostname H         (default demo-sidecar-0)
  --self-tags T1,T2         (default tag:k8s)
  --self-key-expiry RFC3339 (default none)
Schedules:
  --selfchange-every D      send SelfChange every D (e.g. 500ms, 5s, 1m; default off)
  --churn-rate R            peer add+remove pairs per second (default 0)
  --coalesce-writes         write everything queued for a watcher in one send (benchmark
                            feeder); default: one send per Notify, as tailscaled
Control:
  --control-addr HOST:PORT  loopback HTTP control server (default 127.0.0.1:0; "off" = none);
                            prints "control: http://HOST:PORT" on stdout
  --control-port-file PATH  also write the bound port there
  --quiet                   no per-event lines
  --help

Control endpoints (curl -XPOST http://HOST:PORT/...):
  /selfchange [JSON {name,addresses,stable_id,node_id,host_name,tags,user_id,key_expiry}]
  /selfchange-same[?count=C]   /selfchange-every?ms=M   /state?value=N
  /restart?down_ms=D&remove_socket=0|1&pre_netmap=0|1   /netmap?present=0|1
  /churn?rate=R   /churn?count=C   /pace?rate=R&kind=blank|selfchange&count=C
  /patch?count=C   /blank?count=C   /flood?count=C (overflows watcher queues)
  /malformed [body = line]   /oversized?bytes=B   /health?ok=0|1   /engine   /err?text=T
  /peers?count=N   /fail-watch?status=S&text=T (S=0: off)
  /full-netmap (one full netmap now)   /full-netmap-mode?on=0|1 (as --full-netmap)
  /user-profiles (UserProfiles alone: peer-bit watchers; blank for the others)
  /prefs?logged_in=0|1   /login-finished   /drive-shares (lines the agent ignores)
  /bad-framing   GET /stats
)";

[[noreturn]] void usageError(const std::string& msg) {
  std::cerr << "tsbus-sim: " << msg << "\nRun 'tsbus-sim --help' for the flags.\n";
  std::exit(2);
}

template <typename T>
T parseNumber(std::string_view flag, const std::string& v) {
  T out{};
  const auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) {
    usageError(std::string(flag) + " needs a number, got '" + v + "'");
  }
  return out;
}

double parseDouble(std::string_view flag, const std::string& v) {
  try {
    size_t used = 0;
    const double d = std::stod(v, &used);
    if (used == v.size() && d >= 0) return d;
  } catch (const std::exception&) {
  }
  usageError(std::string(flag) + " needs a non-negative number, got '" + v + "'");
}

// "500ms", "5s", "1m", "2.5s"; a bare number means seconds.
std::chrono::milliseconds parseDuration(std::string_view flag, const std::string& v) {
  std::string num = v;
  double scale = 1000;
  const auto ends = [&](std::string_view suffix) {
    return num.size() > suffix.size() &&
           num.compare(num.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends("ms")) {
    num.resize(num.size() - 2);
    scale = 1;
  } else if (ends("s")) {
    num.pop_back();
  } else if (ends("m")) {
    num.pop_back();
    scale = 60'000;
  } else if (ends("h")) {
    num.pop_back();
    scale = 3'600'000;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(parseDouble(flag, num) * scale));
}

std::vector<std::string> splitComma(const std::string& v) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= v.size()) {
    const size_t comma = v.find(',', start);
    const std::string item =
        v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

struct Cli {
  SimOptions sim;
  std::string control_addr = "127.0.0.1:0";
  std::string control_port_file;
  bool quiet = false;
};

Cli parseArgs(int argc, char** argv) {
  Cli cli;
  cli.sim.socket_path = "/tmp/tsbus-sim/tailscaled.sock";
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::optional<std::string> inline_value;
    if (const size_t eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag.resize(eq);
    }
    const auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) usageError(flag + " needs a value");
      return argv[++i];
    };
    auto& o = cli.sim;
    if (flag == "--help" || flag == "-h") {
      std::cout << kHelp;
      std::exit(0);
    } else if (flag == "--socket") {
      o.socket_path = value();
    } else if (flag == "--peers") {
      o.peers = parseNumber<uint64_t>(flag, value());
    } else if (flag == "--state") {
      o.state = parseNumber<int>(flag, value());
    } else if (flag == "--pre-netmap") {
      o.pre_netmap = true;
    } else if (flag == "--daemon-version") {
      o.version = value();
    } else if (flag == "--t-era") {
      o.h_era = false;
    } else if (flag == "--queue") {
      o.queue_capacity = parseNumber<size_t>(flag, value());
    } else if (flag == "--chunk-bytes") {
      o.chunk_bytes = parseNumber<size_t>(flag, value());
    } else if (flag == "--online-fraction") {
      o.online_fraction = parseDouble(flag, value());
    } else if (flag == "--seed") {
      o.seed = parseNumber<uint64_t>(flag, value());
    } else if (flag == "--tailnet") {
      o.tailnet_name = value();
    } else if (flag == "--magic-dns-suffix") {
      o.magic_dns_suffix = value();
    } else if (flag == "--full-netmap") {
      o.full_netmap = true;
    } else if (flag == "--testcontrol-tailnet") {
      o.cert_domains = false;
      o.extra_records = false;
      o.peer_api = false;
    } else if (flag == "--self-name") {
      o.self.name = value();
    } else if (flag == "--self-stable-id") {
      o.self.stable_id = value();
    } else if (flag == "--self-node-id") {
      o.self.node_id = parseNumber<int64_t>(flag, value());
    } else if (flag == "--self-addresses") {
      o.self.addresses = splitComma(value());
    } else if (flag == "--self-hostname") {
      o.self.host_name = value();
    } else if (flag == "--self-tags") {
      o.self.tags = splitComma(value());
    } else if (flag == "--self-key-expiry") {
      o.self.key_expiry = value();
    } else if (flag == "--selfchange-every") {
      o.selfchange_every = parseDuration(flag, value());
    } else if (flag == "--churn-rate") {
      o.churn_rate = parseDouble(flag, value());
    } else if (flag == "--coalesce-writes") {
      o.coalesce_writes = true;
    } else if (flag == "--control-addr") {
      cli.control_addr = value();
    } else if (flag == "--control-port-file") {
      cli.control_port_file = value();
    } else if (flag == "--quiet") {
      cli.quiet = true;
    } else {
      usageError("unknown flag '" + flag + "'");
    }
  }
  return cli;
}

}  // namespace

int main(int argc, char** argv) {
  Cli cli = parseArgs(argc, argv);

  // Block the stop signals before any thread starts, then wait for them in main.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (!cli.quiet) {
    cli.sim.on_event = [](std::string_view line) {
      std::printf("tsbus-sim: %.*s\n", static_cast<int>(line.size()), line.data());
      std::fflush(stdout);
    };
  }
  BusSim sim(cli.sim);
  if (auto st = sim.start(); !st) {
    std::cerr << "tsbus-sim: " << st.error().message << "\n";
    return 1;
  }
  std::printf("socket: %s\n", sim.socketPath().c_str());

  ControlServer control(sim);
  if (cli.control_addr != "off" && !cli.control_addr.empty()) {
    const size_t colon = cli.control_addr.rfind(':');
    if (colon == std::string::npos) usageError("--control-addr needs HOST:PORT");
    const std::string host = cli.control_addr.substr(0, colon);
    const int port = parseNumber<int>("--control-addr", cli.control_addr.substr(colon + 1));
    auto bound = control.start(host, port);
    if (!bound) {
      std::cerr << "tsbus-sim: " << bound.error().message << "\n";
      return 1;
    }
    std::printf("control: http://%s:%d\n", host.c_str(), *bound);
    if (!cli.control_port_file.empty()) {
      const std::string tmp = cli.control_port_file + ".tmp";
      std::ofstream(tmp) << *bound << "\n";
      std::rename(tmp.c_str(), cli.control_port_file.c_str());
    }
  }
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::printf("tsbus-sim: signal %d, shutting down\n", sig);
  std::fflush(stdout);
  control.stop();
  sim.stop();
  return 0;
}
