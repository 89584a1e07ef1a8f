#include "tools/kube-emu/protobuf.h"

#include <cstdint>
#include <functional>
#include <string_view>

#include "tools/kube-emu/object_rules.h"

namespace tsk::kube_emu {

using nlohmann::json;

namespace {

// A protobuf wire-format reader over a byte range.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}

  bool done() const { return pos_ >= data_.size(); }
  bool failed() const { return failed_; }

  // Reads the next field header; false at the end or on malformed input.
  bool next(uint32_t& field, uint32_t& wire_type) {
    if (done() || failed_) return false;
    uint64_t key = 0;
    if (!varint(key)) return false;
    field = static_cast<uint32_t>(key >> 3);
    wire_type = static_cast<uint32_t>(key & 7);
    return field != 0 || fail();
  }
  bool varint(uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return fail();
      const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      out |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return fail();
  }
  bool bytes(std::string_view& out) {
    uint64_t len = 0;
    if (!varint(len) || len > data_.size() - pos_) return fail();
    out = data_.substr(pos_, len);
    pos_ += len;
    return true;
  }
  bool skip(uint32_t wire_type) {
    std::string_view ignored;
    uint64_t v = 0;
    switch (wire_type) {
      case 0:
        return varint(v);
      case 1:
        return advance(8);
      case 2:
        return bytes(ignored);
      case 5:
        return advance(4);
      default:
        return fail();
    }
  }

 private:
  bool advance(size_t n) {
    if (n > data_.size() - pos_) return fail();
    pos_ += n;
    return true;
  }
  bool fail() {
    failed_ = true;
    return false;
  }

  std::string_view data_;
  size_t pos_ = 0;
  bool failed_ = false;
};

using FieldHandler = std::function<bool(uint32_t field, uint32_t wire, WireReader& r)>;

// Walks a message, handing each field to `handler`; unknown fields are skipped when the handler
// returns false without consuming.
bool walk(std::string_view data, const FieldHandler& handler) {
  WireReader r(data);
  uint32_t field = 0;
  uint32_t wire = 0;
  while (r.next(field, wire)) {
    if (!handler(field, wire, r) && !r.failed() && !r.skip(wire)) return false;
  }
  return !r.failed();
}

bool readString(WireReader& r, uint32_t wire, json& out) {
  std::string_view s;
  if (wire != 2 || !r.bytes(s)) return false;
  out = std::string(s);
  return true;
}

// A map<string, string|bytes> entry {key = 1, value = 2}.
bool readMapEntry(WireReader& r, uint32_t wire, json& map, bool base64_values) {
  std::string_view entry;
  if (wire != 2 || !r.bytes(entry)) return false;
  std::string key;
  std::string value;
  const bool ok = walk(entry, [&](uint32_t f, uint32_t w, WireReader& er) {
    std::string_view s;
    if (w != 2 || (f != 1 && f != 2)) return false;
    if (!er.bytes(s)) return false;
    (f == 1 ? key : value) = std::string(s);
    return true;
  });
  if (!ok) return false;
  map[key] = base64_values ? base64Encode(value) : value;
  return true;
}

bool decodeObjectMeta(std::string_view data, json& meta) {
  meta = json::object();
  return walk(data, [&](uint32_t f, uint32_t w, WireReader& r) {
    static const char* kStringFields[] = {nullptr, "name", "generateName",   "namespace",
                                          nullptr, "uid",  "resourceVersion"};
    if (f >= 1 && f <= 6 && kStringFields[f] != nullptr)
      return readString(r, w, meta[kStringFields[f]]);
    if (f == 11 || f == 12) {
      json& m = meta[f == 11 ? "labels" : "annotations"];
      if (m.is_null()) m = json::object();
      return readMapEntry(r, w, m, false);
    }
    if (f == 14) {
      json v;
      if (!readString(r, w, v)) return false;
      meta["finalizers"].push_back(v);
      return true;
    }
    return false;
  });
}

bool decodeSecret(std::string_view data, json& obj) {
  return walk(data, [&](uint32_t f, uint32_t w, WireReader& r) {
    std::string_view sub;
    switch (f) {
      case 1:
        return w == 2 && r.bytes(sub) && decodeObjectMeta(sub, obj["metadata"]);
      case 2:
        if (!obj.contains("data")) obj["data"] = json::object();
        return readMapEntry(r, w, obj["data"], true);
      case 3:
        return readString(r, w, obj["type"]);
      case 4:
        if (!obj.contains("stringData")) obj["stringData"] = json::object();
        return readMapEntry(r, w, obj["stringData"], false);
      case 5: {
        uint64_t v = 0;
        if (w != 0 || !r.varint(v)) return false;
        obj["immutable"] = v != 0;
        return true;
      }
      default:
        return false;
    }
  });
}

bool decodeConfigMap(std::string_view data, json& obj) {
  return walk(data, [&](uint32_t f, uint32_t w, WireReader& r) {
    std::string_view sub;
    switch (f) {
      case 1:
        return w == 2 && r.bytes(sub) && decodeObjectMeta(sub, obj["metadata"]);
      case 2:
        if (!obj.contains("data")) obj["data"] = json::object();
        return readMapEntry(r, w, obj["data"], false);
      case 3:
        if (!obj.contains("binaryData")) obj["binaryData"] = json::object();
        return readMapEntry(r, w, obj["binaryData"], true);
      case 4: {
        uint64_t v = 0;
        if (w != 0 || !r.varint(v)) return false;
        obj["immutable"] = v != 0;
        return true;
      }
      default:
        return false;
    }
  });
}

bool decodeNamespace(std::string_view data, json& obj) {
  return walk(data, [&](uint32_t f, uint32_t w, WireReader& r) {
    std::string_view sub;
    if (f == 1) return w == 2 && r.bytes(sub) && decodeObjectMeta(sub, obj["metadata"]);
    return false;
  });
}

bool decodeAccessReview(std::string_view data, json& obj) {
  return walk(data, [&](uint32_t f, uint32_t w, WireReader& r) {
    std::string_view sub;
    if (f == 1) return w == 2 && r.bytes(sub) && decodeObjectMeta(sub, obj["metadata"]);
    if (f != 2 || w != 2 || !r.bytes(sub)) return false;
    obj["spec"] = json::object();
    return walk(sub, [&](uint32_t sf, uint32_t sw, WireReader& sr) {
      std::string_view attrs_bytes;
      if (sf != 1 || sw != 2 || !sr.bytes(attrs_bytes)) return false;
      json& attrs = obj["spec"]["resourceAttributes"];
      attrs = json::object();
      return walk(attrs_bytes, [&](uint32_t af, uint32_t aw, WireReader& ar) {
        static const char* kFields[] = {nullptr,   "namespace", "verb",        "group",
                                        "version", "resource",  "subresource", "name"};
        if (af < 1 || af > 7) return false;
        return readString(ar, aw, attrs[kFields[af]]);
      });
    });
  });
}

}  // namespace

Result<json> decodeKubernetesProtobuf(const std::string& bytes) {
  static constexpr std::string_view kMagic("k8s\0", 4);
  if (bytes.size() < kMagic.size() || std::string_view(bytes).substr(0, 4) != kMagic) {
    return Error{"protobuf body without the k8s envelope magic"};
  }
  std::string api_version;
  std::string kind;
  std::string_view raw;
  const std::string_view envelope = std::string_view(bytes).substr(kMagic.size());
  const bool ok = walk(envelope, [&](uint32_t f, uint32_t w, WireReader& r) {
    std::string_view sub;
    if (f == 1) {
      if (w != 2 || !r.bytes(sub)) return false;
      return walk(sub, [&](uint32_t tf, uint32_t tw, WireReader& tr) {
        std::string_view s;
        if ((tf != 1 && tf != 2) || tw != 2 || !tr.bytes(s)) return false;
        (tf == 1 ? api_version : kind) = std::string(s);
        return true;
      });
    }
    if (f == 2) return w == 2 && r.bytes(raw);
    return false;
  });
  if (!ok) return Error{"malformed protobuf envelope (runtime.Unknown)"};
  json obj = {{"apiVersion", api_version}, {"kind", kind}};
  bool decoded = false;
  if (kind == "Secret") {
    decoded = decodeSecret(raw, obj);
  } else if (kind == "ConfigMap") {
    decoded = decodeConfigMap(raw, obj);
  } else if (kind == "Namespace") {
    decoded = decodeNamespace(raw, obj);
  } else if (kind == "SelfSubjectAccessReview") {
    decoded = decodeAccessReview(raw, obj);
  } else {
    return Error{"kube-emu cannot decode protobuf for kind \"" + kind + "\"; send JSON"};
  }
  if (!decoded) return Error{"malformed protobuf " + kind};
  if (!obj.contains("metadata") || obj["metadata"].is_null()) obj["metadata"] = json::object();
  return obj;
}

}  // namespace tsk::kube_emu
