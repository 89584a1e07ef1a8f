#include "common/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/unique_fd.h"

namespace tsk {
namespace {

std::string sizeText(std::size_t bytes) {
  constexpr std::size_t kKiB = 1024;
  constexpr std::size_t kMiB = kKiB * kKiB;
  if (bytes >= kMiB && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + " MiB";
  if (bytes >= kKiB && bytes % kKiB == 0) return std::to_string(bytes / kKiB) + " KiB";
  return std::to_string(bytes) + " bytes";
}

const char* kindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

Error failure(const std::string& path, const std::string& reason) {
  return Error{"cannot read " + path + ": " + reason};
}

Error errnoFailure(const std::string& path, int err) {
  return failure(path, std::strerror(err));
}

Error notRegular(const std::string& path, mode_t mode, std::size_t max_bytes) {
  return failure(path, std::string(kindOf(mode)) +
                           ", not a regular file (only regular files of at most " +
                           sizeText(max_bytes) + " are read)");
}

Error tooLarge(const std::string& path, const std::string& what, std::size_t max_bytes) {
  return failure(path, what + " the " + sizeText(max_bytes) + " limit");
}

}  // namespace

Result<std::string> readFileContents(const std::string& path, std::size_t max_bytes) {
  // stat first so that a device is never opened (opening some has side effects); O_NONBLOCK so
  // that a FIFO swapped in after the stat does not block the open; fstat again for that race.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errnoFailure(path, errno);
  if (!S_ISREG(st.st_mode)) return notRegular(path, st.st_mode, max_bytes);

  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) return errnoFailure(path, errno);
  if (::fstat(fd.get(), &st) != 0) return errnoFailure(path, errno);
  if (!S_ISREG(st.st_mode)) return notRegular(path, st.st_mode, max_bytes);
  if (static_cast<std::size_t>(st.st_size) > max_bytes) {
    return tooLarge(path, std::to_string(st.st_size) + " bytes, over", max_bytes);
  }

  // st_size is only a hint (the file may grow, /proc reports 0): read at most one byte past the
  // limit to tell "exactly the limit" from "over it".
  std::string content;
  content.reserve(static_cast<std::size_t>(st.st_size));
  char buf[16 * 1024];
  while (content.size() <= max_bytes) {
    const std::size_t want = std::min(sizeof buf, max_bytes + 1 - content.size());
    const ssize_t n = ::read(fd.get(), buf, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoFailure(path, errno);
    }
    if (n == 0) return content;
    content.append(buf, static_cast<std::size_t>(n));
  }
  return tooLarge(path, "over", max_bytes);
}

}  // namespace tsk
