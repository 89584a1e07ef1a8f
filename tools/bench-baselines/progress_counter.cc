#include "tools/bench-baselines/progress_counter.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tsk::bench {

namespace {
constexpr size_t kMapBytes = 4096;
}

ProgressCounter::ProgressCounter(const std::string& path) {
  if (path.empty()) return;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ::ftruncate(fd, kMapBytes) != 0) {
    std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot create progress file " + path + ": " + why);
  }
  void* p = ::mmap(nullptr, kMapBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping keeps the file
  if (p == MAP_FAILED) {
    throw std::runtime_error("cannot map progress file " + path + ": " + std::strerror(errno));
  }
  shared_ = static_cast<std::atomic<uint64_t>*>(p);
}

ProgressCounter::~ProgressCounter() {
  if (shared_ != nullptr) ::munmap(shared_, kMapBytes);
}

void ProgressCounter::add(uint64_t lines, uint64_t bytes) {
  lines_ += lines;
  bytes_ += bytes;
  if (shared_ == nullptr) return;
  shared_[1].store(bytes_, std::memory_order_relaxed);
  shared_[0].store(lines_, std::memory_order_release);
}

}  // namespace tsk::bench
