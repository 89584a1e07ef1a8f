#pragma once
// How large a file the k8s module reads may be (through tsk::readFileContents, common/read_file.h,
// which refuses a FIFO, a device or a larger file with an error naming it).
#include <cstddef>

namespace tsk::k8s {

// Kubeconfig, CA bundles, client certificates and keys (real ones are a few KiB).
inline constexpr std::size_t kMaxConfigFileBytes = std::size_t{1} << 20;
// Bearer tokens and the namespace file (a bound token is about 1 KiB).
inline constexpr std::size_t kMaxTokenFileBytes = std::size_t{64} << 10;

}  // namespace tsk::k8s
