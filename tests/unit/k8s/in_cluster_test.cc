#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "k8s/client.h"
#include "tests/support/util/temp_dir.h"
#include "tests/unit/k8s/test_pki.h"

namespace tsk::k8s {
namespace {

namespace fs = std::filesystem;

// Sets or unsets an environment variable for one test and restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class InClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write("token", "sa-token\n");
    write("ca.crt", testPki().ca_pem);
    write("namespace", "tailscale\n");
  }
  void write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary) << content;
  }
  std::string message(const Result<ClusterConfig>& r) {
    return r.ok() ? std::string("(no error)") : r.error().message;
  }

  tsk::testing::TempDir tmp_{"tsk-sa"};
  fs::path dir_ = tmp_.path();
  ScopedEnv host_{"KUBERNETES_SERVICE_HOST", "10.96.0.1"};
  ScopedEnv port_{"KUBERNETES_SERVICE_PORT", "443"};
};

TEST_F(InClusterTest, ReadsServerTokenFileCaAndNamespace) {
  auto cfg = loadInCluster(dir_.string());
  ASSERT_TRUE(cfg.ok()) << message(cfg);
  EXPECT_EQ(cfg->server, "https://10.96.0.1:443");
  EXPECT_EQ(cfg->token_file, (dir_ / "token").string());
  EXPECT_EQ(cfg->token, "");  // read through token_file, so rotation is seen
  EXPECT_EQ(cfg->ca_pem, testPki().ca_pem);
  EXPECT_EQ(cfg->namespace_name, "tailscale");
  EXPECT_FALSE(cfg->insecure_skip_verify);
}

TEST_F(InClusterTest, PutsAnIpv6HostInBrackets) {
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "fd00:10:96::1");
  auto cfg = loadInCluster(dir_.string());
  ASSERT_TRUE(cfg.ok()) << message(cfg);
  EXPECT_EQ(cfg->server, "https://[fd00:10:96::1]:443");
}

TEST_F(InClusterTest, MissingHostSaysNotInAClusterAndSuggestsKubeconfig) {
  ScopedEnv host("KUBERNETES_SERVICE_HOST", nullptr);
  EXPECT_EQ(message(loadInCluster(dir_.string())),
            "not running in a cluster: KUBERNETES_SERVICE_HOST is unset; pass --kubeconfig (or "
            "set KUBECONFIG) to run outside Kubernetes");
}

TEST_F(InClusterTest, MissingOrInvalidPortIsNamed) {
  {
    ScopedEnv port("KUBERNETES_SERVICE_PORT", nullptr);
    EXPECT_NE(message(loadInCluster(dir_.string())).find("KUBERNETES_SERVICE_PORT is unset"),
              std::string::npos);
  }
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "https");
  EXPECT_EQ(message(loadInCluster(dir_.string())),
            "KUBERNETES_SERVICE_PORT=\"https\" is not a port number (1-65535)");
}

TEST_F(InClusterTest, MissingTokenNamesTheFileAndTheFix) {
  fs::remove(dir_ / "token");
  const std::string m = message(loadInCluster(dir_.string()));
  EXPECT_NE(m.find("cannot read " + (dir_ / "token").string() + ": No such file or directory"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("automountServiceAccountToken"), std::string::npos) << m;
}

TEST_F(InClusterTest, EmptyTokenIsAnError) {
  write("token", "\n");
  EXPECT_NE(message(loadInCluster(dir_.string())).find("is empty"), std::string::npos);
}

TEST_F(InClusterTest, ATokenWithCrLfInsideIsRefused) {
  write("token", "sa-token\r\nImpersonate-User: system:admin\n");
  const std::string m = message(loadInCluster(dir_.string()));
  EXPECT_NE(m.find("the bearer token from the service-account token " + (dir_ / "token").string() +
                   " holds a carriage return (CR) at byte 9"),
            std::string::npos)
      << m;
  EXPECT_EQ(m.find("system:admin"), std::string::npos) << m;
}

TEST_F(InClusterTest, MissingCaNamesTheFile) {
  fs::remove(dir_ / "ca.crt");
  const std::string m = message(loadInCluster(dir_.string()));
  EXPECT_NE(m.find("service-account CA: cannot read " + (dir_ / "ca.crt").string()),
            std::string::npos)
      << m;
}

TEST_F(InClusterTest, CaThatIsNotPemIsAnError) {
  write("ca.crt", "not a certificate\n");
  const std::string m = message(loadInCluster(dir_.string()));
  EXPECT_NE(m.find((dir_ / "ca.crt").string() + ": no PEM certificate found"), std::string::npos)
      << m;
}

TEST_F(InClusterTest, OversizedTokenNamesTheFileAndTheLimit) {
  write("token", std::string(64 * 1024 + 1, 'x'));
  const std::string m = message(loadInCluster(dir_.string()));
  EXPECT_NE(m.find("service-account token: cannot read " + (dir_ / "token").string() +
                   ": 65537 bytes, over the 64 KiB limit"),
            std::string::npos)
      << m;
}

TEST_F(InClusterTest, TokenThatIsADeviceIsRefused) {
  fs::remove(dir_ / "token");
  fs::create_symlink("/dev/zero", dir_ / "token");
  const std::string m = message(loadInCluster(dir_.string()));
  EXPECT_NE(m.find((dir_ / "token").string() + ": a character device, not a regular file"),
            std::string::npos)
      << m;
}

TEST_F(InClusterTest, CaThatIsADirectoryOrTooLargeIsRefused) {
  const std::string ca = (dir_ / "ca.crt").string();
  fs::remove(ca);
  fs::create_directory(ca);
  std::string m = message(loadInCluster(dir_.string()));
  EXPECT_NE(m.find("service-account CA: cannot read " + ca +
                   ": a directory, not a regular file (only regular files of at most 1 MiB are "
                   "read)"),
            std::string::npos)
      << m;
  fs::remove(ca);
  write("ca.crt", std::string(1024 * 1024 + 1, 'x'));
  m = message(loadInCluster(dir_.string()));
  EXPECT_NE(m.find(ca + ": 1048577 bytes, over the 1 MiB limit"), std::string::npos) << m;
}

TEST_F(InClusterTest, NamespaceFileThatCannotBeReadIsAnErrorNotASilentDefault) {
  fs::remove(dir_ / "namespace");
  fs::create_symlink("/dev/zero", dir_ / "namespace");
  std::string m = message(loadInCluster(dir_.string()));
  EXPECT_NE(m.find("service-account namespace: cannot read " + (dir_ / "namespace").string() +
                   ": a character device"),
            std::string::npos)
      << m;
  fs::remove(dir_ / "namespace");
  write("namespace", std::string(64 * 1024 + 1, 'x'));
  m = message(loadInCluster(dir_.string()));
  EXPECT_NE(m.find("over the 64 KiB limit"), std::string::npos) << m;
}

TEST_F(InClusterTest, MissingNamespaceFileLeavesTheNamespaceToTheCaller) {
  fs::remove(dir_ / "namespace");
  auto cfg = loadInCluster(dir_.string());
  ASSERT_TRUE(cfg.ok()) << message(cfg);
  EXPECT_EQ(cfg->namespace_name, "");
}

}  // namespace
}  // namespace tsk::k8s
