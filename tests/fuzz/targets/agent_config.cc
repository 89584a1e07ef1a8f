// Fuzz target: the agent's YAML config file (--config) through agent::parseConfig.
//
// The input is written to a file and parsed as `ts-kube-agent --config <file>` with an empty
// environment. Checks:
//   - it returns (no crash, no uncaught exception);
//   - an error is one non-empty line that says where (the config file, a flag or a variable);
//   - a success holds values within their documented ranges (QPS and burst positive, durations
//     non-negative, the publish wait window ordered, a parseable admin address).
#include <fstream>
#include <string>

#include "agent/config.h"
#include "tests/fuzz/targets/fuzz_targets.h"

namespace tsk::fuzz {

int agentConfigOneInput(const uint8_t* data, size_t size) {
  static const std::string path = scratchDir() + "/agent-config.yaml";
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  const agent::EnvLookup no_env = [](const std::string&) { return std::optional<std::string>(); };
  const auto parsed = agent::parseConfig({"--config", path}, no_env);
  if (!parsed) {
    const std::string& message = parsed.error().message;
    if (message.empty()) fuzzFailure("config error without a message");
    if (message.find("config") == std::string::npos && message.find("--") == std::string::npos) {
      fuzzFailure("config error does not say where the bad value came from: " + message);
    }
    return 0;
  }
  const agent::AgentConfig& c = parsed->config;
  if (!(c.api_qps > 0) || c.api_burst <= 0) fuzzFailure("accepted a non-positive QPS or burst");
  if (c.shutdown_timeout.count() < 0 || c.publish_wait_min.count() < 0 ||
      c.publish_wait_max.count() < 0) {
    fuzzFailure("accepted a negative duration");
  }
  if (c.publish_wait_min > c.publish_wait_max) {
    fuzzFailure("accepted publish-wait-min > publish-wait-max");
  }
  if (!agent::parseHostPort(c.admin_addr)) fuzzFailure("accepted an admin address it cannot use");
  if (c.max_line_bytes == 0) fuzzFailure("accepted max-line-bytes 0");
  return 0;
}

}  // namespace tsk::fuzz
