// Soak under faults: the real ts-kube-agent binary between an in-process tsbus-sim (peer churn,
// SelfChanges, noise, restarts, fell-behind closures, malformed and oversized lines) and an
// in-process kube-emu (random 5xx, 429 with Retry-After, latency, dropped connections, a token
// rotation). Then the faults stop, the simulator publishes one last identity, and:
//   - the Secret and the ConfigMap hold exactly that identity;
//   - the agent never exited, and /readyz (and /livez) answer 200;
//   - writes made <= identity changes x targets + retries (no write storms);
//   - the agent's RSS after warm-up does not grow over the run (a tolerance, not a timing);
//   - SIGTERM at the end: exit 0 (the flush on shutdown);
//   - it never holds a file open for writing and leaves its working directory empty (it runs
//     with a read-only root filesystem in the chart);
// and the figures are printed (and written to soak-report.json in the output dir).
//
// SOAK_SECONDS (default 75) sets the length: warm-up 10 s, faults until 15 s before the end,
// then the convergence wait (it ends when the agent converges, or after a generous deadline)
// and quiet sampling until SOAK_SECONDS. SOAK_SEED picks the fault schedule. SOAK_OUTPUT_DIR keeps
// what the agent printed (agent.log, every /metrics scrape, every probe body) and the secrets it
// must never print (secrets.txt) for the leak scan: Soak.AgentPrintedNoTokenOrSecretValue.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "k8s/base64.h"
#include "tests/integration/soak/agent_harness.h"
#include "tests/support/tls/test_tls.h"
#include "tools/kube-emu/kube_emu.h"
#include "tools/tsbus-sim/bus_sim.h"

namespace tsk::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr const char* kNamespace = "tailscale";
constexpr const char* kSecret = "ts-state";
constexpr const char* kConfigMap = "ts-identity";
constexpr const char* kAgentUser = "system:serviceaccount:tailscale:ts-kube-agent";

std::string envOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string outputDir() {
  return envOr("SOAK_OUTPUT_DIR", (fs::temp_directory_path() / "tsk-soak-output").string());
}

std::string randomHex(std::mt19937_64& rng, int bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rng() & 0xff);
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

// The identity values the agent publishes (device_id, device_fqdn, device_ips).
struct Published {
  std::string id, fqdn, ips;
  bool operator==(const Published&) const = default;
};

Published expectedFor(const statusgen::Identity& id) {
  std::string ips = "[";
  for (size_t i = 0; i < id.addresses.size(); ++i) {
    ips += (i ? ",\"" : "\"") + id.addresses[i] + "\"";
  }
  return {id.stable_id, id.name, ips + "]"};
}

std::map<std::string, std::string> storedData(kube_emu::KubeEmu& emu, kube_emu::Resource r,
                                              const std::string& name) {
  std::map<std::string, std::string> out;
  auto obj = emu.store().find(r, kNamespace, name);
  if (!obj || !obj->contains("data") || !(*obj)["data"].is_object()) return out;
  for (const auto& [k, v] : (*obj)["data"].items()) {
    if (!v.is_string()) continue;
    out[k] = r == kube_emu::Resource::kSecrets
                 ? k8s::base64Decode(v.get<std::string>()).value_or("<bad base64>")
                 : v.get<std::string>();
  }
  return out;
}

bool holds(const std::map<std::string, std::string>& data, const Published& p) {
  auto get = [&](const char* k) {
    auto it = data.find(k);
    return it == data.end() ? std::string("<absent>") : it->second;
  };
  return get("device_id") == p.id && get("device_fqdn") == p.fqdn && get("device_ips") == p.ips;
}

// Sums a counter family (all label sets) from Prometheus text; -1 when absent.
double metricSum(const std::string& text, const std::string& name,
                 const std::string& label_filter = "") {
  double sum = -1;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind(name, 0) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != '{' && next != ' ') continue;
    if (!label_filter.empty() && line.find(label_filter) == std::string::npos) continue;
    const auto space = line.rfind(' ');
    sum = (sum < 0 ? 0 : sum) + std::stod(line.substr(space + 1));
  }
  return sum;
}

struct RssSample {
  double t;  // seconds since start
  uint64_t bytes;
};

double medianMiB(std::vector<uint64_t> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return static_cast<double>(v[v.size() / 2]) / (1024.0 * 1024.0);
}

// Everything the soak drives and measures.
class SoakRun {
 public:
  SoakRun()
      : seconds_(std::stoi(envOr("SOAK_SECONDS", "75"))),
        seed_(std::stoull(envOr("SOAK_SEED", "20251126"))),
        rng_(seed_),
        out_(outputDir()) {
    fs::remove_all(out_);
    fs::create_directories(out_);
    token_a_ = "soak-token-A-" + randomHex(rng_, 16);
    token_b_ = "soak-token-B-" + randomHex(rng_, 16);
    machine_key_ = "privkey:" + randomHex(rng_, 32);
    profile_secret_ =
        "{\"ID\":\"" + randomHex(rng_, 2) + "\",\"Key\":\"" + randomHex(rng_, 24) + "\"}";
  }

  void run() {
    for (void (SoakRun::*step)() :
         {&SoakRun::startSimulators, &SoakRun::startAgent, &SoakRun::warmUp, &SoakRun::faultPhase,
          &SoakRun::converge, &SoakRun::finalChecks}) {
      (this->*step)();
      if (::testing::Test::HasFatalFailure()) break;
    }
    report();
  }

 private:
  // ---- setup ----------------------------------------------------------------------------------

  void startSimulators() {
    kube_emu::KubeEmuOptions eo;
    eo.cert_file = pki_.serverCert();
    eo.key_file = pki_.serverKey();
    eo.tokens = {{token_a_, kAgentUser, {}}};
    kube_emu::RbacRule names;  // the chart's Role: get/update/patch by name, create by kind
    names.users = {kAgentUser};
    names.verbs = {"get", "update", "patch"};
    names.resources = {"secrets", "configmaps"};
    names.resource_names = {kSecret, kConfigMap};
    names.namespaces = {kNamespace};
    kube_emu::RbacRule create = names;
    create.verbs = {"create"};
    create.resource_names = {};
    eo.rbac.rules = {names, create};
    eo.threads = 8;
    emu_ = std::make_unique<kube_emu::KubeEmu>(eo);
    auto st = emu_->start();
    ASSERT_TRUE(st.ok()) << st.error().message;

    // The Secret already holds tailscaled's own state: the agent must keep it and never print it.
    json data = {{"_machinekey", k8s::base64Encode(machine_key_)},
                 {"_current-profile", k8s::base64Encode("profile-soak")},
                 {"profile-soak", k8s::base64Encode(profile_secret_)}};
    json obj = {{"metadata", {{"name", kSecret}}}, {"type", "Opaque"}, {"data", data}};
    auto r = emu_->store().create(kube_emu::Resource::kSecrets, kNamespace, obj.dump(), {"seed"});
    ASSERT_EQ(r.code, 201) << r.body.dump();

    tsbus_sim::SimOptions so;
    so.socket_path = dir_.file("tailscaled.sock");
    so.peers = 200;
    so.seed = seed_;
    sim_ = std::make_unique<tsbus_sim::BusSim>(so);
    st = sim_->start();
    ASSERT_TRUE(st.ok()) << st.error().message;
    identities_ = 1;  // the one it starts with
    last_identity_ = sim_->stats().identity;
    published_.push_back(expectedFor(last_identity_));
  }

  void startAgent() {
    sa_ = std::make_unique<ServiceAccountDir>(pki_.caPem(), kNamespace, token_a_);
    AgentProcess::Options o;
    o.binary = TSK_AGENT_BIN;
    o.args = {"--socket",
              dir_.file("tailscaled.sock"),
              "--secret",
              kSecret,
              "--configmap",
              kConfigMap,
              "--admin-addr",
              "127.0.0.1:0",
              "--service-account-dir",
              sa_->path(),
              "--track-peers",
              "--max-line-bytes",
              "1Mi",
              "--log-level",
              envOr("SOAK_LOG_LEVEL", "debug")};
    o.env = inClusterEnv(emu_->port());
    o.log_path = out_ + "/agent.log";
    o.env["HOME"] = o.env["TMPDIR"] = cwd_.path();
    o.cwd = cwd_.path();  // must stay empty: the agent writes nothing to disk
    agent_ = std::make_unique<AgentProcess>(o);
    admin_ = agent_->adminPort();
    ASSERT_GT(admin_, 0) << "the agent did not start its admin server:\n" << agent_->log();
    start_ = Clock::now();
  }

  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  // Scrapes /metrics and the probes, keeps them for the leak scan, samples RSS, checks liveness.
  void observe(bool sample_rss) {
    if (!agent_->running()) {
      if (!died_at_) died_at_ = elapsed();
      return;
    }
    const auto m = httpGet(admin_, "/metrics");
    if (m.status == 200) {
      last_metrics_ = m.body;
      std::ofstream(out_ + "/metrics.txt", std::ios::app) << m.body;
    }
    std::ofstream probes(out_ + "/probes.txt", std::ios::app);
    for (const char* p : {"/readyz", "/livez", "/healthz"}) {
      const auto r = httpGet(admin_, p);
      probes << p << " " << r.status << " " << r.body << "\n";
      if (std::string_view(p) == "/readyz" && in_fault_phase_) {
        ++readyz_probes_;
        if (r.status == 200) ++readyz_ok_;
      }
    }
    if (sample_rss) rss_.push_back({elapsed(), agent_->rssBytes()});
    for (const auto& f : agent_->filesOpenForWriting()) written_files_.insert(f);
  }

  void warmUp() {
    const bool ready = eventually(
        [&] {
          return holds(storedData(*emu_, kube_emu::Resource::kSecrets, kSecret),
                       expectedFor(last_identity_)) &&
                 httpGet(admin_, "/readyz").status == 200;
        },
        60s, 100ms);
    if (!ready) {
      std::string stored;
      for (const auto& [k, v] : storedData(*emu_, kube_emu::Resource::kSecrets, kSecret)) {
        if (k.rfind("device_", 0) == 0) stored += " " + k + "=" + v;
      }
      FAIL() << "the agent did not publish the first identity (want "
             << expectedFor(last_identity_).fqdn << " " << expectedFor(last_identity_).ips
             << "; stored:" << stored << "; /readyz: " << httpGet(admin_, "/readyz").body << "):\n"
             << agent_->log();
    }
    while (elapsed() < 10) {
      observe(false);
      std::this_thread::sleep_for(500ms);
    }
  }

  // ---- faults -----------------------------------------------------------------------------------

  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  int between(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  void newIdentity() {
    ++identities_;
    const int n = identities_;
    tsbus_sim::IdentityUpdate u;
    u.name = "soak-" + std::to_string(n) + ".tail3f9a2c.ts.net.";
    u.addresses = std::vector<std::string>{
        "100.64." + std::to_string(n / 250 % 250) + "." + std::to_string(n % 250 + 1),
        "fd7a:115c:a1e0::" + randomHex(rng_, 2)};
    if (chance(0.2)) u.stable_id = "nSoak" + randomHex(rng_, 4) + "CNTRL";
    sim_->selfChange(u);
    last_identity_ = sim_->stats().identity;
    published_.push_back(expectedFor(last_identity_));
  }

  // Random API faults; called again every few seconds to vary the 5xx (500, 502, 503, 504).
  void startKubeFaults() {
    static constexpr int kStatuses[] = {500, 502, 503, 504};
    kube_emu::RandomFaults rf;
    rf.enabled = true;
    rf.seed = seed_ + static_cast<uint64_t>(++fault_epochs_);
    rf.p_status = 0.12;
    rf.p_429 = 0.08;
    rf.p_drop = 0.06;
    rf.p_latency = 0.15;
    rf.status = kStatuses[fault_epochs_ % 4];
    rf.retry_after_seconds = 1;
    rf.latency = 150ms;
    emu_->setRandomFaults(rf);
  }

  void rotateToken() {
    // kubelet writes the new token; the old one stops working at once (worst case).
    emu_->addToken({token_b_, kAgentUser, {}});
    sa_->rotateToken(token_b_);
    emu_->revokeToken(token_a_);
    ++token_rotations_;
  }

  void faultPhase() {
    const double end = std::max(20.0, seconds_ - 15.0);
    const double rotate_at = (10 + end) / 2;
    startKubeFaults();
    sim_->setChurnRate(20);
    in_fault_phase_ = true;
    auto next_observe = Clock::now();
    bool rotated = false;
    while (elapsed() < end) {
      if (chance(0.10)) newIdentity();
      if (chance(0.15)) sim_->selfChange();  // the same identity, as every full netmap does
      if (chance(0.10)) sim_->blank(static_cast<uint64_t>(between(1, 20)));
      if (chance(0.05)) sim_->patch(static_cast<uint64_t>(between(1, 10)));
      if (chance(0.02)) sim_->health(chance(0.5));
      if (chance(0.02)) sim_->engine();
      if (chance(0.01)) {
        sim_->malformed();
        ++malformed_;
      }
      if (chance(0.005)) {
        sim_->oversized(2u << 20);
        ++oversized_;
      }
      if (chance(0.01) || state_flaps_ == 0) {
        sim_->setState(5);  // Starting: /readyz must say not ready, then recover
        std::this_thread::sleep_for(std::chrono::milliseconds(between(50, 400)));
        sim_->setState(6);
        ++state_flaps_;
      }
      if (chance(0.012)) {
        tsbus_sim::RestartOptions ro;
        ro.down = std::chrono::milliseconds(between(100, 1000));
        ro.remove_socket = chance(0.5);
        sim_->restart(ro);
      }
      if (chance(0.012)) sim_->flood(200);  // > the 128-slot queue: closed as fell behind
      if (!rotated && elapsed() >= rotate_at) {
        rotateToken();
        rotated = true;
      }
      if (Clock::now() >= next_observe) {
        observe(true);
        next_observe = Clock::now() + 1s;
        if (++observations_ % 5 == 0) startKubeFaults();
      }
      std::this_thread::sleep_for(200ms);
    }
  }

  // ---- the end --------------------------------------------------------------------------------

  void converge() {
    in_fault_phase_ = false;
    emu_->setRandomFaults({});
    emu_->clearFaults();
    sim_->setChurnRate(0);
    ASSERT_TRUE(eventually([&] { return sim_->stats().listening; }, 10s, 50ms))
        << "tsbus-sim did not come back from its last restart";
    newIdentity();  // the last identity the simulator publishes
    const Published want = expectedFor(last_identity_);
    const auto t0 = Clock::now();
    auto next_observe = Clock::now();
    converged_ = eventually(
        [&] {
          if (Clock::now() >= next_observe) {  // one sample a second, as in the fault phase
            observe(true);
            next_observe = Clock::now() + 1s;
          }
          return holds(storedData(*emu_, kube_emu::Resource::kSecrets, kSecret), want) &&
                 holds(storedData(*emu_, kube_emu::Resource::kConfigMaps, kConfigMap), want) &&
                 httpGet(admin_, "/readyz").status == 200;
        },
        120s, 100ms);
    convergence_s_ = std::chrono::duration<double>(Clock::now() - t0).count();
    // Quiet until the run's length (at least a few samples), for the RSS comparison.
    for (int i = 0; i < 5 || elapsed() < seconds_; ++i) {
      std::this_thread::sleep_for(1s);
      observe(true);
    }
  }

  void countRequests() {
    for (const auto& r : emu_->requestLog()) {
      if (!r.fault.empty()) {
        ++faults_[r.fault == "status" ? "status_" + std::to_string(r.status) : r.fault];
      }
      if (r.status == 401) ++unauthorized_;
      const bool ours =
          r.path.find("/secrets/" + std::string(kSecret)) != std::string::npos ||
          r.path.find("/configmaps/" + std::string(kConfigMap)) != std::string::npos ||
          r.path.ends_with("/secrets") || r.path.ends_with("/configmaps");
      if (!ours) continue;
      if (r.method == "PATCH" || r.method == "POST" || r.method == "PUT") {
        ++writes_;
        if (r.status < 200 || r.status >= 300) ++failed_writes_;
      } else if (r.method == "GET") {
        ++reads_;
      }
    }
  }

  void finalChecks() {
    countRequests();
    const Published want = expectedFor(last_identity_);
    EXPECT_FALSE(died_at_.has_value()) << "the agent exited at " << *died_at_ << " s";
    EXPECT_TRUE(agent_->running()) << "the agent is not running:\n" << agent_->log();
    EXPECT_TRUE(converged_) << "not converged after the faults stopped; /readyz: "
                            << httpGet(admin_, "/readyz").body;
    const auto secret = storedData(*emu_, kube_emu::Resource::kSecrets, kSecret);
    const auto cm = storedData(*emu_, kube_emu::Resource::kConfigMaps, kConfigMap);
    EXPECT_TRUE(holds(secret, want)) << "the Secret does not hold the last identity " << want.fqdn;
    EXPECT_TRUE(holds(cm, want)) << "the ConfigMap does not hold the last identity " << want.fqdn;
    EXPECT_EQ(secret.count("_machinekey") ? secret.at("_machinekey") : "", machine_key_)
        << "tailscaled's own keys in the Secret were changed";
    EXPECT_EQ(httpGet(admin_, "/readyz").status, 200);
    EXPECT_EQ(httpGet(admin_, "/livez").status, 200);
    // A clean shutdown at the end (kubelet's SIGTERM): exit 0 within the flush deadline.
    agent_->signal(SIGTERM);
    const auto code = agent_->waitExit(60s);
    EXPECT_EQ(code.value_or(-1), 0) << "the agent did not shut down cleanly on SIGTERM";
    EXPECT_TRUE(written_files_.empty())
        << "the agent held a file open for writing: " << *written_files_.begin();
    EXPECT_TRUE(fs::is_empty(cwd_.path())) << "the agent wrote into its working directory";
    const int targets = 2;
    EXPECT_LE(writes_, targets * identities_ + failed_writes_)
        << "more writes than identity changes x targets + retries: a write storm";

    // RSS after warm-up: the median of the last fifth of the samples against the first fifth.
    ASSERT_GE(rss_.size(), 10u) << "too few RSS samples";
    const size_t fifth = rss_.size() / 5;
    std::vector<uint64_t> first, last;
    for (size_t i = 0; i < fifth; ++i) first.push_back(rss_[i].bytes);
    for (size_t i = rss_.size() - fifth; i < rss_.size(); ++i) last.push_back(rss_[i].bytes);
    rss_first_mib_ = medianMiB(first);
    rss_last_mib_ = medianMiB(last);
    for (const auto& s : rss_) {
      rss_max_mib_ = std::max(rss_max_mib_, static_cast<double>(s.bytes) / (1024.0 * 1024.0));
    }
    const double tolerance = std::max(4.0, rss_first_mib_ * 0.25);
    EXPECT_LE(rss_last_mib_, rss_first_mib_ + tolerance)
        << "the agent's RSS grew from " << rss_first_mib_ << " MiB to " << rss_last_mib_
        << " MiB over the run";

    // What must never be printed: the tokens, tailscaled's private state in the Secret, and
    // the identity values the agent wrote into the Secret.
    std::ofstream secrets(out_ + "/secrets.txt");
    for (const std::string& s : {token_a_, token_b_, machine_key_, profile_secret_}) {
      secrets << s << "\n";
    }
    for (const auto& p : published_) secrets << p.id << "\n" << p.fqdn << "\n" << p.ips << "\n";
  }

  void report() {
    const auto sim = sim_->stats();
    const std::string& m = last_metrics_;
    json fig;
    fig["seconds"] = seconds_;
    fig["seed"] = seed_;
    fig["notifications_processed"] = metricSum(m, "ts_kube_agent_notifies_total");
    fig["bus_lines"] = metricSum(m, "ts_kube_agent_bus_lines_total");
    fig["sim_messages_sent"] = [&] {
      uint64_t n = 0;
      for (const auto& [k, v] : sim.sent) n += v;
      return n;
    }();
    fig["sim_sent_by_kind"] = sim.sent;
    fig["identity_changes"] = identities_;
    json kube = json::object();
    for (const auto& [k, v] : faults_) kube[k] = v;
    kube["token_rotations"] = token_rotations_;
    kube["unauthorized_401"] = unauthorized_;
    fig["faults_kube"] = kube;
    fig["faults_bus"] = {{"restarts", sim.restarts},      {"fell_behind_closures", sim.closed_slow},
                         {"malformed_lines", malformed_}, {"oversized_lines", oversized_},
                         {"state_flaps", state_flaps_},   {"churn_pairs", sim.churn_pairs}};
    fig["restarts_survived"] = {
        {"bus_reconnects", metricSum(m, "ts_kube_agent_bus_reconnects_total")},
        {"bus_restarts", sim.restarts},
        {"fell_behind", sim.closed_slow},
        {"token_rotations", token_rotations_}};
    fig["writes"] = writes_;
    fig["failed_writes_retried"] = failed_writes_;
    fig["reads"] = reads_;
    fig["publishes"] = {
        {"written", metricSum(m, "ts_kube_agent_publishes_total", "result=\"written\"")},
        {"unchanged", metricSum(m, "ts_kube_agent_publishes_total", "result=\"unchanged\"")},
        {"failed", metricSum(m, "ts_kube_agent_publishes_total", "result=\"failed\"")}};
    fig["malformed_counted"] = metricSum(m, "ts_kube_agent_bus_malformed_lines_total");
    fig["oversized_counted"] = metricSum(m, "ts_kube_agent_bus_oversized_lines_total");
    fig["convergence_seconds_after_last_fault"] = convergence_s_;
    fig["readyz_200_share_during_faults"] =
        readyz_probes_ ? static_cast<double>(readyz_ok_) / readyz_probes_ : 0.0;
    fig["rss_mib"] = {{"first_fifth_median", rss_first_mib_},
                      {"last_fifth_median", rss_last_mib_},
                      {"max", rss_max_mib_},
                      {"samples", rss_.size()}};
    std::ofstream(out_ + "/soak-report.json") << fig.dump(2) << "\n";
    std::cout << "soak figures (" << out_ << "/soak-report.json):\n" << fig.dump(2) << "\n";
  }

  const int seconds_;
  const uint64_t seed_;
  std::mt19937_64 rng_;
  const std::string out_;
  TempDir dir_{"tsk-soak"};
  TempDir cwd_{"tsk-soak-cwd"};
  std::set<std::string> written_files_;
  TestPki pki_;
  std::unique_ptr<kube_emu::KubeEmu> emu_;
  std::unique_ptr<tsbus_sim::BusSim> sim_;
  std::unique_ptr<ServiceAccountDir> sa_;
  std::unique_ptr<AgentProcess> agent_;
  int admin_ = -1;
  Clock::time_point start_;
  std::string token_a_, token_b_, machine_key_, profile_secret_;
  statusgen::Identity last_identity_;
  std::vector<Published> published_;
  int identities_ = 0;
  int token_rotations_ = 0;
  int fault_epochs_ = 0;
  int readyz_probes_ = 0, readyz_ok_ = 0;
  bool in_fault_phase_ = false;
  int observations_ = 0;
  int malformed_ = 0, oversized_ = 0, state_flaps_ = 0;
  std::optional<double> died_at_;
  std::string last_metrics_;
  std::vector<RssSample> rss_;
  bool converged_ = false;
  double convergence_s_ = 0;
  std::map<std::string, int> faults_;
  int unauthorized_ = 0;
  int writes_ = 0, failed_writes_ = 0, reads_ = 0;
  double rss_first_mib_ = 0, rss_last_mib_ = 0, rss_max_mib_ = 0;
};

TEST(Soak, AgentSurvivesFaultsAndConvergesToTheLastIdentity) {
  SoakRun run;
  run.run();
}

// Runs after the soak (a ctest fixture): nothing the agent printed on stderr, on /metrics or in
// a probe body contains a bearer token, tailscaled's private Secret values, or the Secret's
// other keys' values.
TEST(Soak, AgentPrintedNoTokenOrSecretValue) {
  const std::string dir = outputDir();
  const std::string secrets_text = readWholeFile(dir + "/secrets.txt");
  ASSERT_FALSE(secrets_text.empty()) << "no soak output in " << dir << ": run the soak first";
  std::vector<std::string> secrets;
  std::istringstream in(secrets_text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) secrets.push_back(line);
  }
  size_t scanned = 0;
  for (const char* file : {"agent.log", "metrics.txt", "probes.txt"}) {
    const std::string text = readWholeFile(dir + "/" + file);
    EXPECT_FALSE(text.empty()) << file << " is empty: the soak captured nothing";
    scanned += text.size();
    for (const auto& s : secrets) {
      const auto pos = text.find(s);
      EXPECT_EQ(pos, std::string::npos)
          << file << " contains a secret value at byte " << pos << ": "
          << text.substr(pos == std::string::npos ? 0 : (pos < 80 ? 0 : pos - 80), 200);
    }
    // Base64 of the Secret values (as the API server holds them) must not leak either.
    for (const auto& s : secrets) {
      EXPECT_EQ(text.find(k8s::base64Encode(s)), std::string::npos)
          << file << " contains a base64-encoded secret value";
    }
  }
  std::cout << "leak scan: " << scanned << " bytes of agent output searched for " << secrets.size()
            << " secret values (and their base64): none found\n";
}

}  // namespace
}  // namespace tsk::testing
