#pragma once
// Standard base64 (RFC 4648, with padding), the encoding of Secret `data` values and of the
// kubeconfig `*-data` fields. Backed by OpenSSL EVP; binary-safe in both directions.
//
//   std::string wire = k8s::base64Encode(bytes);
//   auto bytes = k8s::base64Decode(wire);  // std::nullopt if `wire` is not valid base64
#include <optional>
#include <string>
#include <string_view>

namespace tsk::k8s {

std::string base64Encode(std::string_view bytes);
// Strict decode: whitespace (newlines in PEM-style wrapping) is ignored, anything else that is
// not base64, a length that is not a multiple of 4, or misplaced padding is rejected.
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace tsk::k8s
