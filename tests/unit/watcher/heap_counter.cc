// The global operator new/delete of the watcher's unit-test binary, with the counting behind
// HeapCounter (heap_counter.h). Each block carries a 16-byte header (its size, and which counter
// counted it, if any), so a block counted while the counter ran is uncounted when freed later,
// and one allocated before (or counted by an earlier counter) is never subtracted.
#include "tests/unit/watcher/heap_counter.h"

#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TSK_HEAP_COUNTER 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TSK_HEAP_COUNTER 0
#endif
#endif
#ifndef TSK_HEAP_COUNTER
#define TSK_HEAP_COUNTER 1
#endif

namespace tsk::watcher::testing {
namespace {

struct State {
  uint64_t generation = 0;  // of the current (or last) counter; blocks carry the one they count for
  bool exists = false;
  bool running = false;
  size_t live = 0;
  size_t peak = 0;
  size_t allocations = 0;
};
State g_state;

}  // namespace

HeapCounter::HeapCounter() {
  if (g_state.exists) std::abort();  // one counter at a time
  g_state = State{.generation = g_state.generation + 1, .exists = true};
}
HeapCounter::~HeapCounter() {
  g_state.running = false;
  g_state.exists = false;
}
void HeapCounter::resume() {
  g_state.running = true;
}
void HeapCounter::pause() {
  g_state.running = false;
}
size_t HeapCounter::live() const {
  return g_state.live;
}
size_t HeapCounter::peak() const {
  return g_state.peak;
}
size_t HeapCounter::allocations() const {
  return g_state.allocations;
}
bool HeapCounter::available() {
  return TSK_HEAP_COUNTER != 0;
}

}  // namespace tsk::watcher::testing

#if TSK_HEAP_COUNTER
namespace {

using tsk::watcher::testing::g_state;

struct alignas(16) Header {
  size_t size;
  uint64_t counted_by;  // the generation of the counter that counted it; 0: none
};
static_assert(sizeof(Header) == 16);

void* allocate(size_t size) {
  auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + (size ? size : 1)));
  if (!h) return nullptr;
  h->size = size;
  h->counted_by = g_state.running ? g_state.generation : 0;
  if (h->counted_by != 0) {
    ++g_state.allocations;
    g_state.live += size;
    if (g_state.live > g_state.peak) g_state.peak = g_state.live;
  }
  return h + 1;
}

void release(void* p) {
  if (!p) return;
  Header* h = static_cast<Header*>(p) - 1;
  if (h->counted_by != 0 && h->counted_by == g_state.generation) g_state.live -= h->size;
  std::free(h);
}

void* allocateOrThrow(size_t size) {
  void* p = allocate(size);
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(size_t size) {
  return allocateOrThrow(size);
}
void* operator new[](size_t size) {
  return allocateOrThrow(size);
}
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  return allocate(size);
}
void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  return allocate(size);
}
void operator delete(void* p) noexcept {
  release(p);
}
void operator delete[](void* p) noexcept {
  release(p);
}
void operator delete(void* p, size_t) noexcept {
  release(p);
}
void operator delete[](void* p, size_t) noexcept {
  release(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  release(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  release(p);
}
#endif
