#pragma once
// Reads a whole small file: the agent's config file; the k8s module's service-account token, CA
// bundle, kubeconfig, client key. Every such file goes through here, so a path that names a FIFO,
// a device (/dev/zero) or a huge file fails at once with a clear error instead of hanging or
// filling memory.
//
//   auto ca = readFileContents(path, k8s::kMaxConfigFileBytes);
//   if (!ca) return Error{"service-account CA: " + ca.error().message + "; <what to do>"};
#include <cstddef>
#include <string>

#include "common/result.h"

namespace tsk {

// Only a regular file (symlinks are followed) of at most `max_bytes` is read. Error messages:
//   "cannot read <path>: No such file or directory"
//   "cannot read <path>: a character device, not a regular file (only regular files of at most
//    1 MiB are read)"
//   "cannot read <path>: 2097152 bytes, over the 1 MiB limit"
//   "cannot read <path>: over the 1 MiB limit" (a file whose size stat does not tell)
// Callers add what the file was for and what to do.
Result<std::string> readFileContents(const std::string& path, std::size_t max_bytes);

}  // namespace tsk
