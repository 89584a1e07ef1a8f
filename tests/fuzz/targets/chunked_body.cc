// Fuzz target: BusClient's streaming body decoder on raw, possibly hostile framing.
//
// Input byte 0 picks the framing (chunked, Content-Length with the length from bytes 1-2, or
// read-until-close); the rest is what the socket delivers. Checks:
//   - decoding in one feed() and in random pieces gives the same state, the same decoded bytes
//     and the same number of consumed bytes (a decoder must not depend on read sizes);
//   - decodedBytes() equals what the callback received; nothing is consumed past Done;
//   - a body that a strict RFC 9112 chunked reader accepts (size, optional extension, CRLFs,
//     trailer fields, within the decoder's 16-hex-digit and 4 KiB line limits) decodes to the
//     same bytes and ends at the same offset;
//   - the decoded bytes go through a NotifyParser (it must not crash on whatever comes out).
#include <optional>
#include <string>

#include "tests/fuzz/targets/fuzz_targets.h"
#include "watcher/bus_client.h"
#include "watcher/notify_parser.h"

namespace tsk::fuzz {
namespace {

using watcher::BodyDecoder;

class NullHandler final : public watcher::NotifyHandler {
 public:
  void onNotify(const watcher::Notify&) override {}
  void onMalformed(std::string_view, size_t) override {}
  void onOversized(size_t) override {}
};

struct Decoded {
  BodyDecoder::State state = BodyDecoder::State::More;
  std::string bytes;
  size_t consumed = 0;
};

BodyDecoder makeDecoder(uint8_t mode, uint64_t length) {
  switch (mode % 3) {
    case 0:
      return BodyDecoder(BodyDecoder::Framing::Chunked);
    case 1:
      return BodyDecoder(BodyDecoder::Framing::Length, length);
    default:
      return BodyDecoder(BodyDecoder::Framing::UntilClose);
  }
}

// Feeds `wire` in pieces of the sizes `next_piece` returns, until Done/Error or the end; then
// finish() as if the connection closed.
template <typename NextPiece>
Decoded decode(uint8_t mode, uint64_t length, std::string_view wire, NextPiece next_piece) {
  Decoded out;
  BodyDecoder d = makeDecoder(mode, length);
  NullHandler h;
  watcher::NotifyParser parser(h, {.track_peers = true, .max_line_bytes = 4096});
  const watcher::BodyCallback collect = [&](std::string_view b) {
    out.bytes.append(b);
    parser.feed(b);
    return true;
  };
  out.state = d.state();
  while (out.consumed < wire.size() && out.state == BodyDecoder::State::More) {
    const size_t n = next_piece(wire.size() - out.consumed);
    size_t used = 0;
    out.state = d.feed(wire.substr(out.consumed, n), collect, &used);
    if (used > n) fuzzFailure("BodyDecoder consumed more than it was given");
    if (out.state == BodyDecoder::State::More && used != n) {
      fuzzFailure("BodyDecoder left input unconsumed but wants more");
    }
    out.consumed += used;
  }
  if (out.state == BodyDecoder::State::More) out.state = d.finish();
  if (d.decodedBytes() != out.bytes.size()) {
    fuzzFailure("decodedBytes() differs from the bytes handed to the callback");
  }
  if (out.state == BodyDecoder::State::Error && d.error().empty()) {
    fuzzFailure("BodyDecoder failed without saying why");
  }
  // A finished decoder stays finished.
  size_t used = 0;
  if (d.feed("0\r\n\r\n", collect, &used) != out.state || d.decodedBytes() != out.bytes.size()) {
    fuzzFailure("BodyDecoder changed after it had finished");
  }
  parser.reset();
  return out;
}

// A strict chunked reader: nullopt when the framing is not plainly valid (or exceeds the
// decoder's documented limits), else the body and where it ended.
struct Strict {
  std::string body;
  size_t end = 0;
};

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<Strict> strictChunked(std::string_view w) {
  Strict s;
  size_t i = 0;
  for (;;) {
    uint64_t size = 0;
    int digits = 0;
    while (i < w.size() && hexDigit(w[i]) >= 0) {
      if (++digits > 16) return std::nullopt;
      size = size * 16 + static_cast<uint64_t>(hexDigit(w[i++]));
    }
    if (digits == 0) return std::nullopt;
    if (i < w.size() && w[i] == ';') {  // chunk-ext: anything but CR/LF, within 4 KiB
      const size_t ext_start = i;
      while (i < w.size() && w[i] != '\r' && w[i] != '\n') ++i;
      if (i - ext_start > 4000) return std::nullopt;
    }
    if (w.substr(i, 2) != "\r\n") return std::nullopt;
    i += 2;
    if (size == 0) break;
    if (size > w.size() - i) return std::nullopt;
    s.body.append(w.substr(i, size));
    i += size;
    if (w.substr(i, 2) != "\r\n") return std::nullopt;
    i += 2;
  }
  size_t trailer_bytes = 0;
  for (;;) {  // trailer fields, then an empty line
    if (w.substr(i, 2) == "\r\n") {
      s.end = i + 2;
      return s;
    }
    const size_t eol = w.find("\r\n", i);
    if (eol == std::string_view::npos) return std::nullopt;
    const std::string_view field = w.substr(i, eol - i);
    if (field.find('\n') != std::string_view::npos || field.find('\r') != std::string_view::npos) {
      return std::nullopt;
    }
    trailer_bytes += field.size() + 2;
    if (trailer_bytes > 4000) return std::nullopt;
    i = eol + 2;
  }
}

}  // namespace

int chunkedBodyOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t mode = data[0];
  const uint64_t length = static_cast<uint64_t>(data[1]) << 8 | data[2];
  const std::string_view wire(reinterpret_cast<const char*>(data) + 3, size - 3);

  const Decoded whole = decode(mode, length, wire, [](size_t left) { return left; });
  SplitRandom rng(wire);
  const Decoded split = decode(
      mode, length, wire, [&](size_t left) { return 1 + rng.below(std::min<size_t>(left, 37)); });
  const Decoded bytewise = decode(mode, length, wire, [](size_t) { return size_t{1}; });
  for (const Decoded* other : {&split, &bytewise}) {
    if (other->state != whole.state || other->bytes != whole.bytes ||
        other->consumed != whole.consumed) {
      fuzzFailure("BodyDecoder's result depends on how the input was split (state " +
                  std::to_string(static_cast<int>(whole.state)) + " vs " +
                  std::to_string(static_cast<int>(other->state)) + ", consumed " +
                  std::to_string(whole.consumed) + " vs " + std::to_string(other->consumed) + ")");
    }
  }

  if (mode % 3 == 0) {
    if (const auto strict = strictChunked(wire)) {
      if (whole.state != BodyDecoder::State::Done || whole.bytes != strict->body ||
          whole.consumed != strict->end) {
        fuzzFailure("BodyDecoder disagrees with a strict reader on valid chunked framing");
      }
    }
  } else if (mode % 3 == 1) {
    const uint64_t want = std::min<uint64_t>(length, wire.size());
    if (whole.bytes != wire.substr(0, want)) fuzzFailure("Content-Length body decoded wrong");
    const bool complete = wire.size() >= length;
    if ((whole.state == BodyDecoder::State::Done) != complete) {
      fuzzFailure("Content-Length body: Done iff all bytes arrived");
    }
  } else if (whole.bytes != wire || whole.state != BodyDecoder::State::Done) {
    fuzzFailure("read-until-close body decoded wrong");
  }
  return 0;
}

}  // namespace tsk::fuzz
