#pragma once
// Reads a whole small file: service-account token, CA bundle, kubeconfig, client key. Every file
// the k8s module reads goes through here, so a path that names a FIFO, a device (/dev/zero) or a
// huge file fails at once with a clear error instead of hanging or filling memory.
//
//   auto ca = readFileContents(path, kMaxConfigFileBytes);
//   if (!ca) return Error{"service-account CA: " + ca.error().message + "; <what to do>"};
#include <cstddef>
#include <string>

#include "common/result.h"

namespace tsk::k8s {

// Kubeconfig, CA bundles, client certificates and keys (real ones are a few KiB).
inline constexpr std::size_t kMaxConfigFileBytes = std::size_t{1} << 20;
// Bearer tokens and the namespace file (a bound token is about 1 KiB).
inline constexpr std::size_t kMaxTokenFileBytes = std::size_t{64} << 10;

// Only a regular file (symlinks are followed) of at most `max_bytes` is read. Error messages:
//   "cannot read <path>: No such file or directory"
//   "cannot read <path>: a character device, not a regular file (only regular files of at most
//    1 MiB are read)"
//   "cannot read <path>: 2097152 bytes, over the 1 MiB limit"
//   "cannot read <path>: over the 1 MiB limit" (a file whose size stat does not tell)
// Callers add what the file was for and what to do.
Result<std::string> readFileContents(const std::string& path, std::size_t max_bytes);

}  // namespace tsk::k8s
