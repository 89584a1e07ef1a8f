#pragma once
// RawTlsServer: a hand-driven HTTPS server for the hostile answers kube-emu (an httplib server)
// cannot give: a response that trickles a byte at a time, a body of gigabytes, a redirect, an
// HTML page, a Status that echoes the request's Authorization header. It accepts one connection
// at a time on 127.0.0.1, completes the TLS handshake with the given certificate, reads the request
// head and hands the connection to the behaviour; it records every request head it received.
//
//   RawTlsServer server(testPki().server_cert, testPki().server_key,
//                       [](RawTlsServer::Conn& c) { c.write("HTTP/1.1 302 Found\r\n..."); });
//   cfg.server = server.url();
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace tsk::k8s::testing {

class RawTlsServer {
 public:
  class Conn {
   public:
    Conn(SSL* ssl, const std::atomic<bool>& stopping, std::atomic<uint64_t>& sent)
        : ssl_(ssl), stopping_(stopping), sent_(sent) {}
    // False once the client is gone or the server stops.
    bool write(std::string_view data);
    // Sleeps `d` unless the server stops first; false if it stopped.
    bool pause(std::chrono::milliseconds d);
    const std::string& head() const { return head_; }

   private:
    friend class RawTlsServer;
    SSL* ssl_;
    const std::atomic<bool>& stopping_;
    std::atomic<uint64_t>& sent_;
    std::string head_;
  };
  using Behaviour = std::function<void(Conn&)>;

  RawTlsServer(const std::string& cert_file, const std::string& key_file, Behaviour behaviour);
  ~RawTlsServer();
  RawTlsServer(const RawTlsServer&) = delete;
  RawTlsServer& operator=(const RawTlsServer&) = delete;

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> requestHeads() const;
  uint64_t bytesSent() const { return sent_.load(); }  // response bytes written, all connections

 private:
  void run();
  void serve(int fd);

  Behaviour behaviour_;
  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> sent_{0};
  mutable std::mutex mu_;
  std::vector<std::string> heads_;
  std::thread thread_;
};

}  // namespace tsk::k8s::testing
