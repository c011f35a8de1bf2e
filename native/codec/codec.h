// The header-decode contract shared by every native codec. It mirrors src/protocols/types.ts
// slot for slot: a decoder fills kSlots int32 slots of a caller-owned Int32Array, so the data
// path allocates nothing per frame and hands TypeScript offsets into its own Buffer.
#pragma once
#include <cstddef>
#include <cstdint>

namespace strait {
namespace codec {

// Slot indexes: `H` in src/protocols/types.ts.
enum Slot : int {
  kState = 0,
  kFrameLen = 1,
  kKind = 2,
  kIdHi = 3,
  kIdLo = 4,
  kTimeoutMs = 5,
  kStatus = 6,
  kServiceOff = 7,
  kServiceLen = 8,
  kVersionOff = 9,
  kVersionLen = 10,
  kMethodOff = 11,
  kMethodLen = 12,
  kGroupOff = 13,
  kGroupLen = 14,
  kBodyOff = 15,
  kAppOff = 16,
  kAppLen = 17,
  kSerialization = 18,
  kSlots = 19,
};

// `FrameKind` in types.ts.
enum FrameKind : int32_t {
  kRequest = 1,
  kOneway = 2,
  kResponse = 3,
  kHeartbeat = 4,
  kHeartbeatResponse = 5,
  kEvent = 6,
};

// STATE values: 1 = whole frame, 0 = need more bytes, < 0 = `DecodeError` in types.ts.
enum State : int32_t {
  kWhole = 1,
  kNeedMore = 0,
  kBadMagic = -1,
  kTooLarge = -2,
  kBadHeader = -3,
  kUnknownType = -4,
  kBadBody = -5,
};

// What decodeLazy fills (`LazyField` in types.ts, numbered for the boundary).
enum LazyField : int32_t {
  kLazyMethod = 1,
  kLazyGroup = 2,
};

// Offset value of a lazy field that could not be decoded (types.ts: "-2 in *_OFF").
constexpr int32_t kUndecodable = -2;

// Protocol numbers at the JS boundary (`NativeProtocol` in src/protocols/native_codec.ts).
enum Protocol : int32_t {
  kBolt = 1,
  kDubbo = 2,
};

// The bytes a decoder may look at: [base + off, base + end). `base` is the start of the
// caller's Buffer, so slots hold offsets absolute into it.
struct Input {
  const uint8_t* base;
  size_t off;
  size_t end;
};

inline uint32_t U16(const uint8_t* p) { return (uint32_t(p[0]) << 8) | p[1]; }
inline uint32_t U32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

inline void Fill(int32_t* out, int32_t v) {
  for (int i = 0; i < kSlots; i++) out[i] = v;
}

}  // namespace codec
}  // namespace strait
