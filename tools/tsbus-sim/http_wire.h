#pragma once
// The server half of HTTP/1.1 as Go's net/http speaks it to LocalAPI clients, for tsbus-sim:
// request-head parsing, Go-ordered response heads, chunked framing, and the small Go-isms the
// LocalAPI relies on (strconv.ParseUint / ParseBool, FormValue, json.Indent with tabs,
// ipn.NotifyWatchOpt.String()).
//
//   auto req = parseRequestHead(head_text);        // std::nullopt: malformed (answer 400)
//   std::string mask = queryValue(req->query, "mask").value_or("");
//   out += responseHead(200, "OK", {{"Content-Type", "application/json"}}, /*chunked=*/true);
//   appendChunk(out, line);  ...  out += kLastChunk;
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tsk::tsbus_sim {

struct HttpRequest {
  std::string method;
  std::string target;  // as sent
  std::string path;    // target before '?'
  std::string query;   // target after '?', raw
  int minor_version = 1;
  std::vector<std::pair<std::string, std::string>> headers;

  // The first header with this name (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const;
};

// Parses "GET /x HTTP/1.1\r\nName: v\r\n..." (the head without the final blank line).
std::optional<HttpRequest> parseRequestHead(std::string_view head);

// FormValue-style: the first value of `name` in a raw query string, percent-decoded.
std::optional<std::string> queryValue(std::string_view query, std::string_view name);

// strconv.ParseUint(s, 10, 64).
std::optional<uint64_t> parseGoUint64(std::string_view s);
// strconv.ParseBool.
std::optional<bool> parseGoBool(std::string_view s);

// ipn.NotifyWatchOpt(bits).String() at H: "ipn.NotifyInitialStatus", or
// "(ipn.NotifyPeerChanges | ipn.NotifyInitialStatus)" for several bits.
std::string notifyWatchOptString(uint64_t bits);

// The HTTP Date header value for now (RFC 1123, GMT).
std::string httpDateNow();

using HeaderList = std::vector<std::pair<std::string, std::string>>;
// A response head the way Go writes it: status line, the handler's headers sorted by name, then
// Date, Content-Length or Transfer-Encoding. `content_length` < 0 with !chunked: no length.
std::string responseHead(int status, std::string_view reason, HeaderList headers, bool chunked,
                         int64_t content_length = -1);

// Chunked framing.
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";
void appendChunk(std::string& out, std::string_view data);  // "<hex>\r\n<data>\r\n"

// A streaming filter that re-indents compact JSON the way Go's json.Indent(prefix "", indent
// "\t") does (empty {} and [] stay compact). Feed it any split; it writes to `out`.
class JsonTabIndenter {
 public:
  explicit JsonTabIndenter(std::function<void(std::string_view)> out) : out_(std::move(out)) {}
  void feed(std::string_view in);
  void flush();  // hands buffered output to `out`

 private:
  void put(char c);
  void newline(int depth);
  std::function<void(std::string_view)> out_;
  std::string buf_;
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  bool open_pending_ = false;  // just wrote '{' or '[': newline unless the next byte closes it
};

// A streaming filter that passes on only the value of one top-level key of a JSON object (e.g.
// "InitialStatus" of a Notify line), whatever the split of the input.
class JsonMemberExtractor {
 public:
  JsonMemberExtractor(std::string key, std::function<void(std::string_view)> out)
      : key_(std::move(key)), out_(std::move(out)) {}
  void feed(std::string_view in);
  bool found() const { return state_ == State::Done || state_ == State::InValue; }

 private:
  enum class State { Outside, InValue, Done };
  std::string key_;
  std::function<void(std::string_view)> out_;
  State state_ = State::Outside;
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  std::string last_key_;      // the last depth-1 string (a key candidate)
  bool collecting_ = false;   // collecting a depth-1 string into last_key_
  bool key_matched_ = false;  // saw "key" then ':' is next
  int value_depth_ = 0;
  bool value_started_ = false;
};

}  // namespace tsk::tsbus_sim
