// Replays every committed seed (tests/fuzz/corpus/<target>/) and every crash reproducer
// (tests/fuzz/regressions/<target>/) through the fuzz targets' checks, with the normal compiler
// and under the sanitizer builds: a crash the fuzzer once found stays fixed, and the oracles
// hold on the seeds. A reproducer file's name says what it found.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/fuzz/targets/fuzz_targets.h"

namespace tsk::fuzz {
namespace {

namespace fs = std::filesystem;
using Target = int (*)(const uint8_t*, size_t);

std::vector<fs::path> inputsOf(const std::string& target) {
  std::vector<fs::path> files;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = fs::path(TSK_FUZZ_DIR) / kind / target;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string contents(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

size_t replayAll(const std::string& target, Target fn) {
  const auto files = inputsOf(target);
  for (const auto& f : files) {
    const std::string data = contents(f);
    try {
      fn(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    } catch (const FuzzCheckFailure& e) {
      ADD_FAILURE() << f << ": " << e.what();
    }
  }
  return files.size();
}

TEST(FuzzReplay, NotifyStreamSeedsAndRegressionsPassTheOracle) {
  EXPECT_GT(replayAll("notify_stream", notifyStreamOneInput), 0u);
}

// Invalid Status bodies parseStatusJson once accepted (the fuzzer's findings, kept in
// tests/fuzz/regressions/notify_stream/status-json-*): the replay above runs them through the
// whole notify_stream check; this names the one property they are kept for.
TEST(FuzzReplay, ParseStatusJsonRejectsEveryKnownInvalidBody) {
  size_t checked = 0;
  for (const auto& f : inputsOf("notify_stream")) {
    if (f.filename().string().rfind("status-json-", 0) != 0) continue;
    ++checked;
    try {
      checkStatusJson(contents(f), /*must_reject_invalid=*/true);
    } catch (const FuzzCheckFailure& e) {
      ADD_FAILURE() << f << ": " << e.what();
    }
  }
  EXPECT_GE(checked, 2u);
}

TEST(FuzzReplay, ChunkedBodySeedsAndRegressionsDecodeConsistently) {
  EXPECT_GT(replayAll("chunked_body", chunkedBodyOneInput), 0u);
}

#if defined(TSK_FUZZ_HAVE_K8S)
TEST(FuzzReplay, KubeconfigSeedsAndRegressionsLoadOrFailClearly) {
  EXPECT_GT(replayAll("kubeconfig", kubeconfigOneInput), 0u);
}

TEST(FuzzReplay, K8sResponsesSeedsAndRegressionsAreHandled) {
  EXPECT_GT(replayAll("k8s_responses", k8sResponsesOneInput), 0u);
}
#endif

#if defined(TSK_FUZZ_HAVE_AGENT)
TEST(FuzzReplay, AgentConfigSeedsAndRegressionsParseOrFailClearly) {
  EXPECT_GT(replayAll("agent_config", agentConfigOneInput), 0u);
}
#endif

}  // namespace
}  // namespace tsk::fuzz
