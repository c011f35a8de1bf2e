// SOFARPC Bolt v1 (proto 0x01) and v2 (proto 0x02) header decoding; the native twin of
// src/protocols/bolt/codec.ts (decodeHeader, decodeLazy).
#pragma once
#include <cstddef>
#include <cstdint>

#include "codec/codec.h"

namespace strait {
namespace codec {
namespace bolt {

// Fills all kSlots of `out` for the frame at in.off (see RpcCodec.decodeHeader).
void DecodeHeader(const Input& in, uint32_t max_frame, int32_t* out);
// Fills METHOD_* (from the hessian2 SofaRequest in the content) or GROUP_* (Bolt has none: the
// empty group) of the whole request frame at `off`, using the slots decodeHeader filled.
// `len` is the buffer's length: nothing past it is read, whatever `out` says.
void DecodeLazy(const uint8_t* base, size_t len, size_t off, int32_t field, int32_t* out);

}  // namespace bolt
}  // namespace codec
}  // namespace strait
