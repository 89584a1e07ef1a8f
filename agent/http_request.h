#pragma once
// The head of an HTTP/1.1 request (RFC 9112 sections 2-5: request line, header fields), parsed
// for the admin server, which needs only the method, the path and what decides the connection's
// fate (Host, Connection, Content-Length, Transfer-Encoding). Lenient where the RFC lets a
// server be (empty lines before the request line, bare LF line ends, absolute-form targets),
// strict where it asks for 400 (no or several Host fields in HTTP/1.1, whitespace before a colon,
// obs-fold, a bare CR, control characters, a malformed Content-Length).
//
//   const size_t end = requestHeadEnd(buffered);  // npos: not all there yet
//   RequestHead req;
//   if (int status = parseRequestHead(buffered.substr(0, end), req)) answer `status`;
#include <cstddef>
#include <string_view>

namespace tsk::agent {

struct RequestHead {
  std::string_view method;  // views into the parsed head
  std::string_view path;    // without the query
  bool keep_alive = true;   // HTTP/1.1 without `Connection: close`
  bool has_body = false;    // Content-Length other than 0, or any Transfer-Encoding
};

// The end of the head in `in` (the offset just past its empty line), or npos when it has not
// all arrived. Lines end in CRLF or a bare LF.
size_t requestHeadEnd(std::string_view in);

// Parses a whole head (up to requestHeadEnd); 0, or the status to answer a malformed one with
// (400, or 505 for an HTTP version other than 1.0 and 1.1).
int parseRequestHead(std::string_view head, RequestHead& out);

}  // namespace tsk::agent
