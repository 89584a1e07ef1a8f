// BodyDecoder: the streaming HTTP/1.1 body decoder under BusClient, fed every split.
#include <gtest/gtest.h>

#include <string>

#include "watcher/bus_client.h"

namespace tsk::watcher {
namespace {

struct Decoded {
  std::string body;
  BodyDecoder::State state = BodyDecoder::State::More;
  size_t consumed = 0;  // raw bytes used up to the end of the body
  std::string error;
};

// Feeds `raw` in pieces of `piece` bytes until the decoder stops asking for more.
Decoded decode(BodyDecoder::Framing framing, std::string_view raw, size_t piece,
               uint64_t length = 0) {
  BodyDecoder d(framing, length);
  Decoded out;
  const auto keep = [&](std::string_view b) {
    out.body.append(b);
    return true;
  };
  for (size_t pos = 0; pos < raw.size() && out.state == BodyDecoder::State::More;) {
    size_t used = 0;
    const std::string_view p = raw.substr(pos, piece);
    out.state = d.feed(p, keep, &used);
    out.consumed += used;
    pos += p.size();
  }
  out.error = d.error();
  return out;
}

constexpr std::string_view kChunked =
    "19\r\n{\"Version\":\"1.99.0\",\"A\":1\r\n"  // 25 bytes, mid-line
    "2\r\n}\n\r\n"
    "10;ext=1\r\n{\"State\":6,\"B\":2\r\n"  // an extension after the size
    "2\r\n}\n\r\n"
    "0\r\n\r\n";
constexpr std::string_view kBody = "{\"Version\":\"1.99.0\",\"A\":1}\n{\"State\":6,\"B\":2}\n";

TEST(BodyDecoder, DecodesChunkedBodyWhateverTheSplit) {
  for (size_t piece = 1; piece <= kChunked.size(); ++piece) {
    const Decoded d = decode(BodyDecoder::Framing::Chunked, kChunked, piece);
    EXPECT_EQ(d.state, BodyDecoder::State::Done) << "piece " << piece << ": " << d.error;
    EXPECT_EQ(d.body, kBody) << "piece " << piece;
  }
}

TEST(BodyDecoder, EndsAtTheZeroSizeChunkAndLeavesFollowingBytesUnread) {
  // tailscaled keeps the connection open after the zero chunk; the next response would follow.
  const std::string raw = std::string(kChunked) + "HTTP/1.1 200 OK\r\n";
  for (size_t piece = 1; piece <= raw.size(); ++piece) {
    const Decoded d = decode(BodyDecoder::Framing::Chunked, raw, piece);
    ASSERT_EQ(d.state, BodyDecoder::State::Done) << "piece " << piece;
    EXPECT_EQ(d.consumed, kChunked.size()) << "piece " << piece;
  }
}

TEST(BodyDecoder, SkipsTrailersAfterTheLastChunk) {
  const std::string raw = "3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n";
  for (size_t piece = 1; piece <= raw.size(); ++piece) {
    const Decoded d = decode(BodyDecoder::Framing::Chunked, raw, piece);
    EXPECT_EQ(d.state, BodyDecoder::State::Done);
    EXPECT_EQ(d.body, "abc");
    EXPECT_EQ(d.consumed, raw.size());
  }
}

TEST(BodyDecoder, AcceptsUppercaseHexAndHugeChunkSizes) {
  const Decoded d = decode(BodyDecoder::Framing::Chunked, "A\r\n0123456789\r\n0\r\n\r\n", 64);
  EXPECT_EQ(d.state, BodyDecoder::State::Done);
  EXPECT_EQ(d.body, "0123456789");
  // A 270 MB InitialStatus may come as one chunk: the size line alone must parse.
  BodyDecoder big(BodyDecoder::Framing::Chunked);
  size_t used = 0;
  EXPECT_EQ(big.feed(
                "10180000\r\nxyz", [](std::string_view) { return true; }, &used),
            BodyDecoder::State::More);
  EXPECT_EQ(big.decodedBytes(), 3u);
}

TEST(BodyDecoder, RejectsMalformedFraming) {
  struct Case {
    std::string raw;
    std::string error_part;
  };
  const Case cases[] = {
      {"zz\r\n", "expected a chunk size"},
      {"3\r\nabcX", "expected CRLF after chunk data"},
      {"11111111111111111\r\n", "more than 16 hex digits"},
      {"3\rX", "expected LF after a chunk size"},
      {"3!\r\n", "invalid byte"},
  };
  for (const auto& c : cases) {
    const Decoded d = decode(BodyDecoder::Framing::Chunked, c.raw, 1);
    EXPECT_EQ(d.state, BodyDecoder::State::Error) << c.raw;
    EXPECT_NE(d.error.find(c.error_part), std::string::npos) << c.raw << " -> " << d.error;
  }
}

TEST(BodyDecoder, ReportsATruncatedBodyAtEof) {
  BodyDecoder chunked(BodyDecoder::Framing::Chunked);
  size_t used = 0;
  chunked.feed(
      "5\r\nab", [](std::string_view) { return true; }, &used);
  EXPECT_EQ(chunked.finish(), BodyDecoder::State::Error);
  EXPECT_NE(chunked.error().find("before the end of the chunked body"), std::string::npos);

  BodyDecoder length(BodyDecoder::Framing::Length, 10);
  length.feed(
      "abc", [](std::string_view) { return true; }, &used);
  EXPECT_EQ(length.finish(), BodyDecoder::State::Error);
  EXPECT_NE(length.error().find("7 bytes of the body missing"), std::string::npos);
}

TEST(BodyDecoder, HandlesContentLengthAndReadUntilCloseBodies) {
  const Decoded d = decode(BodyDecoder::Framing::Length, "hello worldEXTRA", 3, 11);
  EXPECT_EQ(d.state, BodyDecoder::State::Done);
  EXPECT_EQ(d.body, "hello world");
  EXPECT_EQ(d.consumed, 11u);

  BodyDecoder until(BodyDecoder::Framing::UntilClose);
  std::string body;
  size_t used = 0;
  until.feed(
      "abc",
      [&](std::string_view b) {
        body.append(b);
        return true;
      },
      &used);
  EXPECT_EQ(until.finish(), BodyDecoder::State::Done);
  EXPECT_EQ(body, "abc");
}

TEST(BodyDecoder, StopsWhenTheCallbackSaysSo) {
  BodyDecoder d(BodyDecoder::Framing::Chunked);
  size_t used = 0;
  EXPECT_EQ(d.feed(
                kChunked, [](std::string_view) { return false; }, &used),
            BodyDecoder::State::Stopped);
}

}  // namespace
}  // namespace tsk::watcher
