#pragma once
// The fuzz targets' entry points. Each has the libFuzzer signature and is built twice:
//  - with clang and -DTSK_FUZZ=ON as its own libFuzzer executable (fuzz_<name>, fuzz_main.cc
//    turns LLVMFuzzerTestOneInput into a call of the function named by TSK_FUZZ_ENTRY);
//  - into fuzz_replay_tests (any compiler), a GoogleTest that replays every committed seed in
//    tests/fuzz/corpus/<name>/ and every crash reproducer in tests/fuzz/regressions/<name>/.
// A target that finds a wrong answer (not only a crash) calls fuzzFailure(), which prints what
// was wrong and aborts, so libFuzzer saves the input as a crash artifact.
//
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
//     return tsk::fuzz::notifyStreamOneInput(d, n);
//   }
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tsk::fuzz {

// The Notify stream: the input is a watch-ipn-bus body (JSON lines). Parsed whole, split at
// random points, and wrapped in HTTP chunked framing through the BusClient's BodyDecoder; the
// three must agree, and every line that is valid JSON must match nlohmann::json::parse.
int notifyStreamOneInput(const uint8_t* data, size_t size);
// watcher::parseStatusJson(body) against nlohmann: a body nlohmann reads as an object must give
// the same InitialStatus; with must_reject_invalid, a body it rejects must be rejected too.
void checkStatusJson(std::string_view body, bool must_reject_invalid);
// Raw chunked HTTP framing (well-formed or not) through BodyDecoder, whole and split; decoded
// bytes go on to a NotifyParser. Checks split invariance and the decoder's own accounting.
int chunkedBodyOneInput(const uint8_t* data, size_t size);
// A kubeconfig file (written to a private temp dir holding a CA file and a token file).
int kubeconfigOneInput(const uint8_t* data, size_t size);
// The agent's YAML config file (--config), through agent::parseConfig.
int agentConfigOneInput(const uint8_t* data, size_t size);
// API-server responses: the k8s error texts for any status and body, and Secret/ConfigMap GET
// and PATCH answered by an in-process HTTPS server with fuzzed status, Retry-After and body.
int k8sResponsesOneInput(const uint8_t* data, size_t size);

// Prints "fuzz check failed: <what>" to stderr, then aborts. In the replay test (built with
// TSK_FUZZ_REPLAY) it throws FuzzCheckFailure instead, so the test names the failing file.
[[noreturn]] void fuzzFailure(std::string_view what);
struct FuzzCheckFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A small deterministic PRNG seeded from the input, for split points and chunk sizes.
class SplitRandom {
 public:
  explicit SplitRandom(std::string_view seed_bytes);
  uint64_t next();
  size_t below(size_t bound);  // 0 when bound == 0

 private:
  uint64_t state_;
};

// Whether `s` is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF), as nlohmann requires.
bool isValidUtf8(std::string_view s);

// A private directory under $TMPDIR, created once per process and removed at exit.
const std::string& scratchDir();

}  // namespace tsk::fuzz
