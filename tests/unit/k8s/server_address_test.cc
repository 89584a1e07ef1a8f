#include "k8s/server_address.h"

#include <gtest/gtest.h>

namespace tsk::k8s {
namespace {

TEST(ServerAddress, ParsesHostPortAndPrefix) {
  auto a = parseServerAddress("https://10.0.0.1:6443");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "10.0.0.1");
  EXPECT_EQ(a->port, 6443);
  EXPECT_EQ(a->prefix, "");

  a = parseServerAddress("https://rancher.example/k8s/clusters/c-1/");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "rancher.example");
  EXPECT_EQ(a->port, 443);
  EXPECT_EQ(a->prefix, "/k8s/clusters/c-1");
}

TEST(ServerAddress, StripsBracketsFromIpv6Hosts) {
  auto a = parseServerAddress("https://[fd00::1]:443");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "fd00::1");
  EXPECT_EQ(a->port, 443);
}

TEST(ServerAddress, RejectsWhatItCannotUse) {
  for (const char* bad : {"http://10.0.0.1", "https://", "https://fd00::1:443", "https://[fd00::1",
                          "https://h:0", "https://h:70000", "https://h:x", "10.0.0.1:6443"}) {
    auto a = parseServerAddress(bad);
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_NE(a.error().message.find(bad), std::string::npos) << a.error().message;
  }
}

}  // namespace
}  // namespace tsk::k8s
