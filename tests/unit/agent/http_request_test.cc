#include "agent/http_request.h"

#include <gtest/gtest.h>

#include <string>

namespace tsk::agent {
namespace {

// Literals only: `out` holds views into `head`.
int parse(std::string_view head, RequestHead* out = nullptr) {
  RequestHead req;
  const int status = parseRequestHead(head, req);
  if (out) *out = req;
  return status;
}

TEST(RequestHeadEnd, FindsTheEmptyLineAfterCrlfOrBareLf) {
  EXPECT_EQ(requestHeadEnd("GET / HTTP/1.1\r\nHost: x\r\n\r\nnext"), 27u);
  EXPECT_EQ(requestHeadEnd("GET / HTTP/1.1\nHost: x\n\nnext"), 24u);
  EXPECT_EQ(requestHeadEnd("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 31u);
  EXPECT_EQ(requestHeadEnd("GET / HTTP/1.1\r\nHost: x\r\n"), std::string_view::npos);
  EXPECT_EQ(requestHeadEnd("\r\n\r\n"), std::string_view::npos);
  EXPECT_EQ(requestHeadEnd(""), std::string_view::npos);
}

TEST(ParseRequestHead, MethodPathAndConnection) {
  RequestHead req;
  ASSERT_EQ(parse("GET /metrics?x=1 HTTP/1.1\r\nhost: a\r\nAccept: */*\r\n\r\n", &req), 0);
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/metrics");
  EXPECT_TRUE(req.keep_alive);
  EXPECT_FALSE(req.has_body);
  ASSERT_EQ(parse("HEAD /livez HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n", &req),
            0);
  EXPECT_EQ(req.method, "HEAD");
  EXPECT_FALSE(req.keep_alive);
  ASSERT_EQ(parse("GET /livez HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &req), 0);
  EXPECT_FALSE(req.keep_alive) << "HTTP/1.0: one request per connection";
  ASSERT_EQ(parse("GET HTTPS://agent:9002/readyz?v HTTP/1.1\r\nHost: agent\r\n\r\n", &req), 0);
  EXPECT_EQ(req.path, "/readyz");
  ASSERT_EQ(parse("GET http://agent HTTP/1.1\r\nHost: agent\r\n\r\n", &req), 0);
  EXPECT_EQ(req.path, "/");
  ASSERT_EQ(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &req), 0);
  EXPECT_EQ(req.method, "OPTIONS");
}

TEST(ParseRequestHead, BodiesAreNoticed) {
  RequestHead req;
  ASSERT_EQ(parse("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &req), 0);
  EXPECT_FALSE(req.has_body);
  ASSERT_EQ(parse("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n", &req), 0);
  EXPECT_TRUE(req.has_body);
  ASSERT_EQ(parse("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &req), 0);
  EXPECT_TRUE(req.has_body);
}

TEST(ParseRequestHead, MalformedHeadsAre400) {
  for (const std::string& head : {
           std::string("GET /livez HTTP/1.1\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
           std::string("GET /livez HTTP/1.1 \r\nHost: a\r\n\r\n"),
           std::string("GET  /livez HTTP/1.1\r\nHost: a\r\n\r\n"),
           std::string("GET /livez\r\nHost: a\r\n\r\n"),
           std::string("G(T /livez HTTP/1.1\r\nHost: a\r\n\r\n"),
           std::string("GET livez HTTP/1.1\r\nHost: a\r\n\r\n"),
           std::string("GET /li\x01vez HTTP/1.1\r\nHost: a\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost : a\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n"),
           std::string(
               "GET /livez HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"),
           std::string("GET /livez http/1.1\r\nHost: a\r\n\r\n"),
           std::string("\r\n\r\n"),
       }) {
    EXPECT_EQ(parse(head), 400) << head;
  }
  EXPECT_EQ(parse("GET /livez HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(parse("GET /livez HTTP/0.9\r\n\r\n"), 505);
}

}  // namespace
}  // namespace tsk::agent
