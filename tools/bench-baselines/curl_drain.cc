// curl-drain: the libcurl comparison for the bus client (BusClient vs. Debian's libcurl). It
// opens watch-ipn-bus either with the watcher's hand-written BusClient or with libcurl over the
// same unix socket (CURLOPT_UNIX_SOCKET_PATH; libcurl decodes the chunked framing) and feeds the
// decoded bytes to the same NotifyParser with a handler that only counts lines, so the two runs
// differ only in the HTTP client. The decision and its figures: watcher/bus_client.h.
//
//   curl-drain --client hand|multi|easy --socket /tmp/ts.sock [--mask 16384]
//              [--read-delay-us 2000] [--progress-file /tmp/p] [--stop-test K]
//
//   hand   BusClient (blocking recv, read pacing, stop() = shutdown of the socket)
//   multi  libcurl multi: curl_multi_poll, stop = curl_multi_wakeup; the read pacing is done by
//          holding back the next curl_multi_perform (the delay waits on an eventfd)
//   easy   curl_easy_perform, stop = CURLOPT_XFERINFOFUNCTION returning non-zero; no pacing
//
// --stop-test K: K times, open the watch, let the reader block on the idle stream for 100 ms,
// stop it from another thread and time how long the reader takes to return; prints the median
// and the maximum. Without it: drain until the stream ends, then print lines and bytes.
// Built only when libcurl's development files are found (benchmark only).
#include <curl/curl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tools/bench-baselines/progress_counter.h"
#include "watcher/bus_client.h"
#include "watcher/notify_parser.h"
#include "watcher/read_pacer.h"

namespace {

using Clock = std::chrono::steady_clock;
using tsk::watcher::ReadPacer;

struct Options {
  std::string client = "hand";
  std::string socket_path = "/var/run/tailscale/tailscaled.sock";
  uint64_t mask = 16384;
  long read_delay_us = 2000;
  std::string progress_file;
  int stop_test = 0;
};

constexpr size_t kBufferBytes = 64 * 1024;  // BusClient's read buffer; libcurl's set to match

constexpr const char* kUsage =
    "usage: curl-drain --client hand|multi|easy --socket PATH [--mask N] [--read-delay-us US]\n"
    "                  [--progress-file PATH] [--stop-test K]\n";

struct CountingHandler final : tsk::watcher::NotifyHandler {
  uint64_t lines = 0;
  void onNotify(const tsk::watcher::Notify&) override { ++lines; }
  void onMalformed(std::string_view, size_t) override { ++lines; }
  void onOversized(size_t) override { ++lines; }
};

// Feeds the parser and the progress counter: the work both clients share.
struct Sink {
  CountingHandler handler;
  tsk::watcher::NotifyParser parser{handler};
  tsk::bench::ProgressCounter progress;
  explicit Sink(const std::string& path) : progress(path) {}
  void feed(std::string_view bytes) {
    const uint64_t before = handler.lines;
    parser.feed(bytes);
    progress.add(handler.lines - before, bytes.size());
  }
};

uint64_t countNewlines(std::string_view b) {
  return static_cast<uint64_t>(std::count(b.begin(), b.end(), '\n'));
}

// ---------------------------------------------------------------------------------------------
// libcurl reader

class CurlReader {
 public:
  CurlReader(const Options& o, Sink& sink, bool multi) : opts_(o), sink_(sink), multi_(multi) {
    wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    easy_ = curl_easy_init();
    url_ = "http://local-tailscaled.sock/localapi/v0/watch-ipn-bus?mask=" + std::to_string(o.mask);
    headers_ = curl_slist_append(nullptr, "Tailscale-Cap: 138");
    headers_ = curl_slist_append(headers_, "Accept:");  // BusClient sends no Accept either
    curl_easy_setopt(easy_, CURLOPT_UNIX_SOCKET_PATH, o.socket_path.c_str());
    curl_easy_setopt(easy_, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(easy_, CURLOPT_BUFFERSIZE, static_cast<long>(kBufferBytes));
    curl_easy_setopt(easy_, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &CurlReader::onWrite);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
    if (!multi_) {
      curl_easy_setopt(easy_, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(easy_, CURLOPT_XFERINFOFUNCTION, &CurlReader::onProgress);
      curl_easy_setopt(easy_, CURLOPT_XFERINFODATA, this);
    } else {
      multi_h_ = curl_multi_init();
    }
  }
  ~CurlReader() {
    if (multi_h_ != nullptr) curl_multi_cleanup(multi_h_);
    curl_easy_cleanup(easy_);
    curl_slist_free_all(headers_);
    ::close(wake_);
  }

  // Reads until the stream ends or stop(); returns a description of the end.
  std::string run() { return multi_ ? runMulti() : runEasy(); }

  void stop() {
    stop_.store(true);
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_, &one, sizeof one);
    if (multi_h_ != nullptr) curl_multi_wakeup(multi_h_);
  }

 private:
  static size_t onWrite(char* p, size_t, size_t n, void* self_v) {
    auto* self = static_cast<CurlReader*>(self_v);
    if (!self->checked_status_) {
      long code = 0;
      curl_easy_getinfo(self->easy_, CURLINFO_RESPONSE_CODE, &code);
      self->checked_status_ = true;
      if (code != 200) {
        std::fprintf(stderr, "curl-drain: HTTP %ld\n", code);
        return 0;  // CURLE_WRITE_ERROR
      }
    }
    const std::string_view bytes(p, n);
    self->sink_.feed(bytes);
    self->perform_bytes_ += n;
    self->perform_lines_ += countNewlines(bytes);
    return n;
  }
  static int onProgress(void* self_v, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<CurlReader*>(self_v)->stop_.load() ? 1 : 0;
  }

  std::string runEasy() {
    const CURLcode rc = curl_easy_perform(easy_);
    return curl_easy_strerror(rc);
  }

  std::string runMulti() {
    ReadPacer pacer({.max_delay = std::chrono::microseconds(opts_.read_delay_us)});
    curl_multi_add_handle(multi_h_, easy_);
    std::string why = "stopped";
    while (!stop_.load()) {
      perform_bytes_ = perform_lines_ = 0;
      int running = 0;
      curl_multi_perform(multi_h_, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi_h_, &left)) {
        if (m->msg == CURLMSG_DONE) why = curl_easy_strerror(m->data.result);
      }
      if (running == 0) break;
      if (opts_.read_delay_us > 0 && perform_bytes_ > 0) {
        const auto d = pacer.next(Clock::now(), perform_lines_, perform_bytes_ >= kBufferBytes);
        if (d.count() > 0) {
          const auto s = std::chrono::duration_cast<std::chrono::seconds>(d);
          const timespec ts{static_cast<time_t>(s.count()), static_cast<long>((d - s).count())};
          pollfd p{wake_, POLLIN, 0};
          ::ppoll(&p, 1, &ts, nullptr);
          continue;  // then perform (which reads) without polling first
        }
      }
      curl_multi_poll(multi_h_, nullptr, 0, 60'000, nullptr);
    }
    curl_multi_remove_handle(multi_h_, easy_);
    return why;
  }

  const Options& opts_;
  Sink& sink_;
  bool multi_;
  CURL* easy_ = nullptr;
  CURLM* multi_h_ = nullptr;
  curl_slist* headers_ = nullptr;
  std::string url_;
  int wake_ = -1;
  std::atomic<bool> stop_{false};
  bool checked_status_ = false;
  size_t perform_bytes_ = 0;
  uint64_t perform_lines_ = 0;
};

// ---------------------------------------------------------------------------------------------
// One reader of either kind, for the drain and the stop test.

struct Reader {
  const Options& opts;
  Sink sink;
  std::unique_ptr<tsk::watcher::BusClient> bus;
  std::unique_ptr<CurlReader> curl;

  explicit Reader(const Options& o) : opts(o), sink(o.progress_file) {
    if (o.client == "hand") {
      bus = std::make_unique<tsk::watcher::BusClient>(tsk::watcher::BusClientOptions{
          .socket_path = o.socket_path,
          .max_read_delay = std::chrono::microseconds(o.read_delay_us)});
    } else {
      curl = std::make_unique<CurlReader>(o, sink, o.client == "multi");
    }
  }
  // Returns how the stream ended, or "" with an error printed.
  std::string run() {
    if (curl) return curl->run();
    auto head = bus->openWatch(opts.mask);
    if (!head) {
      std::fprintf(stderr, "curl-drain: %s\n", head.error().message.c_str());
      return "";
    }
    const auto end = bus->readBody([&](std::string_view b) {
      sink.feed(b);
      return true;
    });
    return end.message.empty() ? "complete" : end.message;
  }
  void stop() {
    if (curl) {
      curl->stop();
    } else {
      bus->stop();
    }
  }
};

int stopTest(const Options& o) {
  std::vector<double> ms;
  for (int i = 0; i < o.stop_test; ++i) {
    Reader r(o);
    std::atomic<Clock::time_point> returned{};
    std::thread t([&] {
      r.run();
      returned.store(Clock::now());
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the reader is blocked now
    const auto t0 = Clock::now();
    r.stop();
    t.join();
    ms.push_back(std::chrono::duration<double, std::milli>(returned.load() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("stop latency (%s, %d runs): median %.3f ms, max %.3f ms\n", o.client.c_str(),
              o.stop_test, ms[ms.size() / 2], ms.back());
  return 0;
}

bool parseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "curl-drain: %s needs a value\n%s", argv[i], kUsage);
      return false;
    }
    const char* v = argv[++i];
    if (a == "--client") {
      o.client = v;
      if (o.client != "hand" && o.client != "multi" && o.client != "easy") return false;
    } else if (a == "--socket") {
      o.socket_path = v;
    } else if (a == "--mask") {
      o.mask = std::strtoull(v, nullptr, 10);
    } else if (a == "--read-delay-us") {
      o.read_delay_us = std::clamp(std::strtol(v, nullptr, 10), 0L, 2000L);
    } else if (a == "--progress-file") {
      o.progress_file = v;
    } else if (a == "--stop-test") {
      o.stop_test = std::atoi(v);
    } else {
      std::fprintf(stderr, "curl-drain: unknown flag %s\n%s", argv[i - 1], kUsage);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parseArgs(argc, argv, o)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (o.stop_test > 0) return stopTest(o);
  Reader r(o);
  const std::string why = r.run();
  if (why.empty()) return 1;
  std::fprintf(stderr, "curl-drain: stream ended (%s): %llu lines, %llu bytes\n", why.c_str(),
               static_cast<unsigned long long>(r.sink.progress.lines()),
               static_cast<unsigned long long>(r.sink.progress.bytes()));
  return 0;
}
