// JsonLineStream (common/json_stream.h) on its own: the events it yields, with a sink that reads
// or skips by key, at every split of the input; what a skipped value still validates; bounds.
#include "common/json_stream.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace tsk::json {
namespace {

// Records every event as text. Reads every value except those of the keys in `skip`; decodes
// strings into a slot of `cap` bytes unless their key is in `unkept`.
class Recorder {
 public:
  explicit Recorder(std::set<std::string> skip = {}, std::set<std::string> unkept = {},
                    size_t cap = 64)
      : skip_(std::move(skip)), unkept_(std::move(unkept)), cap_(cap) {}

  JsonLineStream<Recorder>* stream = nullptr;
  std::vector<std::string> events;
  std::string fail_on_key;  // the sink refuses the line at this key

  Action onKey(std::string_view key) {
    events.push_back("key " + std::string(key));
    key_ = std::string(key);
    if (key_ == fail_on_key) stream->fail("a refused key");
    return skip_.count(key_) ? Action::kSkip : Action::kRead;
  }
  Action onBeginObject() {
    events.emplace_back("{");
    return Action::kRead;
  }
  Action onBeginArray() {
    events.emplace_back("[");
    return Action::kRead;
  }
  void onEndObject() { events.emplace_back("}"); }
  void onEndArray() { events.emplace_back("]"); }
  StringSlot onString() {
    if (unkept_.count(key_)) {
      events.emplace_back("string (skipped)");
      return {};
    }
    return {&str_, cap_, "test"};
  }
  void onStringEnd() { events.push_back("string " + str_); }
  void onNumber(const Number& n) {
    const auto v = n.asInt64();
    events.push_back(v ? "int " + std::to_string(*v)
                       : std::string("number") + (n.integer ? " (overflow)" : " (not integer)"));
  }
  void onLiteral(Literal l) {
    events.emplace_back(l == Literal::kTrue ? "true" : l == Literal::kFalse ? "false" : "null");
  }
  void onLineEnd(const LineEnd& e) {
    static const char* const kKinds[] = {"blank", "complete", "malformed", "oversized"};
    std::string s = std::string("end ") + kKinds[e.kind] + " " + std::to_string(e.bytes);
    if (!e.reason.empty()) s += ": " + std::string(e.reason);
    events.push_back(s);
  }

 private:
  std::set<std::string> skip_;
  std::set<std::string> unkept_;
  size_t cap_;
  std::string key_;
  std::string str_;
};

std::vector<std::string> run(Recorder r, std::string_view input, size_t piece = 0,
                             StreamOptions opts = {}) {
  JsonLineStream<Recorder> s(r, opts);
  r.stream = &s;
  if (piece == 0) {
    s.feed(input);
  } else {
    for (size_t off = 0; off < input.size(); off += piece) s.feed(input.substr(off, piece));
  }
  return r.events;
}

// The events of `input` fed whole, and the same when it is cut at any one point.
std::vector<std::string> runAtEverySplit(const Recorder& r, std::string_view input) {
  const std::vector<std::string> whole = run(r, input);
  for (size_t cut = 1; cut < input.size(); ++cut) {
    Recorder copy = r;
    JsonLineStream<Recorder> s(copy);
    copy.stream = &s;
    s.feed(input.substr(0, cut));
    s.feed(input.substr(cut));
    EXPECT_EQ(copy.events, whole) << "cut at " << cut;
  }
  EXPECT_EQ(run(r, input, 1), whole) << "one byte at a time";
  return whole;
}

TEST(JsonLineStream, YieldsEveryValueOfALine) {
  const std::string line =
      "{\"a\":\"x\\u00e9\\ud83d\\ude00\\n\",\"b\":[1,-0,-9223372036854775808,2.5,"
      "18446744073709551616,true,false,null],\"c\":{}}\n";
  const auto events = runAtEverySplit(Recorder(), line + "\n");
  const std::vector<std::string> want = {"{",
                                         "key a",
                                         "string x\xc3\xa9\xf0\x9f\x98\x80\n",
                                         "key b",
                                         "[",
                                         "int 1",
                                         "int 0",
                                         "int -9223372036854775808",
                                         "number (not integer)",
                                         "number (overflow)",
                                         "true",
                                         "false",
                                         "null",
                                         "]",
                                         "key c",
                                         "{",
                                         "}",
                                         "}",
                                         "end complete " + std::to_string(line.size()),
                                         "end blank 1"};
  EXPECT_EQ(events, want);
}

TEST(JsonLineStream, ASkippedValueYieldsNothingButIsValidated) {
  const Recorder r({"skip"}, {"unkept"});
  const std::string line =
      R"({"skip":{"k":[1,{"x":"y"}],"z":"\u0041"},"unkept":"long string","n":1})"
      "\n";
  EXPECT_EQ(
      runAtEverySplit(r, line),
      (std::vector<std::string>{"{", "key skip", "key unkept", "string (skipped)", "key n", "int 1",
                                "}", "end complete " + std::to_string(line.size())}));
  const auto bad = run(r, "{\"skip\":{\"k\":[1,}]}}\n");
  ASSERT_EQ(bad.size(), 3u);
  EXPECT_EQ(bad[2].rfind("end malformed 21: unexpected '}' at byte 16 of the line", 0), 0u)
      << bad[2];
  const auto bad_escape = run(r, "{\"skip\":\"\\x\"}\n");
  EXPECT_NE(bad_escape.back().find("invalid escape"), std::string::npos) << bad_escape.back();
}

TEST(JsonLineStream, MalformedLinesAndTheLineAfterThem) {
  for (const char* line :
       {"[1]", "{\"a\":1", "{\"a\" 1}", "{\"a\":tru}", "{\"a\":01}", "{\"a\":\"\t\"}",
        "{\"a\":\"\\ud800x\"}", "{\"a\":1}x", "{\"a\":[1}", "{\"a\":\"abc"}) {
    const auto events = run(Recorder(), std::string(line) + "\n{}\n");
    ASSERT_GE(events.size(), 4u) << line;
    EXPECT_EQ(events[events.size() - 4].rfind("end malformed", 0), 0u) << line;
    EXPECT_EQ(events[events.size() - 1], "end complete 3") << line;
  }
}

TEST(JsonLineStream, AKeptStringOverItsCapIsMalformedAndALongKeyIsCut) {
  const std::string key(100, 'k');
  const auto events = run(Recorder({}, {}, 4), "{\"" + key + "\":\"abcd\",\"b\":\"abcde\"}\n", 7,
                          {.max_key_bytes = 10});
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[1], "key " + std::string(11, 'k'));
  EXPECT_EQ(events[2], "string abcd");
  EXPECT_EQ(events[3], "key b");
  EXPECT_NE(events[4].find("a test value over 4 bytes"), std::string::npos) << events[4];
}

TEST(JsonLineStream, TheSinkCanRefuseALine) {
  Recorder r;
  r.fail_on_key = "no";
  const auto events = run(r, "{\"a\":1,\"no\":2,\"c\":3}\n{\"c\":3}\n");
  EXPECT_EQ(events,
            (std::vector<std::string>{"{", "key a", "int 1", "key no",
                                      "end malformed 21: a refused key at byte 8 of the line", "{",
                                      "key c", "int 3", "}", "end complete 8"}));
}

TEST(JsonLineStream, NestingIsBounded) {
  const auto nested = [](int depth) {
    std::string s = "{\"a\":";
    for (int i = 1; i < depth; ++i) s += "[";
    s += "1";
    for (int i = 1; i < depth; ++i) s += "]";
    return s + "}\n";
  };
  Recorder skip_all({"a"});
  EXPECT_EQ(run(skip_all, nested(64)).back().rfind("end complete", 0), 0u);
  EXPECT_NE(run(skip_all, nested(65)).back().find("deeper than 64"), std::string::npos);
  EXPECT_NE(run(Recorder(), nested(9), 0, {.max_depth = 8}).back().find("deeper than 8"),
            std::string::npos);
}

TEST(JsonLineStream, OversizedLinesResetAndErrorOrigin) {
  // Fed whole, the line is found too long before it is parsed; fed in pieces, after the events
  // of its first piece.
  const std::string input = "{\"a\":\"0123456789\"}\n{}\n";
  EXPECT_EQ(run(Recorder(), input, 0, {.max_line_bytes = 10}),
            (std::vector<std::string>{"end oversized 19", "{", "}", "end complete 3"}));
  EXPECT_EQ(
      run(Recorder(), input, 5, {.max_line_bytes = 10}),
      (std::vector<std::string>{"{", "key a", "end oversized 19", "{", "}", "end complete 3"}));

  Recorder r;
  JsonLineStream<Recorder> s(r);
  r.stream = &s;
  EXPECT_FALSE(s.reset());
  s.feed("  ");
  EXPECT_FALSE(s.reset());  // whitespace alone is a blank line so far: nothing dropped
  s.feed("{\"a\":");
  EXPECT_TRUE(s.reset());
  s.feed("1}\n");
  EXPECT_NE(r.events.back().find("end malformed"), std::string::npos) << r.events.back();
}

}  // namespace
}  // namespace tsk::json
