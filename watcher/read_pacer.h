#pragma once
// ReadPacer: how long the bus reader waits before its next recv(), so that when the stream is
// busy lines pile up in the socket and a burst costs one wakeup instead of one per line.
//
// Why: tailscaled writes and flushes every Notify on its own (ipn/localapi/localapi.go
// serveWatchIPNBus: json.Encoder.Encode, then Flush, per message), so below saturation every
// line wakes a reader that is blocked in recv(), and a wakeup costs about as much as everything
// else the agent does with a line. Waiting a little before the next recv() when lines come
// close together lets several lines arrive first.
//
// The decision, after each recv() that returned data (BusClient calls next()):
//  - off (max_delay 0), or the read filled the buffer or followed one that did (a backlog:
//    read on at once, and the rate sample is not one of arrivals): no delay;
//  - the arrival rate seen since the previous read (lines / time between the two reads'
//    returns) would bring fewer than kMinLinesPerDelay (1.5) lines in max_delay: the stream is
//    quiet and a delay would cost a wakeup instead of saving one: no delay, and a lone line (a
//    SelfChange) is read the moment it arrives. (1.5, not 2: the time between reads includes
//    the delay itself plus the wakeup and the handling, so a delay of max_delay at exactly
//    2 lines per max_delay measures a little under 2 and would switch itself off);
//  - else: the time the rate needs to bring target_lines, at most max_delay (and none below
//    kMinDelay, less than the timer's own slack).
// So the delay goes from 0 straight to what the rate calls for, and back to 0 as soon as a
// read shows the stream slowed; a line waits at most max_delay more than without pacing.
//
// Why the delay cannot get the watch closed as "fell behind": tailscaled queues at most 128
// messages per watcher (ipn/ipnlocal/local.go WatchNotificationsAs) and, from 1.102, closes a
// watcher whose queue is full (sendToLocked, docs/PROTOCOL.md#framing-and-the-fell-behind-close).
// The queue only fills once the socket is full, i.e. once the writer goroutine blocks. The unix
// stream socket is charged per write, by the kernel's buffer size (truesize), against the
// 212,992-byte default (net.core.wmem_default = rmem_default), so what it holds depends on the
// number of writes more than on their bytes. Measured (Linux 6.18, one line per write, not
// read): 278 blank lines (181 bytes with their chunk framing, ~766 bytes charged each) or 93
// SelfChange lines (1,595 bytes framed, ~2,290 charged). So before the close tailscaled can
// have at least 93 + 128 = 221 SelfChange-sized lines (278 + 128 = 406 blank ones) unread.
//  - One delay is at most max_delay: at r lines/s at most r * max_delay lines arrive during it.
//    With the default 2 ms that is 100 lines at 50k lines/s (the highest paced benchmark rate):
//    fewer than the queue alone holds, with no credit taken for the socket; any rate up to
//    64k/s is covered by the queue alone, up to 110k/s (221 / 2 ms) with the socket.
//  - Above target_lines / max_delay (32 / 2 ms = 16k lines/s) the delay shrinks to gather
//    about target_lines (32, a quarter of the queue) at the rate just measured: the rate would
//    have to jump about 7-fold (221 / 32) within one delay for the queue to fill.
//  - After a delay the reader drains everything in one recv() of up to 64 KiB (and reads on
//    without delay while reads fill the buffer), so delays never stack up.
// Memory: nothing is buffered here: the lines wait in the kernel; the read buffer stays 64 KiB.
#include <chrono>
#include <cstdint>

namespace tsk::watcher {

// The default read delay bound (BusClientOptions::max_read_delay, the agent's
// --bus-read-delay), and the largest one accepted: 2 ms, so that the arithmetic above holds
// for any setting. (5 ms was tried: a stream that jumps from a slow rate to 50k lines/s during
// a 5 ms delay brings 250 lines, and on a loaded machine the reader's wakeup comes late enough
// for the rest: tsbus-sim closed the watch with a full socket.)
inline constexpr std::chrono::microseconds kDefaultMaxReadDelay{2'000};
inline constexpr std::chrono::microseconds kMaxReadDelayLimit{2'000};

struct ReadPacerOptions {
  std::chrono::microseconds max_delay{kDefaultMaxReadDelay};  // longest wait; 0 = off
  uint64_t target_lines = 32;  // what one delay should gather at high rates
};

class ReadPacer {
 public:
  using Clock = std::chrono::steady_clock;
  using Duration = std::chrono::nanoseconds;
  // Below this a delay is not worth a timer (the default timer slack is 50 us).
  static constexpr Duration kMinDelay = std::chrono::microseconds(50);
  // A delay is taken only when the rate would bring at least this many lines in max_delay.
  static constexpr double kMinLinesPerDelay = 1.5;

  explicit ReadPacer(ReadPacerOptions opts = {}) : opts_(opts) {}

  // After a recv() that returned data: `now` is when it returned, `lines` the number of
  // newlines in the body bytes it brought, `filled` whether it filled the read buffer (more may
  // be waiting). Returns the delay to wait before the next recv().
  Duration next(Clock::time_point now, uint64_t lines, bool filled);

  // A new connection: no history, no delay.
  void reset();

  Duration delay() const { return delay_; }
  const ReadPacerOptions& options() const { return opts_; }

 private:
  ReadPacerOptions opts_;
  Clock::time_point last_{};
  bool have_last_ = false;
  bool last_filled_ = false;
  Duration delay_{0};
};

}  // namespace tsk::watcher
