#pragma once

namespace tsk {

// Runs one request through cpp-httplib's server code on the calling thread, once per process.
//
// Why: Debian's libcpp-httplib.so is not built with -fsanitize=thread. Its request parser keeps
// a function-local static (the set of method names) that the first request builds. When the
// first requests of a process arrive on two worker threads at once, ThreadSanitizer sees the
// library's memcpy/memcmp on that set but not the (uninstrumented) guard that orders them, and
// reports a race that is not one. Calling this before a server starts its threads builds the
// static on a thread that then creates them, an order TSan can see. It costs one parse of a
// 60-byte request in memory: no socket, no handler of ours runs.
void warmUpHttplibServer();

}  // namespace tsk
