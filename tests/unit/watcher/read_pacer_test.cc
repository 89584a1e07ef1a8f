// ReadPacer's decisions, driven with made-up read times (no clock, no sockets, no sleeps).
#include "watcher/read_pacer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>

namespace tsk::watcher {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using Duration = ReadPacer::Duration;
using TimePoint = ReadPacer::Clock::time_point;

constexpr TimePoint kStart{std::chrono::seconds(1000)};

// Feeds reads of `lines` lines each, `gap` apart, and returns the last decision.
Duration steady(ReadPacer& p, TimePoint& t, Duration gap, uint64_t lines, int reads) {
  Duration d{0};
  for (int i = 0; i < reads; ++i) {
    t += gap;
    d = p.next(t, lines, false);
  }
  return d;
}

TEST(ReadPacer, TheFirstReadOfAConnectionIsNotDelayed) {
  ReadPacer p;
  EXPECT_EQ(p.next(kStart, 1, false), Duration::zero());
}

TEST(ReadPacer, AQuietStreamIsReadAtOnce) {
  // One line every 5 ms: a 2 ms delay would gather under one line, so none is taken.
  ReadPacer p(ReadPacerOptions{.max_delay = milliseconds(2)});
  TimePoint t = kStart;
  p.next(t, 1, false);
  EXPECT_EQ(steady(p, t, milliseconds(5), 1, 10), Duration::zero());
  // Under the threshold (1 line per 1.4 ms, 1.43 lines per 2 ms): still none.
  EXPECT_EQ(steady(p, t, microseconds(1400), 1, 10), Duration::zero());
}

TEST(ReadPacer, ABusyStreamWaitsUpToTheBound) {
  // One line per ms (1k/s): a delay gathers lines, up to the bound.
  ReadPacer p(ReadPacerOptions{.max_delay = milliseconds(2)});
  TimePoint t = kStart;
  p.next(t, 1, false);
  t += milliseconds(1);
  EXPECT_EQ(p.next(t, 1, false), milliseconds(2));
  // The next read, 2 ms later, brings 2 lines: the rate holds, so does the delay.
  t += milliseconds(2);
  EXPECT_EQ(p.next(t, 2, false), milliseconds(2));
  EXPECT_EQ(p.delay(), milliseconds(2));
}

TEST(ReadPacer, TheDelayIsWhatTheTargetTakesAtTheRateAtMostTheBound) {
  // At 10 ms per line, 2.5 ms per line and 1 ms per line with a 4 ms bound: none, then the
  // time target_lines (3) take at the rate, then the bound.
  ReadPacer p(ReadPacerOptions{.max_delay = milliseconds(4), .target_lines = 3});
  TimePoint t = kStart;
  p.next(t, 1, false);
  const Duration slow = steady(p, t, milliseconds(10), 1, 3);
  const Duration medium = steady(p, t, microseconds(1000), 1, 1);  // 3 lines take 3 ms
  const Duration fast = steady(p, t, microseconds(500), 1, 1);     // 3 lines take 1.5 ms
  const Duration faster = steady(p, t, microseconds(2000), 8, 1);  // 3 lines take 0.75 ms
  EXPECT_EQ(slow, Duration::zero());
  EXPECT_EQ(medium, milliseconds(3));
  EXPECT_EQ(fast, microseconds(1500));
  EXPECT_EQ(faster, microseconds(750));
  // Under the bound a slower busy rate asks for a longer delay, never more than the bound.
  const Duration capped = steady(p, t, microseconds(1900), 1, 1);  // 3 lines take 5.7 ms
  EXPECT_EQ(capped, milliseconds(4));
}

TEST(ReadPacer, AtHighRatesOneDelayGathersAboutTheTargetNotTheBound) {
  // 50k lines/s: 2 ms would gather 100 lines; the delay is cut to what 32 lines take.
  ReadPacer p(ReadPacerOptions{.max_delay = milliseconds(2), .target_lines = 32});
  TimePoint t = kStart;
  p.next(t, 1, false);
  const Duration d = steady(p, t, microseconds(640), 32, 5);  // 32 lines per 640 us
  EXPECT_EQ(d, microseconds(640));
  EXPECT_LT(d, milliseconds(2));
}

TEST(ReadPacer, ResetsToZeroAsSoonAsTheStreamGoesQuiet) {
  ReadPacer p(ReadPacerOptions{.max_delay = milliseconds(2)});
  TimePoint t = kStart;
  p.next(t, 1, false);
  ASSERT_EQ(steady(p, t, microseconds(100), 1, 20), milliseconds(2));
  // The burst ended: after the delay nothing was there, and the next line came 1 s later.
  t += std::chrono::seconds(1);
  EXPECT_EQ(p.next(t, 1, false), Duration::zero());
  EXPECT_EQ(p.delay(), Duration::zero());
  // A delay that gathered only one line did not pay either.
  ASSERT_EQ(steady(p, t, microseconds(100), 1, 3), milliseconds(2));
  t += milliseconds(2) + microseconds(300);
  EXPECT_EQ(p.next(t, 1, false), Duration::zero());
}

TEST(ReadPacer, ABacklogIsReadOnWithoutDelay) {
  // A read that fills the buffer means more is waiting; the read after it drained a backlog,
  // not lines that arrived at a rate: no delay for either.
  ReadPacer p(ReadPacerOptions{.max_delay = milliseconds(2)});
  TimePoint t = kStart;
  p.next(t, 1, false);
  ASSERT_EQ(steady(p, t, microseconds(100), 1, 5), milliseconds(2));
  t += microseconds(10);
  EXPECT_EQ(p.next(t, 300, true), Duration::zero());
  t += microseconds(10);
  EXPECT_EQ(p.next(t, 40, false), Duration::zero());
  // Then arrivals again set it.
  EXPECT_EQ(steady(p, t, microseconds(100), 1, 1), milliseconds(2));
}

TEST(ReadPacer, APartialLineGivesNoRate) {
  ReadPacer p(ReadPacerOptions{.max_delay = milliseconds(2)});
  TimePoint t = kStart;
  p.next(t, 1, false);
  ASSERT_EQ(steady(p, t, microseconds(100), 1, 5), milliseconds(2));
  t += microseconds(10);
  EXPECT_EQ(p.next(t, 0, false), Duration::zero());
}

TEST(ReadPacer, OffMeansNeverDelayed) {
  ReadPacer p(ReadPacerOptions{.max_delay = microseconds(0)});
  TimePoint t = kStart;
  p.next(t, 1, false);
  EXPECT_EQ(steady(p, t, microseconds(10), 1, 100), Duration::zero());
  EXPECT_EQ(steady(p, t, microseconds(100), 50, 100), Duration::zero());
}

TEST(ReadPacer, NoDelayBelowTheTimerSlack) {
  // 32 lines per 20 us (1.6M lines/s): what 32 lines take is under kMinDelay: read at once.
  ReadPacer p(ReadPacerOptions{.max_delay = milliseconds(2), .target_lines = 32});
  TimePoint t = kStart;
  p.next(t, 1, false);
  EXPECT_EQ(steady(p, t, microseconds(20), 32, 3), Duration::zero());
}

TEST(ReadPacer, ResetForgetsTheLastConnection) {
  ReadPacer p(ReadPacerOptions{.max_delay = milliseconds(2)});
  TimePoint t = kStart;
  p.next(t, 1, false);
  ASSERT_EQ(steady(p, t, microseconds(100), 1, 5), milliseconds(2));
  p.reset();
  EXPECT_EQ(p.delay(), Duration::zero());
  t += microseconds(100);
  EXPECT_EQ(p.next(t, 1, false), Duration::zero());  // a first read again
}

// A model of the socket and the reader: lines arrive at `rate` (one write each); the reader
// waits the pacer's delay, then a recv() takes every line that arrived (or blocks for the next
// one), and handling a read takes `work`. Returns the most lines outstanding at any recv()
// (what tailscaled's socket and queue had to hold) and the reads made.
struct ModelResult {
  uint64_t reads = 0;
  uint64_t max_outstanding = 0;
  Duration max_delay_seen{0};
  Duration max_line_wait{0};  // longest a line waited from its arrival to the recv() that took it
};

// Lines at `rate` up to line `jump_at`, then at `rate_after` (a stream that speeds up while
// the reader is in a delay chosen for the slower rate).
ModelResult model(ReadPacerOptions opts, double rate, uint64_t total,
                  Duration work = microseconds(5), uint64_t jump_at = UINT64_MAX,
                  double rate_after = 0) {
  ReadPacer p(opts);
  const auto at = [](double lines, double per_second) {
    return Duration(static_cast<Duration::rep>(lines * 1e9 / per_second));
  };
  const auto arrival = [&](uint64_t i) {
    if (i <= jump_at) return kStart + at(static_cast<double>(i), rate);
    return kStart + at(static_cast<double>(jump_at), rate) +
           at(static_cast<double>(i - jump_at), rate_after);
  };
  ModelResult r;
  uint64_t next_line = 0;  // the first line not read yet
  TimePoint t = kStart;
  Duration delay{0};
  while (next_line < total) {
    t += delay;
    if (arrival(next_line) > t) t = arrival(next_line);  // recv() blocks for the next line
    uint64_t got = 0;
    while (next_line + got < total && arrival(next_line + got) <= t) ++got;
    r.max_outstanding = std::max(r.max_outstanding, got);
    r.max_line_wait = std::max(r.max_line_wait, t - arrival(next_line));
    next_line += got;
    ++r.reads;
    delay = p.next(t, got, false);
    r.max_delay_seen = std::max(r.max_delay_seen, delay);
    t += work;
  }
  return r;
}

TEST(ReadPacerModel, BatchesBusyStreamsAndNeverLetsTheQueueFill) {
  const ReadPacerOptions opts{.max_delay = milliseconds(2), .target_lines = 32};
  // 1k/s: about 2 lines per read instead of 1.
  const ModelResult k1 = model(opts, 1'000, 2'000);
  EXPECT_LE(k1.reads, 1'100u);
  // 10k/s: about 20 lines per read.
  const ModelResult k10 = model(opts, 10'000, 20'000);
  EXPECT_LE(k10.reads, 20'000u / 15);
  // 50k/s and 200k/s: the delay shrinks to what about 32 lines take.
  const ModelResult k50 = model(opts, 50'000, 100'000);
  const ModelResult k200 = model(opts, 200'000, 100'000);
  for (const ModelResult* m : {&k1, &k10, &k50, &k200}) {
    EXPECT_LE(m->max_delay_seen, milliseconds(2));
    EXPECT_LE(m->max_line_wait, milliseconds(2) + microseconds(5));
    // Well inside tailscaled's queue of 128, with no credit for the socket buffer.
    EXPECT_LE(m->max_outstanding, 64u);
  }
  // 1k/s, then 50k/s from line 1,000: a 2 ms delay chosen at 1k/s brings at most 100 lines
  // at 50k/s, fewer than the queue alone holds.
  const ModelResult jump = model(opts, 1'000, 11'000, microseconds(5), 1'000, 50'000);
  EXPECT_LE(jump.max_outstanding, 101u);
  EXPECT_LE(jump.max_delay_seen, milliseconds(2));
  // 100/s: every line is read at once, as without pacing.
  const ModelResult slow = model(opts, 100, 200);
  EXPECT_EQ(slow.reads, 200u);
  EXPECT_EQ(slow.max_delay_seen, Duration::zero());
  EXPECT_EQ(slow.max_line_wait, Duration::zero());
}

}  // namespace
}  // namespace tsk::watcher
