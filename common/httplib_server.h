#pragma once
// Starting a cpp-httplib server on a background thread, the same way for every server of ours
// that uses cpp-httplib: the test tools kube-emu and tsbus-sim's control API. (The agent's admin
// server owns its connections: agent/admin_server.h.)

#include <thread>

namespace httplib {
class Server;
}

namespace tsk {

// Runs `server` (already bound) on a new thread and returns that thread once the server is
// accepting, or after 5 s if it never does (listen_after_bind returned, e.g. stop() came
// first). Waiting matters: cpp-httplib's stop() does nothing until the loop has marked itself
// running, so a stop() right after start() could otherwise leave the thread in accept().
//
// Before the first server of the process starts, one request is parsed in memory on the
// calling thread. Debian's libcpp-httplib.so is not built with -fsanitize=thread, and its
// request parser builds a function-local static (the set of method names) on first use; when a
// process's first two requests were parsed on two workers at once, ThreadSanitizer saw the
// library's memcpy/memcmp on it but not the (uninstrumented) guard, and reported a race that is
// not one. Built here, before the server's threads exist, the order is one TSan can see. It costs
// one parse of an 85-byte request, once: no socket, no handler of ours runs.
std::thread serveInBackground(httplib::Server& server);

}  // namespace tsk
