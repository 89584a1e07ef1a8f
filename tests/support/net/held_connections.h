#pragma once
// HeldConnections: `count` TCP connections to 127.0.0.1:port held open by a background thread
// until destruction, as a client that wants to tie a server up would: each comes from one of
// 127.0.0.2-127.0.0.33 in turn (as from many pods, so a per-address limit does not help), is
// reopened as soon as the server answers or closes it, and either sends nothing (Idle) or a
// request head one byte every 500 ms (Trickle).
//
//   HeldConnections hogs(port, 64, HeldConnections::Mode::Idle);
//   ... probe the server ...
//   hogs.reopened();  // how many times the server closed one of them
//
// raiseFdLimit() lifts the soft RLIMIT_NOFILE to the hard limit and returns it.
#include <atomic>
#include <cstddef>
#include <thread>

namespace tsk::testing {

class HeldConnections {
 public:
  enum class Mode { Idle, Trickle };
  HeldConnections(int port, size_t count, Mode mode);
  ~HeldConnections();
  HeldConnections(const HeldConnections&) = delete;
  HeldConnections& operator=(const HeldConnections&) = delete;

  size_t reopened() const { return reopened_; }
  // Rounds of the holding loop done: from 1 on, every connection is open and (trickling) has sent
  // its first byte.
  size_t rounds() const { return rounds_; }

 private:
  void run(int port, size_t count, Mode mode);

  std::atomic<bool> stop_{false};
  std::atomic<size_t> reopened_{0};
  std::atomic<size_t> rounds_{0};
  std::thread thread_;
};

size_t raiseFdLimit();

}  // namespace tsk::testing
