#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "k8s/base64.h"
#include "k8s/client.h"
#include "tests/support/util/temp_dir.h"
#include "tests/unit/k8s/test_pki.h"

namespace tsk::k8s {
namespace {

namespace fs = std::filesystem;

class KubeconfigTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = (dir_ / "config").string(); }

  void writeFile(const std::string& name, const std::string& content) {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << content;
  }
  void writeConfig(const std::string& yaml) { writeFile("config", yaml); }

  // The message of a load that must fail.
  std::string failure(const std::string& context = "", bool allow_insecure = false) {
    auto r = loadKubeconfig(path_, context, allow_insecure);
    if (r.ok()) return "(loaded without error)";
    return r.error().message;
  }
  ClusterConfig load(const std::string& context = "", bool allow_insecure = false) {
    auto r = loadKubeconfig(path_, context, allow_insecure);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? r.value() : ClusterConfig{};
  }
  std::string prefix() const { return "kubeconfig " + path_ + ": "; }

  static std::string caData() { return base64Encode(testPki().ca_pem); }

  tsk::testing::TempDir tmp_{"tsk-kubeconfig"};
  fs::path dir_ = tmp_.path();
  std::string path_;
};

// A typical kubeconfig: two contexts, token user, CA data. Line numbers matter in the tests.
std::string typicalConfig() {
  return "apiVersion: v1\n"                       // 1
         "kind: Config\n"                         // 2
         "current-context: dev\n"                 // 3
         "clusters:\n"                            // 4
         "- name: c1\n"                           // 5
         "  cluster:\n"                           // 6
         "    server: https://127.0.0.1:6443/\n"  // 7
         "    certificate-authority-data: " +
         base64Encode(testPki().ca_pem) +
         "\n"                                // 8
         "- name: c2\n"                      // 9
         "  cluster:\n"                      // 10
         "    server: https://[::1]:7443\n"  // 11
         "    certificate-authority-data: " +
         base64Encode(testPki().ca_pem) +
         "\n"                                             // 12
         "    tls-server-name: kubernetes.default.svc\n"  // 13
         "users:\n"                                       // 14
         "- name: u1\n"                                   // 15
         "  user:\n"                                      // 16
         "    token: tok-1\n"                             // 17
         "contexts:\n"                                    // 18
         "- name: dev\n"                                  // 19
         "  context:\n"                                   // 20
         "    cluster: c1\n"                              // 21
         "    user: u1\n"                                 // 22
         "    namespace: tailscale\n"                     // 23
         "- name: other\n"                                // 24
         "  context:\n"                                   // 25
         "    cluster: c2\n"                              // 26
         "    user: u1\n";                                // 27
}

TEST_F(KubeconfigTest, LoadsTheCurrentContext) {
  writeConfig(typicalConfig());
  const ClusterConfig cfg = load();
  EXPECT_EQ(cfg.server, "https://127.0.0.1:6443");
  EXPECT_EQ(cfg.ca_pem, testPki().ca_pem);
  EXPECT_EQ(cfg.token, "tok-1");
  EXPECT_EQ(cfg.token_file, "");
  EXPECT_EQ(cfg.namespace_name, "tailscale");
  EXPECT_EQ(cfg.tls_server_name, "");
  EXPECT_FALSE(cfg.insecure_skip_verify);
}

TEST_F(KubeconfigTest, LoadsANamedContextWithTlsServerNameAndDefaultNamespace) {
  writeConfig(typicalConfig());
  const ClusterConfig cfg = load("other");
  EXPECT_EQ(cfg.server, "https://[::1]:7443");
  EXPECT_EQ(cfg.tls_server_name, "kubernetes.default.svc");
  EXPECT_EQ(cfg.namespace_name, "default");
}

TEST_F(KubeconfigTest, ResolvesRelativeFilesAgainstTheKubeconfigDirectory) {
  writeFile("pki/ca.crt", testPki().ca_pem);
  writeFile("pki/client.crt", testPki().client_cert_pem);
  writeFile("pki/client.key", testPki().client_key_pem);
  writeFile("pki/token", "file-token\n");
  writeConfig(
      "current-context: x\n"
      "clusters:\n"
      "- name: c\n"
      "  cluster:\n"
      "    server: https://kube.example:443\n"
      "    certificate-authority: pki/ca.crt\n"
      "users:\n"
      "- name: u\n"
      "  user:\n"
      "    tokenFile: pki/token\n"
      "    client-certificate: pki/client.crt\n"
      "    client-key: pki/client.key\n"
      "contexts:\n"
      "- name: x\n"
      "  context: {cluster: c, user: u, namespace: ns1}\n");
  const ClusterConfig cfg = load();
  EXPECT_EQ(cfg.ca_pem, testPki().ca_pem);
  EXPECT_EQ(cfg.token_file, (dir_ / "pki/token").string());
  EXPECT_EQ(cfg.client_cert_pem, testPki().client_cert_pem);
  EXPECT_EQ(cfg.client_key_pem, testPki().client_key_pem);
  EXPECT_EQ(cfg.namespace_name, "ns1");
}

TEST_F(KubeconfigTest, LoadsClientCertificateDataAndAbsolutePaths) {
  writeFile("abs-ca.crt", testPki().ca_pem);
  writeConfig(
      "current-context: x\n"
      "clusters:\n"
      "- name: c\n"
      "  cluster:\n"
      "    server: https://kube.example\n"
      "    certificate-authority: " +
      (dir_ / "abs-ca.crt").string() +
      "\n"
      "users:\n"
      "- name: u\n"
      "  user:\n"
      "    client-certificate-data: " +
      base64Encode(testPki().client_cert_pem) +
      "\n"
      "    client-key-data: " +
      base64Encode(testPki().client_key_pem) +
      "\n"
      "contexts:\n"
      "- name: x\n"
      "  context: {cluster: c, user: u}\n");
  const ClusterConfig cfg = load();
  EXPECT_EQ(cfg.ca_pem, testPki().ca_pem);
  EXPECT_EQ(cfg.client_cert_pem, testPki().client_cert_pem);
  EXPECT_EQ(cfg.client_key_pem, testPki().client_key_pem);
  EXPECT_EQ(cfg.token, "");
}

TEST_F(KubeconfigTest, AContextWithoutAUserIsAnonymous) {
  writeConfig(
      "current-context: x\n"
      "clusters:\n"
      "- name: c\n"
      "  cluster: {server: 'https://h', certificate-authority-data: " +
      caData() +
      "}\n"
      "contexts:\n"
      "- name: x\n"
      "  context: {cluster: c}\n");
  const ClusterConfig cfg = load();
  EXPECT_EQ(cfg.token, "");
  EXPECT_EQ(cfg.client_cert_pem, "");
}

// --- errors ---

TEST_F(KubeconfigTest, MissingFileSaysWhatToDo) {
  const std::string m = failure();
  EXPECT_NE(m.find("kubeconfig: cannot read " + path_ + ": No such file or directory"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("--kubeconfig"), std::string::npos);
}

TEST_F(KubeconfigTest, DevZeroIsRefusedWithoutReadingIt) {
  auto r = loadKubeconfig("/dev/zero");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "kubeconfig: cannot read /dev/zero: a character device, not a regular file (only "
            "regular files of at most 1 MiB are read); pass --kubeconfig with a readable file, "
            "or unset KUBECONFIG to run in-cluster");
}

TEST_F(KubeconfigTest, DirectoryIsRefused) {
  auto r = loadKubeconfig(dir_.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("kubeconfig: cannot read " + dir_.string() +
                                   ": a directory, not a regular file"),
            std::string::npos)
      << r.error().message;
}

TEST_F(KubeconfigTest, OversizedFileIsRefusedNamingTheLimit) {
  writeConfig(std::string(1024 * 1024 + 1, '#'));
  EXPECT_NE(
      failure().find("kubeconfig: cannot read " + path_ + ": 1048577 bytes, over the 1 MiB limit"),
      std::string::npos)
      << failure();
}

TEST_F(KubeconfigTest, InvalidYamlNamesTheLine) {
  writeConfig("current-context: x\nclusters:\n  - name: [unclosed\n");
  const std::string m = failure();
  EXPECT_NE(m.find(prefix() + "not valid YAML (line "), std::string::npos) << m;
}

TEST_F(KubeconfigTest, EmptyFileIsNamed) {
  writeConfig("");
  EXPECT_EQ(failure(), "kubeconfig " + path_ + " is empty");
}

TEST_F(KubeconfigTest, MissingCurrentContextSaysHowToPickOne) {
  writeConfig("clusters: []\n");
  const std::string m = failure();
  EXPECT_NE(m.find(prefix() + "current-context (line 1): not set"), std::string::npos) << m;
  // The agent's flag is --context (agent/config.cc); there is no --kube-context.
  EXPECT_NE(m.find("name a context (--context NAME, or TS_KUBE_CONTEXT)"), std::string::npos) << m;
  EXPECT_EQ(m.find("--kube-context"), std::string::npos) << m;
}

TEST_F(KubeconfigTest, AListSkipsEmptyEntriesAndMissingFilesAsKubectlDoes) {
  writeConfig(typicalConfig());
  for (const std::string& list :
       {":" + path_, path_ + ":", "::" + path_ + "::", (dir_ / "missing").string() + ":" + path_}) {
    auto r = loadKubeconfig(list);
    ASSERT_TRUE(r.ok()) << list << ": " << r.error().message;
    EXPECT_EQ(r->server, "https://127.0.0.1:6443");
    EXPECT_EQ(r->source, "kubeconfig " + path_) << list;
  }
}

TEST_F(KubeconfigTest, AListWithNoFileSaysSo) {
  auto r = loadKubeconfig("::");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "kubeconfig: \"::\" names no file (only empty ':'-separated entries); set KUBECONFIG "
            "or --kubeconfig to a kubeconfig file, or unset it to run in-cluster");
  const std::string a = (dir_ / "a").string(), b = (dir_ / "b").string();
  r = loadKubeconfig(a + ":" + b);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "kubeconfig: none of the files listed in \"" + a + ":" + b +
                                   "\" exists (" + a + ", " + b +
                                   "); set KUBECONFIG or --kubeconfig to an existing kubeconfig "
                                   "file");
}

TEST_F(KubeconfigTest, AListOfTwoExistingFilesIsRefusedNamingThem) {
  writeConfig(typicalConfig());
  writeFile("second", typicalConfig());
  const std::string second = (dir_ / "second").string();
  auto r = loadKubeconfig(path_ + ":" + second);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("lists 2 existing files (" + path_ + ", " + second +
                                   "); the agent does not merge kubeconfigs"),
            std::string::npos)
      << r.error().message;
}

TEST_F(KubeconfigTest, AnInlineTokenWithCrLfIsRefused) {
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("    token: tok-1\n"), 16,
               "    token: \"tok-1\\r\\nImpersonate-User: system:admin\"\n");
  writeConfig(yaml);
  const std::string m = failure();
  EXPECT_NE(m.find(prefix() + "users[\"u1\"].user.token (line 17): the bearer token from the "
                              "kubeconfig's users[\"u1\"].user.token holds a carriage return "
                              "(CR) at byte 6, which cannot be sent in an HTTP header"),
            std::string::npos)
      << m;
  EXPECT_EQ(m.find("system:admin"), std::string::npos) << m;
}

TEST_F(KubeconfigTest, ATokenFileWithALineFeedInsideIsRefused) {
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("    token: tok-1\n"), 16, "    tokenFile: token\n");
  writeConfig(yaml);
  writeFile("token", "tok-1\nImpersonate-User: system:admin\n");
  const std::string m = failure();
  EXPECT_NE(m.find(prefix() +
                   "users[\"u1\"].user.tokenFile (line 17): the bearer token from the "
                   "token file " +
                   (dir_ / "token").string() + " holds a line feed (LF) at byte 6"),
            std::string::npos)
      << m;
}

TEST_F(KubeconfigTest, UnknownContextListsTheAvailableOnes) {
  writeConfig(typicalConfig());
  EXPECT_EQ(failure("nope"),
            prefix() +
                "context (line 1): no entry named \"nope\" in contexts (available: dev, "
                "other)");
}

TEST_F(KubeconfigTest, UnknownClusterNamesTheReferenceAndItsLine) {
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("cluster: c1"), 11, "cluster: c9");
  writeConfig(yaml);
  EXPECT_EQ(failure(), prefix() +
                           "contexts[\"dev\"].context.cluster (line 21): no entry named "
                           "\"c9\" in clusters (available: c1, c2)");
}

TEST_F(KubeconfigTest, UnknownUserNamesTheReferenceAndItsLine) {
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("user: u1"), 8, "user: u9");
  writeConfig(yaml);
  EXPECT_EQ(failure(), prefix() +
                           "contexts[\"dev\"].context.user (line 22): no entry named "
                           "\"u9\" in users (available: u1)");
}

TEST_F(KubeconfigTest, PlainHttpServerIsRefused) {
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("https://127.0.0.1:6443/"), 23, "http://127.0.0.1:8080");
  writeConfig(yaml);
  const std::string m = failure();
  EXPECT_NE(m.find(prefix() + "clusters[\"c1\"].cluster.server (line 7): \"http://127.0.0.1:8080\" "
                              "is not an https:// URL"),
            std::string::npos)
      << m;
}

TEST_F(KubeconfigTest, MissingServerIsNamed) {
  writeConfig(
      "current-context: x\n"
      "clusters:\n"
      "- name: c\n"
      "  cluster:\n"
      "    certificate-authority-data: " +
      caData() +
      "\n"
      "contexts:\n"
      "- name: x\n"
      "  context: {cluster: c}\n");
  EXPECT_EQ(failure(), prefix() + "clusters[\"c\"].cluster.server (line 5): missing");
}

TEST_F(KubeconfigTest, MissingCaIsRefusedBecauseSystemRootsAreNeverUsed) {
  writeConfig(
      "current-context: x\n"
      "clusters:\n"
      "- name: c\n"
      "  cluster:\n"
      "    server: https://h\n"
      "contexts:\n"
      "- name: x\n"
      "  context: {cluster: c}\n");
  const std::string m = failure();
  EXPECT_NE(m.find(prefix() + "clusters[\"c\"].cluster.certificate-authority (line 5): missing"),
            std::string::npos)
      << m;
}

TEST_F(KubeconfigTest, InvalidBase64CaDataNamesFieldAndLine) {
  std::string yaml = typicalConfig();
  const auto at = yaml.find("certificate-authority-data: ") + 28;
  yaml.replace(at, yaml.find('\n', at) - at, "not*base64");
  writeConfig(yaml);
  EXPECT_EQ(failure(), prefix() +
                           "clusters[\"c1\"].cluster.certificate-authority-data (line 8): "
                           "not valid base64 (it holds the PEM file, base64-encoded)");
}

TEST_F(KubeconfigTest, CaDataThatIsNotACertificateNamesFieldAndLine) {
  std::string yaml = typicalConfig();
  const auto at = yaml.find("certificate-authority-data: ") + 28;
  yaml.replace(at, yaml.find('\n', at) - at, base64Encode("hello"));
  writeConfig(yaml);
  const std::string m = failure();
  EXPECT_NE(m.find(prefix() + "clusters[\"c1\"].cluster.certificate-authority-data (line 8): the "
                              "CA: no PEM certificate found"),
            std::string::npos)
      << m;
}

TEST_F(KubeconfigTest, UnreadableCaFileNamesFieldPathAndLine) {
  writeConfig(
      "current-context: x\n"
      "clusters:\n"
      "- name: c\n"
      "  cluster:\n"
      "    server: https://h\n"
      "    certificate-authority: missing/ca.crt\n"
      "contexts:\n"
      "- name: x\n"
      "  context: {cluster: c}\n");
  EXPECT_EQ(failure(), prefix() +
                           "clusters[\"c\"].cluster.certificate-authority (line 6): cannot "
                           "read " +
                           (dir_ / "missing/ca.crt").string() + ": No such file or directory");
}

TEST_F(KubeconfigTest, ExecPluginIsRejectedWithFieldAndLine) {
  std::string yaml = typicalConfig();
  yaml.replace(
      yaml.find("    token: tok-1\n"), 16,
      "    exec:\n      command: aws\n      apiVersion: client.authentication.k8s.io/v1\n");
  writeConfig(yaml);
  const std::string m = failure();
  EXPECT_NE(m.find(prefix() + "users[\"u1\"].user.exec (line 18): exec credential plugins are not "
                              "supported; give the agent a user with token, tokenFile or "
                              "client-certificate/client-key"),
            std::string::npos)
      << m;
}

TEST_F(KubeconfigTest, AuthProviderAndBasicAuthAreRejected) {
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("    token: tok-1\n"), 16, "    auth-provider:\n      name: gcp\n");
  writeConfig(yaml);
  EXPECT_NE(failure().find("users[\"u1\"].user.auth-provider (line 18): auth-provider plugins are "
                           "not supported"),
            std::string::npos);
  yaml = typicalConfig();
  yaml.replace(yaml.find("    token: tok-1\n"), 16, "    username: admin\n    password: pw\n");
  writeConfig(yaml);
  EXPECT_NE(failure().find("users[\"u1\"].user.username (line 17): basic authentication is not "
                           "supported"),
            std::string::npos);
}

TEST_F(KubeconfigTest, ClientCertificateWithoutKeyIsNamed) {
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("    token: tok-1\n"), 16,
               "    client-certificate-data: " + base64Encode(testPki().client_cert_pem) + "\n");
  writeConfig(yaml);
  EXPECT_EQ(failure(), prefix() +
                           "users[\"u1\"].user.client-key (line 17): missing: "
                           "client-certificate and client-key must be given together");
}

TEST_F(KubeconfigTest, ClientKeyThatDoesNotMatchTheCertificateIsNamed) {
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("    token: tok-1\n"), 16,
               "    client-certificate-data: " + base64Encode(testPki().client_cert_pem) +
                   "\n    client-key-data: " + base64Encode(testPki().other_key_pem) + "\n");
  writeConfig(yaml);
  EXPECT_EQ(failure(), prefix() +
                           "users[\"u1\"].user.client-certificate (line 17): the client key "
                           "does not belong to the client certificate");
}

TEST_F(KubeconfigTest, UnreadableTokenFileIsNamed) {
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("    token: tok-1\n"), 16, "    tokenFile: /nonexistent/token\n");
  writeConfig(yaml);
  EXPECT_EQ(failure(), prefix() +
                           "users[\"u1\"].user.tokenFile (line 17): cannot read "
                           "/nonexistent/token: No such file or directory");
}

TEST_F(KubeconfigTest, TokenFileThatIsAFifoIsRefusedWithoutBlocking) {
  const std::string fifo = (dir_ / "token").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("    token: tok-1\n"), 16, "    tokenFile: token\n");
  writeConfig(yaml);
  EXPECT_EQ(failure(), prefix() + "users[\"u1\"].user.tokenFile (line 17): cannot read " + fifo +
                           ": a FIFO, not a regular file (only regular files of at most 64 KiB "
                           "are read)");
}

TEST_F(KubeconfigTest, OversizedTokenFileIsNamedWithItsLimit) {
  writeFile("token", std::string(64 * 1024 + 1, 'x'));
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("    token: tok-1\n"), 16, "    tokenFile: token\n");
  writeConfig(yaml);
  EXPECT_EQ(failure(), prefix() + "users[\"u1\"].user.tokenFile (line 17): cannot read " +
                           (dir_ / "token").string() + ": 65537 bytes, over the 64 KiB limit");
}

TEST_F(KubeconfigTest, CertificateAuthorityThatIsADeviceIsNamedWithFieldAndLine) {
  std::string yaml = typicalConfig();
  const auto start = yaml.find("    certificate-authority-data: ");
  yaml.replace(start, yaml.find('\n', start) - start, "    certificate-authority: /dev/zero");
  writeConfig(yaml);
  EXPECT_EQ(failure(), prefix() +
                           "clusters[\"c1\"].cluster.certificate-authority (line 8): cannot read "
                           "/dev/zero: a character device, not a regular file (only regular "
                           "files of at most 1 MiB are read)");
}

TEST_F(KubeconfigTest, ClientKeyThatIsADirectoryOrTooLargeIsNamedWithFieldAndLine) {
  writeFile("pki/client.crt", testPki().client_cert_pem);
  fs::create_directories(dir_ / "pki/client.key");
  std::string yaml = typicalConfig();
  yaml.replace(yaml.find("    token: tok-1\n"), 16,
               "    client-certificate: pki/client.crt\n    client-key: pki/client.key\n");
  writeConfig(yaml);
  const std::string key = (dir_ / "pki/client.key").string();
  EXPECT_EQ(failure(), prefix() + "users[\"u1\"].user.client-key (line 18): cannot read " + key +
                           ": a directory, not a regular file (only regular files of at most "
                           "1 MiB are read)");
  fs::remove(key);
  writeFile("pki/client.key", std::string(1024 * 1024 + 1, 'x'));
  EXPECT_EQ(failure(), prefix() + "users[\"u1\"].user.client-key (line 18): cannot read " + key +
                           ": 1048577 bytes, over the 1 MiB limit");
}

TEST_F(KubeconfigTest, InsecureSkipTlsVerifyIsRefusedUnlessAllowed) {
  writeConfig(
      "current-context: x\n"
      "clusters:\n"
      "- name: c\n"
      "  cluster:\n"
      "    server: https://h\n"
      "    insecure-skip-tls-verify: true\n"
      "contexts:\n"
      "- name: x\n"
      "  context: {cluster: c}\n");
  const std::string m = failure();
  EXPECT_NE(m.find(prefix() + "clusters[\"c\"].cluster.insecure-skip-tls-verify (line 6): the "
                              "agent refuses to talk to an API server it cannot verify"),
            std::string::npos)
      << m;
  const ClusterConfig cfg = load("", /*allow_insecure=*/true);
  EXPECT_TRUE(cfg.insecure_skip_verify);
}

TEST_F(KubeconfigTest, InsecureSkipTlsVerifyWithACaIsContradictory) {
  std::string yaml = typicalConfig();
  yaml.insert(yaml.find("- name: c2"), "    insecure-skip-tls-verify: true\n");
  writeConfig(yaml);
  EXPECT_EQ(failure("", true), prefix() +
                                   "clusters[\"c1\"].cluster.insecure-skip-tls-verify "
                                   "(line 9): cannot be combined with a "
                                   "certificate-authority; remove one of them");
}

TEST_F(KubeconfigTest, WrongTypesAreNamed) {
  std::string yaml = typicalConfig();
  yaml.insert(yaml.find("- name: c2"), "    insecure-skip-tls-verify: maybe\n");
  writeConfig(yaml);
  EXPECT_EQ(failure(), prefix() +
                           "clusters[\"c1\"].cluster.insecure-skip-tls-verify (line 9): "
                           "expected true or false");
  writeConfig(
      "current-context: x\nclusters: {c: 1}\ncontexts:\n- name: x\n  context: {cluster: c}\n");
  EXPECT_NE(failure().find("clusters (line 2): expected a list"), std::string::npos) << failure();
  writeConfig(typicalConfig() + "- just a string\n");
  EXPECT_NE(failure("nope").find("contexts[2] (line 28): expected a mapping"), std::string::npos)
      << failure("nope");
}

TEST_F(KubeconfigTest, ProxyUrlIsRejected) {
  std::string yaml = typicalConfig();
  yaml.insert(yaml.find("- name: c2"), "    proxy-url: http://proxy:3128\n");
  writeConfig(yaml);
  EXPECT_NE(failure().find("clusters[\"c1\"].cluster.proxy-url (line 9): not supported"),
            std::string::npos);
}

}  // namespace
}  // namespace tsk::k8s
