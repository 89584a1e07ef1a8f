#pragma once
// EmuFixture: a kube-emu API server over real TLS (certificates generated per test binary into a
// temp dir), a service-account style token file, and helpers to build the client under test.
//
//   TEST_F(EmuFixture, Something) {
//     auto api = makeClient();
//     auto secret = makeSecretStore(*api, kNamespace, "ts-state");
//     ASSERT_TRUE(secret->patch({{"k", "v"}}).ok());
//     EXPECT_EQ(emu().requestLog().back().method, "POST");
//   }
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "k8s/client.h"
#include "tools/kube-emu/kube_emu.h"

namespace tsk::k8s::testing {

inline constexpr const char* kNamespace = "tailscale";
inline constexpr const char* kAgentUser = "system:serviceaccount:tailscale:agent";
inline constexpr const char* kAgentToken = "agent-token-1";
inline constexpr const char* kAdminToken = "admin-token";

// Records what ApiClient reports; thread-safe.
class RecordingObserver final : public RequestObserver {
 public:
  struct Call {
    std::string verb;
    std::string resource;
    int code;
  };
  void onRequest(std::string_view verb, std::string_view resource, int code,
                 std::chrono::duration<double> seconds) override;
  void onRetry(std::string_view verb, std::string_view resource, int code) override;
  std::vector<Call> requests() const;
  std::vector<Call> retries() const;

 private:
  mutable std::mutex mu_;
  std::vector<Call> requests_;
  std::vector<Call> retries_;
};

// The PKI for the whole test binary (test_tls, generated once into a temp dir removed at exit).
struct EmuPki {
  std::string dir;
  std::string ca_cert, ca_pem;          // signs the server and client certificates
  std::string server_cert, server_key;  // SANs 127.0.0.1, ::1, localhost
  std::string client_cert, client_key;  // CN admin, O system:masters, signed by the CA
  std::string client_cert_pem, client_key_pem;
  std::string other_ca_pem;                     // signed nothing here
  std::string wrong_host_cert, wrong_host_key;  // signed by the CA, for wrong.example only
};
const EmuPki& testPki();

kube_emu::RbacPolicy agentPolicy(const std::vector<std::string>& verbs,
                                 const std::vector<std::string>& resource_names = {});

class EmuFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  kube_emu::KubeEmu& emu() { return *emu_; }
  // Starts another emulator with different options (e.g. the wrong-host certificate).
  std::unique_ptr<kube_emu::KubeEmu> startEmu(kube_emu::KubeEmuOptions opts);
  kube_emu::KubeEmuOptions defaultEmuOptions() const;

  // Retries without real waiting: backoffs of 1 ms, no client-side rate limit.
  static ClientOptions fastOptions();
  ClusterConfig clusterConfig() const;  // emu URL, the CA, the token file
  std::unique_ptr<ApiClient> makeClient(ClientOptions opts = fastOptions(), ClusterConfig cfg = {});
  // Replaces the token file atomically (what kubelet does on rotation).
  void writeTokenFile(const std::string& token);
  // Seeds an object directly into the emulator's store.
  void seedSecret(const std::string& name, const std::map<std::string, std::string>& data);
  void seedConfigMap(const std::string& name, const std::map<std::string, std::string>& data);
  // The object's `data` as stored by the emulator, decoded (Secret) or as is (ConfigMap).
  std::map<std::string, std::string> storedSecretData(const std::string& name);
  std::map<std::string, std::string> storedConfigMapData(const std::string& name);
  std::vector<kube_emu::RequestRecord> apiRequests(const std::string& method = "") const;

  std::string temp_dir_;
  std::string token_file_;
  RecordingObserver observer_;
  std::unique_ptr<kube_emu::KubeEmu> emu_;
};

}  // namespace tsk::k8s::testing
