#include "k8s/base64.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

namespace tsk::k8s {
namespace {

// EVP_EncodeBlock/EVP_DecodeBlock take an int length; work in chunks well below INT_MAX that
// keep base64 quanta intact (3 input bytes per 4 output characters).
constexpr size_t kEncodeChunk = 3 * 1024 * 1024;
constexpr size_t kDecodeChunk = 4 * 1024 * 1024;

bool isBase64Char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '/';
}

}  // namespace

std::string base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4 + 1);
  for (size_t pos = 0; pos < bytes.size(); pos += kEncodeChunk) {
    const size_t n = std::min(kEncodeChunk, bytes.size() - pos);
    const size_t old = out.size();
    out.resize(old + (n + 2) / 3 * 4 + 1);  // +1: EVP writes a NUL terminator
    const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + old),
                                        reinterpret_cast<const unsigned char*>(bytes.data() + pos),
                                        static_cast<int>(n));
    out.resize(old + static_cast<size_t>(written));
  }
  return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
  std::string compact;
  compact.reserve(text.size());
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c)) == 0) compact.push_back(c);
  }
  if (compact.size() % 4 != 0) return std::nullopt;
  // Padding may only be the last one or two characters. EVP_DecodeBlock accepts '=' elsewhere
  // in some positions, so check here.
  size_t padding = 0;
  while (padding < 2 && padding < compact.size() && compact[compact.size() - 1 - padding] == '=') {
    ++padding;
  }
  const size_t body = compact.size() - padding;
  for (size_t i = 0; i < body; ++i) {
    if (!isBase64Char(compact[i])) return std::nullopt;
  }
  std::string out;
  out.reserve(compact.size() / 4 * 3);
  for (size_t pos = 0; pos < compact.size(); pos += kDecodeChunk) {
    const size_t n = std::min(kDecodeChunk, compact.size() - pos);
    const size_t old = out.size();
    out.resize(old + n / 4 * 3);
    const int written = EVP_DecodeBlock(
        reinterpret_cast<unsigned char*>(out.data() + old),
        reinterpret_cast<const unsigned char*>(compact.data() + pos), static_cast<int>(n));
    if (written < 0) return std::nullopt;
    out.resize(old + static_cast<size_t>(written));
  }
  // EVP_DecodeBlock counts padding as zero bytes; drop them. It writes 3 bytes per 4
  // characters, so there are always at least `padding`. (erase, not resize: g++ 12 warns that
  // resize's growing path could be handed a wrapped size.)
  if (out.size() < padding) return std::nullopt;
  out.erase(out.size() - padding);
  return out;
}

}  // namespace tsk::k8s
