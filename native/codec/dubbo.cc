// Dubbo 2: a 16-byte header — magic 0xdabb, flags (0x80 request, 0x40 two-way, 0x20 event, low
// 5 bits serialization), status, request id int64, body length int32 — then the body. A hessian2
// request body is: dubbo version, service path, service version, method, parameter descriptor,
// the arguments, and the attachments map. The first four are cheap and decoded with the header;
// the group sits in the attachments, past the arguments, so it is decoded only on demand.
#include "codec/dubbo.h"

#include <algorithm>

#include "codec/hessian2.h"

namespace strait {
namespace codec {
namespace dubbo {

namespace {

constexpr size_t kHeader = 16;
constexpr uint8_t kFlagRequest = 0x80;
constexpr uint8_t kFlagTwoway = 0x40;
constexpr uint8_t kFlagEvent = 0x20;
constexpr uint8_t kSerializationMask = 0x1f;
constexpr int32_t kHessian2 = 2;

inline int32_t I32(int64_t v) { return int32_t(uint32_t(uint64_t(v))); }

}  // namespace

void DecodeHeader(const Input& in, uint32_t max_frame, int32_t* out) {
  Fill(out, -1);
  out[kFrameLen] = 0;
  const uint8_t* b = in.base + in.off;
  const size_t avail = in.end - in.off;
  // A wrong magic is refused as soon as its bytes are in, before buffering anything more.
  if ((avail >= 1 && b[0] != 0xda) || (avail >= 2 && b[1] != 0xbb)) {
    out[kState] = kBadMagic;
    return;
  }
  if (avail < kHeader) {
    out[kState] = kNeedMore;
    return;
  }
  const uint8_t flag = b[2];
  const int32_t body_len = int32_t(U32(b + 12));
  if (body_len < 0) {
    out[kState] = kBadHeader;
    return;
  }
  const uint64_t frame_len = kHeader + uint64_t(body_len);
  if (frame_len > max_frame) {
    out[kState] = kTooLarge;
    return;
  }
  const bool is_req = (flag & kFlagRequest) != 0;
  int32_t kind;
  if (flag & kFlagEvent) {
    // Heartbeats are two-way events; a one-way event (e.g. "readonly") needs no answer.
    // Providers also send heartbeats unprompted on idle connections.
    if (is_req)
      kind = (flag & kFlagTwoway) ? kHeartbeat : kEvent;
    else
      kind = kHeartbeatResponse;
  } else if (is_req) {
    kind = (flag & kFlagTwoway) ? kRequest : kOneway;
  } else {
    kind = kResponse;
  }
  const int32_t serialization = flag & kSerializationMask;
  out[kFrameLen] = int32_t(frame_len);
  out[kKind] = kind;
  out[kIdHi] = int32_t(U32(b + 4));
  out[kIdLo] = int32_t(U32(b + 8));
  out[kTimeoutMs] = 0;
  out[kStatus] = is_req ? 0 : b[3];
  out[kSerialization] = serialization;
  out[kBodyOff] = I32(int64_t(in.off) + kHeader);
  if (avail < frame_len) {
    out[kState] = kNeedMore;
    return;
  }

  if (kind == kRequest || kind == kOneway) {
    // Routing needs the body's strings; only hessian2 is understood (as by Envoy's dubbo_proxy).
    if (serialization != kHessian2) {
      out[kState] = kBadBody;
      return;
    }
    hessian2::Reader r(in.base, in.off + kHeader, in.off + size_t(frame_len));
    hessian2::Span dubbo_version, service, version, method;
    if (!r.ReadString(&dubbo_version) || !r.ReadString(&service)) {
      out[kState] = kBadBody;
      return;
    }
    out[kServiceOff] = I32(int64_t(service.off));
    out[kServiceLen] = I32(int64_t(service.len));
    if (!r.ReadString(&version)) {
      out[kState] = kBadBody;
      return;
    }
    out[kVersionOff] = I32(int64_t(version.off));
    out[kVersionLen] = I32(int64_t(version.len));
    if (!r.ReadString(&method)) {
      out[kState] = kBadBody;
      return;
    }
    out[kMethodOff] = I32(int64_t(method.off));
    out[kMethodLen] = I32(int64_t(method.len));
  }
  out[kState] = kWhole;
}

// Walks past the parameter descriptor and every argument to the attachments map and finds
// `group` there. An absent group is the empty group (at BODY_OFF, like dubbo/codec.ts); a body
// that cannot be walked gets kUndecodable.
void DecodeLazy(const uint8_t* base, size_t len, size_t off, int32_t field, int32_t* out) {
  if (field != kLazyGroup) return;  // the method is decoded with the header
  out[kGroupOff] = kUndecodable;
  out[kGroupLen] = 0;
  const int64_t end = std::min<int64_t>(int64_t(off) + out[kFrameLen], int64_t(len));
  const int64_t method_off = out[kMethodOff];
  if (method_off < 0) return;
  const int64_t start = method_off + out[kMethodLen];
  if (start < 0 || start >= end) return;

  hessian2::Reader r(base, size_t(start), size_t(end));
  hessian2::Span s;
  if (!r.ReadString(&s)) return;  // the parameter descriptor, e.g. "Ljava/lang/String;I"
  const int32_t nargs = hessian2::CountJvmParams(base + s.off, s.len);
  if (nargs < 0) return;
  for (int32_t i = 0; i < nargs; i++)
    if (!r.Skip()) return;
  bool absent = false;
  switch (r.Peek()) {
    case -1:   // no attachments at all (very old clients)
    case 'N':  // null attachments
      absent = true;
      break;
    case 'H':
      r.Advance(1);
      break;
    case 'M':  // typed map: its type name first
      r.Advance(1);
      if (!r.ReadString(&s)) return;
      break;
    default:
      return;
  }
  while (!absent && !r.AtEnd() && r.Peek() != 'Z') {
    // Keys are strings in practice; anything else is skipped along with its value.
    if (r.ReadString(&s)) {
      if (hessian2::SpanEquals(base, s, "group", 5)) {
        if (!r.ReadString(&s)) return;
        out[kGroupOff] = I32(int64_t(s.off));
        out[kGroupLen] = I32(int64_t(s.len));
        return;
      }
    } else if (!r.Skip()) {
      return;
    }
    if (!r.Skip()) return;
  }
  // No group key (a map cut short by the frame's end reads as ended: the group is not in it).
  out[kGroupOff] = out[kBodyOff];
  out[kGroupLen] = 0;
}

}  // namespace dubbo
}  // namespace codec
}  // namespace strait
