#include "k8s/base64.h"

#include <gtest/gtest.h>

namespace tsk::k8s {
namespace {

TEST(Base64, EncodesRfc4648TestVectors) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
}

TEST(Base64, DecodesRfc4648TestVectors) {
  EXPECT_EQ(base64Decode(""), "");
  EXPECT_EQ(base64Decode("Zg=="), "f");
  EXPECT_EQ(base64Decode("Zm8="), "fo");
  EXPECT_EQ(base64Decode("Zm9v"), "foo");
  EXPECT_EQ(base64Decode("Zm9vYmFy"), "foobar");
}

TEST(Base64, RoundTripsEveryByteValueAtEveryLength) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t len = 0; len <= all.size(); ++len) {
    const std::string bytes = all.substr(all.size() - len);
    const auto decoded = base64Decode(base64Encode(bytes));
    ASSERT_TRUE(decoded.has_value()) << len;
    EXPECT_EQ(*decoded, bytes) << len;
  }
}

TEST(Base64, RoundTripsValuesLargerThanOneChunk) {
  std::string big(5 * 1024 * 1024 + 7, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
  EXPECT_EQ(base64Decode(base64Encode(big)), big);
}

TEST(Base64, IgnoresLineBreaksAsInWrappedPem) {
  EXPECT_EQ(base64Decode("Zm9v\nYmFy\r\n"), "foobar");
  EXPECT_EQ(base64Decode("  Zm9vYg==  "), "foob");
}

TEST(Base64, RejectsInvalidInput) {
  EXPECT_FALSE(base64Decode("Zm9"));       // not a multiple of 4
  EXPECT_FALSE(base64Decode("Zm9v!mFy"));  // not in the alphabet
  EXPECT_FALSE(base64Decode("Zm=vYmFy"));  // padding in the middle
  EXPECT_FALSE(base64Decode("Z==="));      // three padding characters
  EXPECT_FALSE(base64Decode("===="));
  EXPECT_FALSE(base64Decode("Zm9v-_Fy"));  // URL-safe alphabet is not Kubernetes' encoding
}

}  // namespace
}  // namespace tsk::k8s
