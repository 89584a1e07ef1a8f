// bus-drain: the speed limit of any streaming bus reader. It opens watch-ipn-bus with BusClient
// (the same connect, request and chunked decoding as the agent), then only counts '\n' in the
// decoded bytes and throws them away: no JSON work at all. The benchmark runs it on the same
// bytes as ts-kube-agent and the DOM baseline.
//
//   bus-drain --socket /tmp/ts.sock [--mask 16384] [--progress-file /tmp/p]
//
// Exits 0 when the stream ends (stderr: lines and bytes), 1 on a connect/HTTP error, 2 on usage.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "tools/bench-baselines/progress_counter.h"
#include "watcher/bus_client.h"

namespace {

struct DrainOptions {
  std::string socket_path = "/var/run/tailscale/tailscaled.sock";
  uint64_t mask = 16384;
  std::string progress_file;
};

constexpr const char* kUsage =
    "usage: bus-drain --socket PATH [--mask N] [--progress-file PATH]\n"
    "  Reads tailscaled's watch-ipn-bus stream and discards it, counting lines.\n"
    "  --socket PATH         tailscaled LocalAPI socket (default "
    "/var/run/tailscale/tailscaled.sock)\n"
    "  --mask N              watch mask, decimal (default 16384 = NotifyInitialStatus)\n"
    "  --progress-file PATH  shared file with u64 lines, u64 bytes for the benchmark harness\n";

bool parseArgs(int argc, char** argv, DrainOptions& out) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bus-drain: %s needs a value\n%s", argv[i], kUsage);
      return false;
    }
    const char* value = argv[++i];
    if (arg == "--socket") {
      out.socket_path = value;
    } else if (arg == "--mask") {
      char* end = nullptr;
      out.mask = std::strtoull(value, &end, 10);
      if (end == value || *end != '\0') {
        std::fprintf(stderr, "bus-drain: --mask wants a decimal number, got '%s'\n", value);
        return false;
      }
    } else if (arg == "--progress-file") {
      out.progress_file = value;
    } else {
      std::fprintf(stderr, "bus-drain: unknown flag %s\n%s", argv[i - 1], kUsage);
      return false;
    }
  }
  return true;
}

uint64_t countNewlines(std::string_view bytes) {
  uint64_t n = 0;
  const char* p = bytes.data();
  const char* end = p + bytes.size();
  while (p < end) {
    const void* nl = std::memchr(p, '\n', static_cast<size_t>(end - p));
    if (nl == nullptr) break;
    ++n;
    p = static_cast<const char*>(nl) + 1;
  }
  return n;
}

int run(const DrainOptions& opts) {
  tsk::bench::ProgressCounter progress(opts.progress_file);
  tsk::watcher::BusClient bus({.socket_path = opts.socket_path});
  auto head = bus.openWatch(opts.mask);
  if (!head) {
    std::fprintf(stderr, "bus-drain: %s\n", head.error().message.c_str());
    return 1;
  }
  auto end = bus.readBody([&](std::string_view bytes) {
    progress.add(countNewlines(bytes), bytes.size());
    return true;
  });
  std::fprintf(stderr, "bus-drain: stream ended (%s): %llu lines, %llu bytes\n",
               end.message.empty() ? "complete" : end.message.c_str(),
               static_cast<unsigned long long>(progress.lines()),
               static_cast<unsigned long long>(progress.bytes()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  DrainOptions opts;
  if (!parseArgs(argc, argv, opts)) return 2;
  try {
    return run(opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bus-drain: %s\n", e.what());
    return 1;
  }
}
