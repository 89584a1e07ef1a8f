// Helpers shared by the fuzz targets (see fuzz_targets.h).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "tests/fuzz/targets/fuzz_targets.h"
#include "tests/support/util/temp_dir.h"

namespace tsk::fuzz {

void fuzzFailure(std::string_view what) {
#if defined(TSK_FUZZ_REPLAY)
  throw FuzzCheckFailure(std::string(what));  // the replay test reports it with the file name
#endif
  std::fprintf(stderr, "fuzz check failed: %.*s\n", static_cast<int>(what.size()), what.data());
  std::fflush(stderr);
  std::abort();
}

SplitRandom::SplitRandom(std::string_view seed_bytes) : state_(0x9e3779b97f4a7c15ull) {
  // FNV-1a over the input: the same input always splits the same way.
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : seed_bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  state_ ^= h;
}

uint64_t SplitRandom::next() {  // splitmix64
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

size_t SplitRandom::below(size_t bound) {
  return bound == 0 ? 0 : static_cast<size_t>(next() % bound);
}

bool isValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int extra = 0;
    uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<size_t>(extra) >= s.size()) return false;  // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3f);
    }
    if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += static_cast<size_t>(extra) + 1;
  }
  return true;
}

// Created on first use, removed when the process exits normally.
const std::string& scratchDir() {
  static const testing::TempDir dir("tsk-fuzz");
  static const std::string path = dir.path().string();
  return path;
}

}  // namespace tsk::fuzz
