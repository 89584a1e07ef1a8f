#pragma once
// HeapCounter: the real heap a piece of code uses, measured by this test binary's replacement of
// the global operator new/delete (heap_counter.cc). While a counter is running, every block
// operator new hands out is counted as live until it is freed (whenever that is), and the peak
// of the live total is kept. Code run while the counter is paused is not counted, so a test can
// count the parser's allocations and not those of the generator feeding it.
//
// Only one counter at a time; not thread-safe by design (the watcher's unit tests are
// single-threaded). In a sanitizer build the sanitizer owns operator new: available() is false.
#include <cstddef>

namespace tsk::watcher::testing {

class HeapCounter {
 public:
  HeapCounter();  // paused, live and peak at 0
  ~HeapCounter();
  HeapCounter(const HeapCounter&) = delete;
  HeapCounter& operator=(const HeapCounter&) = delete;

  void resume();
  void pause();
  size_t live() const;         // bytes of counted blocks not yet freed
  size_t peak() const;         // the most live bytes at any moment
  size_t allocations() const;  // counted blocks

  static bool available();
};

// Runs f with the counter running.
template <class F>
decltype(auto) counted(HeapCounter& c, F&& f) {
  struct Pause {
    HeapCounter& c;
    ~Pause() { c.pause(); }
  } pause{c};
  c.resume();
  return f();
}

}  // namespace tsk::watcher::testing
