#pragma once
// ProgressCounter: two 64-bit counters (lines, bytes) in a small shared file that the benchmark
// harness reads with mmap while a baseline runs, so it can tell when a batch has been consumed
// without asking the process anything (which would cost it CPU). Without a path it is a no-op.
//
//   ProgressCounter progress(path);       // "" = disabled
//   progress.add(lines, bytes);           // relaxed stores, cheap enough for every read()
//
// Layout (little-endian): u64 lines at offset 0, u64 bytes at offset 8.
#include <atomic>
#include <cstdint>
#include <string>

namespace tsk::bench {

class ProgressCounter {
 public:
  explicit ProgressCounter(const std::string& path);
  ~ProgressCounter();
  ProgressCounter(const ProgressCounter&) = delete;
  ProgressCounter& operator=(const ProgressCounter&) = delete;

  void add(uint64_t lines, uint64_t bytes);
  uint64_t lines() const { return lines_; }
  uint64_t bytes() const { return bytes_; }

 private:
  uint64_t lines_ = 0;
  uint64_t bytes_ = 0;
  std::atomic<uint64_t>* shared_ = nullptr;  // [0] lines, [1] bytes; null when disabled
};

}  // namespace tsk::bench
