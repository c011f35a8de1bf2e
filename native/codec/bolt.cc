// Bolt, all fields big-endian (v2 inserts ver1 after proto and a switch byte after codec):
//   v1 request  proto type cmd:2 ver2 id:4 codec timeout:4 classLen:2 headerLen:2 contentLen:4  (22)
//   v1 response proto type cmd:2 ver2 id:4 codec status:2  classLen:2 headerLen:2 contentLen:4  (20)
// then the class name, a header map of (i32 len, key, i32 len, value) pairs, and the content.
#include "codec/bolt.h"

#include <algorithm>
#include <cstring>

#include "codec/hessian2.h"

namespace strait {
namespace codec {
namespace bolt {

namespace {

constexpr uint8_t kTypeResponse = 0;
constexpr uint8_t kTypeOneway = 2;
constexpr uint32_t kCmdHeartbeat = 0;
constexpr uint32_t kCmdRequest = 1;
constexpr uint32_t kCmdResponse = 2;
constexpr int32_t kCodecHessian2 = 1;

inline bool KeyIs(const uint8_t* k, int64_t len, const char* key, size_t key_len) {
  return len == int64_t(key_len) && std::memcmp(k, key, key_len) == 0;
}

// Frames the decoder writes offsets for are at most INT32_MAX long (max_frame is checked at the
// boundary), but an offset may still pass 2^31 in a huge buffer; wrap like an Int32Array store.
inline int32_t I32(int64_t v) { return int32_t(uint32_t(uint64_t(v))); }

}  // namespace

void DecodeHeader(const Input& in, uint32_t max_frame, int32_t* out) {
  Fill(out, -1);
  out[kFrameLen] = 0;
  const uint8_t* b = in.base + in.off;
  const size_t avail = in.end - in.off;
  if (avail < 1) {
    out[kState] = kNeedMore;
    return;
  }
  const uint8_t proto = b[0];
  if (proto != 1 && proto != 2) {
    out[kState] = kBadMagic;
    return;
  }
  const size_t v2 = proto == 2 ? 1 : 0;
  if (avail < 2 + v2) {
    out[kState] = kNeedMore;
    return;
  }
  const uint8_t type = b[1 + v2];
  if (type > kTypeOneway) {
    out[kState] = kUnknownType;
    return;
  }
  const bool resp = type == kTypeResponse;
  const size_t hdr = (resp ? 20 : 22) + 2 * v2;
  if (avail < hdr) {
    out[kState] = kNeedMore;
    return;
  }
  const uint32_t cmd = U16(b + 2 + v2);
  const size_t after = 10 + 2 * v2;  // timeout (request) or status (response)
  const size_t lens = after + (resp ? 2 : 4);
  const uint32_t class_len = U16(b + lens);
  const uint32_t header_len = U16(b + lens + 2);
  const uint32_t content_len = U32(b + lens + 4);
  // v2 switch bit 0: a CRC32 of the frame trails it.
  const uint64_t crc = v2 && (b[11] & 1) ? 4 : 0;
  const uint64_t frame_len = hdr + uint64_t(class_len) + header_len + content_len + crc;
  // Checked before anything is buffered: a frame announcing 4 GB is refused from its header.
  if (frame_len > max_frame) {
    out[kState] = kTooLarge;
    return;
  }
  int32_t kind;
  if (cmd == kCmdHeartbeat) {
    kind = resp ? kHeartbeatResponse : kHeartbeat;
  } else if (cmd == kCmdRequest && !resp) {
    kind = type == kTypeOneway ? kOneway : kRequest;
  } else if (cmd == kCmdResponse && resp) {
    kind = kResponse;
  } else {
    out[kState] = kUnknownType;
    return;
  }
  out[kFrameLen] = int32_t(frame_len);
  out[kKind] = kind;
  out[kIdHi] = 0;
  out[kIdLo] = int32_t(U32(b + 5 + v2));
  out[kSerialization] = b[9 + v2];
  out[kTimeoutMs] = resp ? 0 : std::max<int32_t>(0, int32_t(U32(b + after)));
  out[kStatus] = resp ? int32_t(U16(b + after)) : 0;
  const int64_t hdr_start = int64_t(in.off) + hdr + class_len;
  const int64_t body_off = hdr_start + header_len;
  out[kBodyOff] = I32(body_off);
  if (avail < frame_len) {
    out[kState] = kNeedMore;
    return;
  }

  if (kind == kRequest || kind == kOneway) {
    // Bolt has no group: the empty one comes for free. Service and version default to empty.
    out[kGroupOff] = I32(body_off);
    out[kGroupLen] = 0;
    out[kServiceOff] = I32(hdr_start);
    out[kServiceLen] = 0;
    out[kVersionOff] = I32(hdr_start);
    out[kVersionLen] = 0;
    const uint8_t* base = in.base;
    int64_t p = hdr_start;
    while (p < body_off) {
      if (p + 4 > body_off) {
        out[kState] = kBadHeader;
        return;
      }
      const int64_t kl = int32_t(U32(base + p));
      const int64_t k = p + 4;
      if (kl < 0 || k + kl + 4 > body_off) {
        out[kState] = kBadHeader;
        return;
      }
      int64_t vl = int32_t(U32(base + k + kl));
      const int64_t v = k + kl + 4;
      // SOFA's SimpleMapSerializer writes a null value as length -1 (sofa-bolt-node does too).
      if (vl == -1) vl = 0;
      if (vl < 0 || v + vl > body_off) {
        out[kState] = kBadHeader;
        return;
      }
      if (KeyIs(base + k, kl, "service", 7)) {
        // "<interface>:<version>": the version is what follows the last ':'.
        int64_t colon = v + vl - 1;
        while (colon >= v && base[colon] != ':') colon--;
        out[kServiceOff] = I32(v);
        if (colon >= v) {
          out[kServiceLen] = I32(colon - v);
          out[kVersionOff] = I32(colon + 1);
          out[kVersionLen] = I32(v + vl - colon - 1);
        } else {
          out[kServiceLen] = I32(vl);
        }
      } else if (KeyIs(base + k, kl, "sofa_head_method_name", 21)) {
        out[kMethodOff] = I32(v);
        out[kMethodLen] = I32(vl);
      } else if (KeyIs(base + k, kl, "sofa_head_target_app", 20)) {
        out[kAppOff] = I32(v);
        out[kAppLen] = I32(vl);
      }
      p = v + vl;
    }
  }
  out[kState] = kWhole;
}

// The method of a hessian2 request lives in the SofaRequest object that opens the content: a
// class definition naming the fields, then the object's values in that order. Field order is
// the writer's (Java declares targetServiceUniqueName first, sofa-bolt-node puts methodName
// first), so `methodName` is found by name. Both hessian2 dialects occur (see hessian2.h):
// final ('C' definition, object 0x60 or 'O' 0) and SOFA's default draft ('O' definition with a
// raw name, object 'o' 0); the first byte tells which.
void DecodeLazy(const uint8_t* base, size_t len, size_t off, int32_t field, int32_t* out) {
  if (field == kLazyGroup) {
    out[kGroupOff] = out[kBodyOff];
    out[kGroupLen] = 0;
    return;
  }
  out[kMethodOff] = kUndecodable;
  out[kMethodLen] = 0;
  if (out[kSerialization] != kCodecHessian2 || off >= len) return;
  const bool v2 = base[off] != 1;
  const int64_t crc = v2 && off + 11 < len && (base[off + 11] & 1) ? 4 : 0;
  const int64_t end = std::min<int64_t>(int64_t(off) + out[kFrameLen] - crc, int64_t(len));
  const int64_t body = out[kBodyOff];
  if (body < 0 || body >= end) return;
  const bool draft = base[body] == 'O';
  if (!draft && base[body] != 'C') return;

  hessian2::Reader r(base, size_t(body) + 1, size_t(end), draft ? hessian2::Dialect::kDraft : hessian2::Dialect::kFinal);
  hessian2::Span s;
  int32_t n;
  if (draft) {
    int32_t name_units;  // the class name: an int length, then its UTF-8 with no marker
    if (!r.ReadInt(&name_units) || name_units < 0 || !r.SkipRawUtf8(name_units, &s)) return;
  } else if (!r.ReadString(&s)) {
    return;
  }
  if (!r.ReadInt(&n) || n < 0) return;  // field count, then the field names
  int32_t idx = -1;
  for (int32_t i = 0; i < n; i++) {
    if (!r.ReadString(&s)) return;
    if (idx < 0 && hessian2::SpanEquals(base, s, "methodName", 10)) idx = i;
  }
  if (idx < 0 || r.AtEnd() || !r.AddClass(uint32_t(n))) return;
  // The object refers to definition 0: 0x60, or 'O' ('o' in the draft) followed by int 0 (0x90).
  const int tag = r.Peek();
  if (!draft && tag == 0x60) {
    r.Advance(1);
  } else if (tag == (draft ? 'o' : 'O') && r.pos() + 1 < size_t(end) && base[r.pos() + 1] == 0x90) {
    r.Advance(2);
  } else {
    return;
  }
  for (int32_t i = 0; i < idx; i++)
    if (!r.Skip()) return;
  if (!r.ReadString(&s)) return;
  out[kMethodOff] = I32(int64_t(s.off));
  out[kMethodLen] = I32(int64_t(s.len));
}

}  // namespace bolt
}  // namespace codec
}  // namespace strait
