#include "tools/tsbus-sim/control_server.h"
#include "common/httplib_server.h"

#include <httplib.h>

#include <charconv>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

namespace tsk::tsbus_sim {
namespace {

using json = nlohmann::json;

json identityJson(const statusgen::Identity& id) {
  return {{"stable_id", id.stable_id}, {"node_id", id.node_id},      {"name", id.name},
          {"addresses", id.addresses}, {"host_name", id.host_name},  {"tags", id.tags},
          {"user_id", id.user_id},     {"key_expiry", id.key_expiry}};
}

// A bad request parameter: the reply names it.
struct BadParam {
  std::string message;
};

uint64_t uintParam(const httplib::Request& req, const std::string& name, uint64_t dflt) {
  if (!req.has_param(name)) return dflt;
  const std::string v = req.get_param_value(name);
  uint64_t out = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) {
    throw BadParam{"parameter '" + name + "' must be a non-negative integer, got '" + v + "'"};
  }
  return out;
}

int64_t intParam(const httplib::Request& req, const std::string& name, int64_t dflt) {
  if (!req.has_param(name)) return dflt;
  const std::string v = req.get_param_value(name);
  int64_t out = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) {
    throw BadParam{"parameter '" + name + "' must be an integer, got '" + v + "'"};
  }
  return out;
}

double doubleParam(const httplib::Request& req, const std::string& name) {
  const std::string v = req.get_param_value(name);
  try {
    size_t used = 0;
    const double d = std::stod(v, &used);
    if (used != v.size() || d < 0) throw std::invalid_argument("x");
    return d;
  } catch (const std::exception&) {
    throw BadParam{"parameter '" + name + "' must be a non-negative number, got '" + v + "'"};
  }
}

bool boolParam(const httplib::Request& req, const std::string& name, bool dflt) {
  if (!req.has_param(name)) return dflt;
  const std::string v = req.get_param_value(name);
  if (v == "1" || v == "true" || v == "yes") return true;
  if (v == "0" || v == "false" || v == "no") return false;
  throw BadParam{"parameter '" + name + "' must be 0/1 or true/false, got '" + v + "'"};
}

IdentityUpdate identityUpdateFromJson(const std::string& body) {
  IdentityUpdate u;
  if (body.empty()) return u;
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw BadParam{"the body must be a JSON object like {\"name\":\"x.ts.net.\"}"};
  }
  try {
    for (const auto& [key, value] : j.items()) {
      if (key == "name") {
        u.name = value.get<std::string>();
      } else if (key == "stable_id") {
        u.stable_id = value.get<std::string>();
      } else if (key == "node_id") {
        u.node_id = value.get<int64_t>();
      } else if (key == "addresses") {
        u.addresses = value.get<std::vector<std::string>>();
      } else if (key == "host_name") {
        u.host_name = value.get<std::string>();
      } else if (key == "tags") {
        u.tags = value.get<std::vector<std::string>>();
      } else if (key == "user_id") {
        u.user_id = value.get<int64_t>();
      } else if (key == "key_expiry") {
        u.key_expiry = value.get<std::string>();
      } else if (key == "node_key") {
        u.node_key = value.get<std::string>();
      } else {
        throw BadParam{"unknown identity field '" + key +
                       "' (known: name, addresses, stable_id, node_id, host_name, tags, "
                       "user_id, key_expiry, node_key)"};
      }
    }
  } catch (const json::exception& e) {
    throw BadParam{std::string("identity field has the wrong type: ") + e.what()};
  }
  return u;
}

constexpr const char* kIndex =
    "tsbus-sim control endpoints:\n"
    "  POST /selfchange [JSON {name,addresses,stable_id,node_id,host_name,tags,user_id,"
    "key_expiry,node_key}]\n"
    "  POST /selfchange-same[?count=C] | /selfchange-every?ms=M\n"
    "  POST /state?value=N\n"
    "  POST /restart?down_ms=D&remove_socket=0|1&pre_netmap=0|1\n"
    "  POST /netmap?present=0|1 (1: the first netmap arrives; 0: back to the empty Self)\n"
    "  POST /churn?rate=R | /churn?count=C\n"
    "  POST /pace?rate=R&kind=blank|selfchange&count=C (one line per write at R lines/s)\n"
    "  POST /patch?count=C | /blank?count=C | /flood?count=C\n"
    "  POST /malformed [body = the line] | /oversized?bytes=B\n"
    "  POST /health?ok=0|1 | /engine | /err?text=T | /peers?count=N\n"
    "  POST /fail-watch?status=S&text=T (S=0: off) | /bad-framing\n"
    "  POST /full-netmap (SelfChange + every peer for peer-bit watchers) | "
    "/full-netmap-mode?on=0|1\n"
    "  POST /user-profiles | /prefs?logged_in=0|1 | /login-finished | /drive-shares\n"
    "  GET  /stats\n";

}  // namespace

std::string statsJson(const SimStats& s) {
  json rejected = json::object();
  for (const auto& [status, n] : s.rejected) rejected[std::to_string(status)] = n;
  const json j = {{"listening", s.listening},
                  {"watchers", s.watchers},
                  {"connections_total", s.connections_total},
                  {"watch_sessions_total", s.watch_sessions_total},
                  {"closed_slow", s.closed_slow},
                  {"closed_slow_writer_lag", s.closed_slow_writer_lag},
                  {"dropped_slow", s.dropped_slow},
                  {"restarts", s.restarts},
                  {"bytes_sent", s.bytes_sent},
                  {"sent", s.sent},
                  {"rejected", rejected},
                  {"identity", identityJson(s.identity)},
                  {"state", s.state},
                  {"peers", s.peers},
                  {"churn_rate", s.churn_rate},
                  {"churn_pairs", s.churn_pairs},
                  {"pace_rate", s.pace_rate},
                  {"pace_left", s.pace_left},
                  {"pace_sent", s.pace_sent},
                  {"full_netmap", s.full_netmap},
                  {"version", s.version}};
  return j.dump();
}

struct ControlServer::Impl {
  BusSim& sim;
  httplib::Server server;
  std::thread thread;
  std::map<std::string, httplib::Server::Handler> posts;

  explicit Impl(BusSim& s) : sim(s) {
    routes();
    // cpp-httplib 0.11 reads a POST without Content-Length until the connection closes, and
    // `curl -XPOST url` sends none: dispatch such bodiless POSTs before it tries to read.
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.method != "POST" || req.has_header("Content-Length") ||
          req.has_header("Transfer-Encoding")) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      const auto it = posts.find(req.path);
      if (it == posts.end()) {
        res.status = 404;
        res.set_content(std::string("unknown endpoint\n") + kIndex, "text/plain");
      } else {
        it->second(req, res);
      }
      return httplib::Server::HandlerResponse::Handled;
    });
  }

  void post(const std::string& path, std::function<void(const httplib::Request&)> fn) {
    auto handler = action(std::move(fn));
    posts[path] = handler;
    server.Post(path, handler);
  }

  // Wraps a handler: BadParam becomes 400 with {"error": ...}; success replies with the stats.
  httplib::Server::Handler action(std::function<void(const httplib::Request&)> fn) {
    return [this, fn = std::move(fn)](const httplib::Request& req, httplib::Response& res) {
      try {
        fn(req);
        res.set_content(statsJson(sim.stats()) + "\n", "application/json");
      } catch (const BadParam& e) {
        res.status = 400;
        res.set_content(json{{"error", e.message}}.dump() + "\n", "application/json");
      }
    };
  }

  void routes() {
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kIndex, "text/plain");
    });
    server.Get("/stats", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(statsJson(sim.stats()) + "\n", "application/json");
    });
    post("/selfchange",
         ([this](const httplib::Request& r) { sim.selfChange(identityUpdateFromJson(r.body)); }));
    post("/selfchange-same",
         ([this](const httplib::Request& r) { sim.selfChange({}, uintParam(r, "count", 1)); }));
    post("/selfchange-every", ([this](const httplib::Request& r) {
           sim.setSelfChangeEvery(std::chrono::milliseconds(uintParam(r, "ms", 0)));
         }));
    post("/state", ([this](const httplib::Request& r) {
           if (!r.has_param("value")) throw BadParam{"missing parameter 'value'"};
           sim.setState(static_cast<int>(intParam(r, "value", 6)));
         }));
    post("/restart", ([this](const httplib::Request& r) {
           sim.restart({std::chrono::milliseconds(uintParam(r, "down_ms", 0)),
                        boolParam(r, "remove_socket", false), boolParam(r, "pre_netmap", false)});
         }));
    post("/netmap", ([this](const httplib::Request& r) {
           if (boolParam(r, "present", true)) {
             sim.netmapArrived();
           } else {
             sim.dropNetmap();
           }
         }));
    post("/churn", ([this](const httplib::Request& r) {
           if (!r.has_param("rate") && !r.has_param("count")) {
             throw BadParam{"give 'rate' (pairs per second) and/or 'count' (pairs now)"};
           }
           if (r.has_param("rate")) sim.setChurnRate(doubleParam(r, "rate"));
           if (r.has_param("count")) sim.churn(uintParam(r, "count", 0));
         }));
    post("/pace", ([this](const httplib::Request& r) {
           if (!r.has_param("rate")) throw BadParam{"missing parameter 'rate' (lines per second)"};
           const std::string kind = r.has_param("kind") ? r.get_param_value("kind") : "blank";
           if (kind != "blank" && kind != "selfchange") {
             throw BadParam{"kind must be 'blank' or 'selfchange', not '" + kind + "'"};
           }
           sim.pace(doubleParam(r, "rate"), kind, uintParam(r, "count", 1000));
         }));
    post("/patch", ([this](const httplib::Request& r) { sim.patch(uintParam(r, "count", 1)); }));
    post("/blank", ([this](const httplib::Request& r) { sim.blank(uintParam(r, "count", 1)); }));
    post("/flood", ([this](const httplib::Request& r) {
           sim.flood(uintParam(r, "count", sim.options().queue_capacity + 1));
         }));
    post("/malformed", ([this](const httplib::Request& r) { sim.malformed(r.body); }));
    post("/oversized", ([this](const httplib::Request& r) {
           if (!r.has_param("bytes")) throw BadParam{"missing parameter 'bytes'"};
           sim.oversized(uintParam(r, "bytes", 0));
         }));
    post("/health",
         ([this](const httplib::Request& r) { sim.health(!boolParam(r, "ok", false)); }));
    post("/engine", ([this](const httplib::Request&) { sim.engine(); }));
    post("/err", ([this](const httplib::Request& r) {
           sim.errMessage(r.has_param("text") ? r.get_param_value("text")
                                              : std::string("simulated control error"));
         }));
    post("/bad-framing", ([this](const httplib::Request&) { sim.badFraming(); }));
    post("/fail-watch", ([this](const httplib::Request& r) {
           sim.failWatches(static_cast<int>(uintParam(r, "status", 0)),
                           r.has_param("text") ? r.get_param_value("text") : std::string());
         }));
    post("/full-netmap", ([this](const httplib::Request&) { sim.fullNetmap(); }));
    post("/full-netmap-mode", ([this](const httplib::Request& r) {
           if (!r.has_param("on")) throw BadParam{"missing parameter 'on' (0 or 1)"};
           sim.setFullNetmap(boolParam(r, "on", false));
         }));
    post("/user-profiles", ([this](const httplib::Request&) { sim.userProfiles(); }));
    post("/prefs",
         ([this](const httplib::Request& r) { sim.prefs(boolParam(r, "logged_in", true)); }));
    post("/login-finished", ([this](const httplib::Request&) { sim.loginFinished(); }));
    post("/drive-shares", ([this](const httplib::Request&) { sim.driveShares(); }));
    post("/peers", ([this](const httplib::Request& r) {
           if (!r.has_param("count")) throw BadParam{"missing parameter 'count'"};
           sim.setPeers(uintParam(r, "count", 0));
         }));
  }
};

ControlServer::ControlServer(BusSim& sim) : impl_(std::make_unique<Impl>(sim)) {}

ControlServer::~ControlServer() {
  stop();
}

Result<int> ControlServer::start(const std::string& host, int port) {
  auto& d = *impl_;
  int bound = port;
  if (port == 0) {
    bound = d.server.bind_to_any_port(host);
    if (bound < 0) return Error{"cannot bind the control server on " + host + ":0"};
  } else if (!d.server.bind_to_port(host, port)) {
    return Error{"cannot bind the control server on " + host + ":" + std::to_string(port) +
                 " (in use?)"};
  }
  d.thread = serveInBackground(d.server);
  return bound;
}

void ControlServer::stop() {
  auto& d = *impl_;
  if (!d.thread.joinable()) return;
  d.server.stop();
  d.thread.join();
}

}  // namespace tsk::tsbus_sim
