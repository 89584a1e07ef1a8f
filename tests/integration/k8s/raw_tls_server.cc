#include "tests/integration/k8s/raw_tls_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <csignal>
#include <stdexcept>

namespace tsk::k8s::testing {

bool RawTlsServer::Conn::write(std::string_view data) {
  while (!data.empty()) {
    if (stopping_.load()) return false;
    const int n =
        SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 20)));
    if (n <= 0) {
      // SO_SNDTIMEO ends a write the client does not read; try again until it is gone.
      const int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) continue;
      return false;
    }
    sent_ += static_cast<uint64_t>(n);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool RawTlsServer::Conn::pause(std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (stopping_.load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return !stopping_.load();
}

RawTlsServer::RawTlsServer(const std::string& cert_file, const std::string& key_file,
                           Behaviour behaviour)
    : behaviour_(std::move(behaviour)) {
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the test
  ctx_ = SSL_CTX_new(TLS_server_method());
  if (!ctx_ || SSL_CTX_use_certificate_chain_file(ctx_, cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw std::runtime_error("RawTlsServer: cannot load the certificate");
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 8) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("RawTlsServer: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

RawTlsServer::~RawTlsServer() {
  stopping_ = true;
  thread_.join();
  ::close(listen_fd_);
  SSL_CTX_free(ctx_);
}

std::vector<std::string> RawTlsServer::requestHeads() const {
  std::lock_guard lock(mu_);
  return heads_;
}

void RawTlsServer::run() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    serve(fd);
    ::close(fd);
  }
}

void RawTlsServer::serve(int fd) {
  timeval tv{0, 200'000};  // blocking I/O that gives the stop flag a look 5 times a second
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  SSL* ssl = SSL_new(ctx_);
  SSL_set_fd(ssl, fd);
  int accepted = 0;
  for (int tries = 0; tries < 50 && !stopping_.load(); ++tries) {
    accepted = SSL_accept(ssl);
    if (accepted == 1) break;
    const int err = SSL_get_error(ssl, accepted);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) break;
  }
  if (accepted == 1) {
    Conn conn(ssl, stopping_, sent_);
    char buf[4096];
    while (conn.head_.find("\r\n\r\n") == std::string::npos && conn.head_.size() < 65536 &&
           !stopping_.load()) {
      const int n = SSL_read(ssl, buf, sizeof buf);
      if (n > 0) {
        conn.head_.append(buf, static_cast<size_t>(n));
        continue;
      }
      const int err = SSL_get_error(ssl, n);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) break;
    }
    if (conn.head_.find("\r\n\r\n") != std::string::npos) {
      {
        std::lock_guard lock(mu_);
        heads_.push_back(conn.head_);
      }
      behaviour_(conn);
    }
  }
  SSL_free(ssl);
}

}  // namespace tsk::k8s::testing
