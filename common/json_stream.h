#pragma once
// JsonLineStream: a resumable, validating, schema-free tokenizer for JSON Lines (one JSON object
// per '\n'-terminated line). Feed it bytes split anywhere; it calls its Sink with events as it
// reads them and never buffers a line: a token split across feed() calls is carried in a few
// scalar fields, so its memory is a constant (one key of at most max_key_bytes + 1 bytes) whatever
// the input.
//
// The Sink (a template parameter: the calls are direct, and inlined) decides what it reads:
//
//   json::Action onKey(std::string_view key);  // kRead: events for the value; kSkip: none
//   json::Action onBeginObject();             // kRead: events for its members; kSkip: none
//   json::Action onBeginArray();              // kRead: events for its items;   kSkip: none
//   void onEndObject();                       // only for containers the sink read
//   void onEndArray();
//   json::StringSlot onString();  // where to decode a string value (out == nullptr: skip it)
//   void onStringEnd();           // a string decoded into a slot is complete
//   void onNumber(const json::Number& n);
//   void onLiteral(json::Literal l);
//   void onLineEnd(const json::LineEnd& end);  // every line, blank, complete or not
//
// What the sink skips is still fully validated (strings scanned 16 bytes at a time, no copy), so
// a malformed line is always reported. The sink refuses a well-formed line (a shape it does not
// accept) by calling fail() from an event: no more events come for that line, and its LineEnd
// says malformed with that reason. Errors name the byte of the line where they were found.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tsk::json {

enum class Action : uint8_t { kRead, kSkip };
enum class Literal : uint8_t { kTrue, kFalse, kNull };

// A number as read: its integer value when it has one.
struct Number {
  uint64_t magnitude = 0;  // the integer's absolute value (when integer && !overflow)
  bool negative = false;
  bool integer = true;    // no fraction, no exponent
  bool overflow = false;  // integer, but its magnitude does not fit 64 bits
  // The value as int64 when it is an integer that fits.
  std::optional<int64_t> asInt64() const {
    if (!integer || overflow) return std::nullopt;
    if (negative) {
      if (magnitude > uint64_t{1} << 63) return std::nullopt;
      return static_cast<int64_t>(0 - magnitude);
    }
    if (magnitude > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(magnitude);
  }
};

// Where a string value is decoded. A value longer than `cap` bytes once decoded makes the line
// malformed ("a <name> value over <cap> bytes"): it is never cut.
struct StringSlot {
  std::string* out = nullptr;  // nullptr: skip the string without copying it
  size_t cap = 0;
  std::string_view name;  // in the error message
};

struct LineEnd {
  enum Kind : uint8_t {
    kBlank,      // nothing but whitespace
    kComplete,   // one well-formed object (the sink saw all of it)
    kMalformed,  // see reason
    kOversized,  // over max_line_bytes: skipped without being parsed
  };
  Kind kind = kBlank;
  size_t bytes = 0;  // the line's length, '\n' included
  std::string_view reason;
};

struct StreamOptions {
  uint64_t max_line_bytes = 1ull << 30;
  int max_depth = 64;         // at most 64: the nesting is one bit per level
  size_t max_key_bytes = 64;  // longer keys reach the sink cut to max_key_bytes + 1 bytes (so
                              // they equal no key of at most max_key_bytes bytes)
};

// The first '"', '\\' or control byte (< 0x20) in [p, end), or end.
inline const char* findStringSpecial(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i ctl = _mm_set1_epi8(0x1f);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hit =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                     _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
    const int mask = _mm_movemask_epi8(hit);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p < end) {
    const auto c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\' || c < 0x20) return p;
    ++p;
  }
  return end;
}

// Appends code point cp as UTF-8.
void appendUtf8(std::string& out, uint32_t cp);
inline size_t utf8Length(uint32_t cp) {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}
inline int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
// "unexpected 'x'" or "unexpected byte 0x0a".
void describeUnexpected(char* out, size_t size, char c);

template <class Sink>
class JsonLineStream {
 public:
  explicit JsonLineStream(Sink& sink, StreamOptions opts = {}) : sink_(sink), opts_(opts) {
    opts_.max_depth = std::clamp(opts_.max_depth, 1, 64);
    key_.reserve(opts_.max_key_bytes + 1);
  }
  JsonLineStream(const JsonLineStream&) = delete;
  JsonLineStream& operator=(const JsonLineStream&) = delete;

  void feed(std::string_view bytes) {
    const char* p = bytes.data();
    const char* const end = p + bytes.size();
    while (p < end) {
      const auto* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      const char* seg_end = nl ? nl : end;
      const uint64_t seg_len = static_cast<uint64_t>(seg_end - p);
      if (st_ != St::Discard) {
        if (line_bytes_ + seg_len > opts_.max_line_bytes) {
          oversized_ = true;
          st_ = St::Discard;
        } else {
          seg_begin_ = p;
          parse(p, seg_end);
        }
      }
      line_bytes_ += seg_len;
      if (!nl) break;
      endLine();
      p = nl + 1;
    }
  }

  // Drops a partial line (no LineEnd for it). Returns true if there was one.
  bool reset() {
    const bool partial = st_ != St::LineStart || oversized_;
    resetLine();
    return partial;
  }

  // Called by the sink from an event: the line is malformed for `what` (at the byte the event
  // is about). No more events for this line.
  void fail(const char* what) { failAt(pos_, what); }

  // The heap the stream holds (its key buffer).
  size_t heapBytes() const { return key_.capacity(); }

 private:
  // Where the machine is within a line.
  enum class St : uint8_t {
    LineStart,     // before the first non-blank byte
    KeyOrEnd,      // after '{'
    Key,           // after ',' in an object
    Colon,         // after a key
    Value,         // after ':' or ',' in an array
    ValueOrEnd,    // after '['
    Str,           // inside a string (key or value)
    Esc,           // after '\\' in a string
    Hex,           // inside \uXXXX
    LowBackslash,  // after a high surrogate: expect '\\'
    LowU,          // then 'u'
    Num,
    Lit,
    AfterValue,
    Trailer,  // after the top-level object
    Discard,  // malformed or oversized: drop bytes until '\n'
  };
  enum NumPart : uint8_t {
    kNumSign,
    kNumZero,
    kNumInt,
    kNumFracStart,
    kNumFrac,
    kNumExpStart,
    kNumExpSign,
    kNumExp
  };

  Sink& sink_;
  StreamOptions opts_;

  // Line state.
  St st_ = St::LineStart;
  uint64_t line_bytes_ = 0;  // bytes of the current line before the current segment
  const char* seg_begin_ = nullptr;
  const char* pos_ = nullptr;  // the byte the sink's current event is about (for fail())
  bool oversized_ = false;
  char reason_[192] = {};

  // Nesting: bit d of arrays_ is set when level d (0-based) is an array.
  uint64_t arrays_ = 0;
  int depth_ = 0;
  int skip_depth_ = 0;      // > 0: inside a container the sink skips, opened at this depth
  bool skip_next_ = false;  // the sink skips the value after the current key

  // The string being scanned.
  bool str_is_key_ = false;
  bool key_copy_ = false;  // the key is collected into key_ (split or escaped)
  std::string* str_out_ = nullptr;
  size_t str_cap_ = 0;
  std::string_view str_name_;
  std::string key_;
  uint32_t esc_code_ = 0;
  uint32_t esc_high_ = 0;  // pending high surrogate, 0 if none
  uint8_t esc_digits_ = 0;

  // The number or literal being scanned.
  NumPart num_part_ = kNumSign;
  Number num_;
  const char* lit_ = nullptr;
  uint8_t lit_len_ = 0;
  uint8_t lit_pos_ = 0;

  bool inArray() const { return (arrays_ >> (depth_ - 1)) & 1u; }
  bool failed() const { return st_ == St::Discard; }

  void resetLine() {
    st_ = St::LineStart;
    line_bytes_ = 0;
    oversized_ = false;
    depth_ = 0;
    arrays_ = 0;
    skip_depth_ = 0;
    skip_next_ = false;
  }

  unsigned long long errorOffset(const char* p) const {
    return line_bytes_ + static_cast<uint64_t>(p - seg_begin_);
  }
  void failAt(const char* p, const char* what) {
    std::snprintf(reason_, sizeof reason_, "%s at byte %llu of the line", what, errorOffset(p));
    st_ = St::Discard;
  }
  void failChar(const char* p, const char* expected) {
    char unexpected[32];
    describeUnexpected(unexpected, sizeof unexpected, *p);
    std::snprintf(reason_, sizeof reason_, "%s at byte %llu of the line: expected %s", unexpected,
                  errorOffset(p), expected);
    st_ = St::Discard;
  }

  void endLine() {
    LineEnd e;
    e.bytes = static_cast<size_t>(line_bytes_ + 1);
    if (oversized_) {
      e.kind = LineEnd::kOversized;
    } else if (st_ == St::LineStart) {
      e.kind = LineEnd::kBlank;
    } else if (st_ == St::Trailer) {
      e.kind = LineEnd::kComplete;
    } else {
      if (st_ != St::Discard) {
        const bool in_string = st_ == St::Str || st_ == St::Esc || st_ == St::Hex ||
                               st_ == St::LowBackslash || st_ == St::LowU;
        std::snprintf(reason_, sizeof reason_, "%s (line of %zu bytes)",
                      in_string ? "the line ended inside a string"
                                : "the line ended before the JSON object was complete",
                      e.bytes);
      }
      e.kind = LineEnd::kMalformed;
      e.reason = reason_;
    }
    resetLine();
    sink_.onLineEnd(e);
  }

  // ---- the machine --------------------------------------------------------------------------

  void parse(const char* p, const char* end) {
    while (p < end) {
      switch (st_) {
        case St::LineStart:
          p = onLineStart(p, end);
          break;
        case St::KeyOrEnd:
          p = onKeyOrEnd(p, end);
          break;
        case St::Key:
          p = onKey(p, end);
          break;
        case St::Colon:
          p = onColon(p, end);
          break;
        case St::Value:
          p = onValue(p, end, false);
          break;
        case St::ValueOrEnd:
          p = onValue(p, end, true);
          break;
        case St::Str:
          p = onStr(p, end);
          break;
        case St::Esc:
          p = onEsc(p);
          break;
        case St::Hex:
          p = onHex(p, end);
          break;
        case St::LowBackslash:
          if (*p != '\\') {
            failAt(p, "a lone UTF-16 high surrogate in a \\u escape");
            return;
          }
          st_ = St::LowU;
          ++p;
          break;
        case St::LowU:
          if (*p != 'u') {
            failAt(p, "a lone UTF-16 high surrogate in a \\u escape");
            return;
          }
          st_ = St::Hex;
          esc_code_ = 0;
          esc_digits_ = 0;
          ++p;
          break;
        case St::Num:
          p = onNum(p, end);
          break;
        case St::Lit:
          p = onLit(p, end);
          break;
        case St::AfterValue:
          p = onAfterValue(p, end);
          break;
        case St::Trailer:
          p = onTrailer(p, end);
          break;
        case St::Discard:
          return;
      }
    }
  }

  static bool isWs(char c) { return c == ' ' || c == '\t' || c == '\r'; }
  static const char* skipWs(const char* p, const char* end) {
    while (p < end && isWs(*p)) ++p;
    return p;
  }

  const char* onLineStart(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    if (*p != '{') {
      failChar(p, "'{': every line must be one JSON object");
      return end;
    }
    return openContainer(p, false);
  }

  const char* onKeyOrEnd(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    if (*p == '}') return closeContainer(p, false);
    return onKey(p, end);
  }

  const char* onKey(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    if (*p != '"') {
      failChar(p, "a '\"' starting an object key");
      return end;
    }
    ++p;
    str_is_key_ = true;
    st_ = St::Str;
    if (skip_depth_ != 0) {  // keys of a skipped object are only scanned
      key_copy_ = false;
      str_out_ = nullptr;
      return p;
    }
    // Fast path: the whole key is in this segment and has no escapes.
    const char* q = findStringSpecial(p, end);
    if (q < end && *q == '"') {
      pos_ = p;
      deliverKey(std::string_view(p, static_cast<size_t>(q - p)));
      return failed() ? end : q + 1;
    }
    key_copy_ = true;
    key_.clear();
    str_out_ = &key_;
    str_cap_ = opts_.max_key_bytes + 1;
    return p;
  }

  void deliverKey(std::string_view key) {
    const Action a = sink_.onKey(key);
    if (failed()) return;
    skip_next_ = a == Action::kSkip;
    st_ = St::Colon;
  }

  const char* onColon(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    if (*p != ':') {
      failChar(p, "':' after an object key");
      return end;
    }
    st_ = St::Value;
    return p + 1;
  }

  const char* onValue(const char* p, const char* end, bool may_close) {
    p = skipWs(p, end);
    if (p == end) return p;
    const char c = *p;
    if (may_close && c == ']') return closeContainer(p, true);
    switch (c) {
      case '"':
        return startString(p);
      case '{':
        return openContainer(p, false);
      case '[':
        return openContainer(p, true);
      case 't':
        return startLit(p, end, "true", 4);
      case 'f':
        return startLit(p, end, "false", 5);
      case 'n':
        return startLit(p, end, "null", 4);
      case '-':
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6':
      case '7':
      case '8':
      case '9':
        num_part_ = kNumSign;
        num_ = Number{};
        st_ = St::Num;
        return p;
      default:
        failChar(p, "a JSON value");
        return end;
    }
  }

  // Whether the value starting now is one the sink skips (and clears the key's skip).
  bool quietValue() {
    const bool quiet = skip_depth_ != 0 || skip_next_;
    skip_next_ = false;
    return quiet;
  }

  const char* onAfterValue(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    switch (*p) {
      case ',':
        st_ = inArray() ? St::Value : St::Key;
        return p + 1;
      case '}':
        return closeContainer(p, false);
      case ']':
        return closeContainer(p, true);
      default:
        failChar(p, inArray() ? "',' or ']'" : "',' or '}'");
        return end;
    }
  }

  const char* onTrailer(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    failChar(p, "the end of the line after the JSON object");
    return end;
  }

  // ---- containers ---------------------------------------------------------------------------

  const char* openContainer(const char* p, bool is_array) {
    if (depth_ >= opts_.max_depth) {
      char what[64];
      std::snprintf(what, sizeof what, "JSON nested deeper than %d levels", opts_.max_depth);
      failAt(p, what);
      return p + 1;
    }
    const bool quiet = quietValue();
    if (is_array) {
      arrays_ |= uint64_t{1} << depth_;
    } else {
      arrays_ &= ~(uint64_t{1} << depth_);
    }
    ++depth_;
    st_ = is_array ? St::ValueOrEnd : St::KeyOrEnd;
    if (quiet) {
      if (skip_depth_ == 0) skip_depth_ = depth_;
      return p + 1;
    }
    pos_ = p;
    const Action a = is_array ? sink_.onBeginArray() : sink_.onBeginObject();
    if (a == Action::kSkip) skip_depth_ = depth_;
    return p + 1;
  }

  const char* closeContainer(const char* p, bool is_array) {
    if (inArray() != is_array) {
      failChar(p, is_array ? "'}' closing an object" : "']' closing an array");
      return p + 1;
    }
    st_ = depth_ == 1 ? St::Trailer : St::AfterValue;
    if (skip_depth_ != 0) {
      if (depth_ == skip_depth_) skip_depth_ = 0;
      --depth_;
      return p + 1;
    }
    --depth_;
    pos_ = p;
    if (is_array) {
      sink_.onEndArray();
    } else {
      sink_.onEndObject();
    }
    return p + 1;
  }

  // ---- strings ------------------------------------------------------------------------------

  const char* startString(const char* p) {
    str_is_key_ = false;
    st_ = St::Str;
    if (quietValue()) {
      str_out_ = nullptr;
      return p + 1;
    }
    pos_ = p;
    const StringSlot slot = sink_.onString();
    str_out_ = slot.out;
    str_cap_ = slot.cap;
    str_name_ = slot.name;
    if (str_out_) str_out_->clear();
    return p + 1;
  }

  void failOverLong(const char* at) {
    char what[96];
    std::snprintf(what, sizeof what, "a %.*s value over %zu bytes",
                  static_cast<int>(std::min<size_t>(str_name_.size(), 64)), str_name_.data(),
                  str_cap_);
    failAt(at, what);
  }

  // Keys are cut silently (a cut key matches nothing); a value that does not fit makes the line
  // malformed. Returns false then.
  bool appendKept(const char* p, size_t len) {
    const size_t room = str_cap_ - std::min(str_cap_, str_out_->size());
    if (len > room && !str_is_key_) {
      failOverLong(p + room);
      return false;
    }
    str_out_->append(p, std::min(room, len));
    return true;
  }

  const char* onStr(const char* p, const char* end) {
    const char* q = findStringSpecial(p, end);
    if (str_out_ && q > p && !appendKept(p, static_cast<size_t>(q - p))) return end;
    if (q == end) return end;
    if (*q == '"') {
      finishString(q);
      return failed() ? end : q + 1;
    }
    if (*q == '\\') {
      st_ = St::Esc;
      return q + 1;
    }
    failAt(q, "a raw control character inside a string");
    return end;
  }

  bool appendDecoded(uint32_t cp, const char* at) {
    if (!str_out_) return true;
    if (str_out_->size() + utf8Length(cp) > str_cap_) {
      if (str_is_key_) return true;
      failOverLong(at);
      return false;
    }
    appendUtf8(*str_out_, cp);
    return true;
  }

  const char* onEsc(const char* p) {
    char out;
    switch (*p) {
      case '"':
        out = '"';
        break;
      case '\\':
        out = '\\';
        break;
      case '/':
        out = '/';
        break;
      case 'b':
        out = '\b';
        break;
      case 'f':
        out = '\f';
        break;
      case 'n':
        out = '\n';
        break;
      case 'r':
        out = '\r';
        break;
      case 't':
        out = '\t';
        break;
      case 'u':
        st_ = St::Hex;
        esc_code_ = 0;
        esc_digits_ = 0;
        esc_high_ = 0;
        return p + 1;
      default:
        failAt(p, "an invalid escape sequence in a string");
        return p + 1;
    }
    if (!appendDecoded(static_cast<unsigned char>(out), p)) return p + 1;
    st_ = St::Str;
    return p + 1;
  }

  const char* onHex(const char* p, const char* end) {
    while (p < end && esc_digits_ < 4) {
      const int v = hexValue(*p);
      if (v < 0) {
        failAt(p, "an invalid \\u escape in a string");
        return end;
      }
      esc_code_ = esc_code_ << 4 | static_cast<uint32_t>(v);
      ++esc_digits_;
      ++p;
    }
    if (esc_digits_ < 4) return p;
    if (esc_high_ != 0) {
      if (esc_code_ < 0xdc00 || esc_code_ > 0xdfff) {
        failAt(p, "a lone UTF-16 high surrogate in a \\u escape");
        return end;
      }
      const uint32_t cp = 0x10000 + ((esc_high_ - 0xd800) << 10) + (esc_code_ - 0xdc00);
      esc_high_ = 0;
      if (!appendDecoded(cp, p)) return end;
      st_ = St::Str;
      return p;
    }
    if (esc_code_ >= 0xd800 && esc_code_ <= 0xdbff) {
      esc_high_ = esc_code_;
      esc_code_ = 0;
      esc_digits_ = 0;
      st_ = St::LowBackslash;
      return p;
    }
    if (esc_code_ >= 0xdc00 && esc_code_ <= 0xdfff) {
      failAt(p, "a lone UTF-16 low surrogate in a \\u escape");
      return end;
    }
    if (!appendDecoded(esc_code_, p)) return end;
    st_ = St::Str;
    return p;
  }

  void finishString(const char* at) {
    if (str_is_key_) {
      st_ = St::Colon;
      if (key_copy_) {
        key_copy_ = false;
        str_out_ = nullptr;
        pos_ = at;
        deliverKey(key_);
      }
      return;
    }
    st_ = St::AfterValue;
    if (str_out_) {
      str_out_ = nullptr;
      pos_ = at;
      sink_.onStringEnd();
    }
  }

  // ---- numbers and literals -----------------------------------------------------------------

  const char* onNum(const char* p, const char* end) {
    for (; p < end; ++p) {
      const char c = *p;
      const bool digit = c >= '0' && c <= '9';
      switch (num_part_) {
        case kNumSign:
          if (c == '-' && !num_.negative) {
            num_.negative = true;
            continue;
          }
          if (!digit) return numError(p);
          num_part_ = c == '0' ? kNumZero : kNumInt;
          num_.magnitude = static_cast<uint64_t>(c - '0');
          continue;
        case kNumZero:
          if (c == '.') {
            num_part_ = kNumFracStart;
            num_.integer = false;
            continue;
          }
          if (c == 'e' || c == 'E') {
            num_part_ = kNumExpStart;
            num_.integer = false;
            continue;
          }
          if (digit) {
            failChar(p, "no digit after a leading 0 in a number");
            return p + 1;
          }
          return finishNumber(p);
        case kNumInt:
          if (digit) {
            const auto d = static_cast<uint64_t>(c - '0');
            if (num_.magnitude > (UINT64_MAX - d) / 10) num_.overflow = true;
            num_.magnitude = num_.magnitude * 10 + d;
            continue;
          }
          if (c == '.') {
            num_part_ = kNumFracStart;
            num_.integer = false;
            continue;
          }
          if (c == 'e' || c == 'E') {
            num_part_ = kNumExpStart;
            num_.integer = false;
            continue;
          }
          return finishNumber(p);
        case kNumFracStart:
          if (!digit) return numError(p);
          num_part_ = kNumFrac;
          continue;
        case kNumFrac:
          if (digit) continue;
          if (c == 'e' || c == 'E') {
            num_part_ = kNumExpStart;
            continue;
          }
          return finishNumber(p);
        case kNumExpStart:
          if (c == '+' || c == '-') {
            num_part_ = kNumExpSign;
            continue;
          }
          if (!digit) return numError(p);
          num_part_ = kNumExp;
          continue;
        case kNumExpSign:
          if (!digit) return numError(p);
          num_part_ = kNumExp;
          continue;
        case kNumExp:
          if (digit) continue;
          return finishNumber(p);
      }
    }
    return p;
  }

  const char* numError(const char* p) {
    failChar(p, "a digit in a number");
    return p + 1;
  }

  // The number ended just before p (p is not consumed: a number is never the top-level value,
  // so a delimiter always follows it on the line).
  const char* finishNumber(const char* p) {
    st_ = St::AfterValue;
    if (quietValue()) return p;
    pos_ = p;
    sink_.onNumber(num_);
    return p;
  }

  const char* startLit(const char* p, const char* end, const char* word, uint8_t len) {
    if (end - p >= len) {
      // The last four bytes of the word ("true", "null", "alse"), after its first byte.
      uint32_t got;
      uint32_t want;
      std::memcpy(&got, p + len - 4, 4);
      std::memcpy(&want, word + len - 4, 4);
      if (got != want || *p != *word) {
        failAt(p, "an invalid literal (expected true, false or null)");
        return end;
      }
      st_ = St::AfterValue;
      pos_ = p;
      finishLiteral(word[0]);
      return failed() ? end : p + len;
    }
    lit_ = word;
    lit_len_ = len;
    lit_pos_ = 0;
    st_ = St::Lit;
    return p;
  }

  const char* onLit(const char* p, const char* end) {
    while (p < end && lit_pos_ < lit_len_) {
      if (*p != lit_[lit_pos_]) {
        failAt(p, "an invalid literal (expected true, false or null)");
        return end;
      }
      ++lit_pos_;
      ++p;
    }
    if (lit_pos_ == lit_len_) {
      st_ = St::AfterValue;
      pos_ = p;
      finishLiteral(lit_[0]);
    }
    return p;
  }

  void finishLiteral(char first) {
    if (quietValue()) return;
    sink_.onLiteral(first == 't'   ? Literal::kTrue
                    : first == 'f' ? Literal::kFalse
                                   : Literal::kNull);
  }
};

}  // namespace tsk::json
