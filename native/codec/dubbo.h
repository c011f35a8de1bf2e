// Dubbo 2 header decoding; the native twin of src/protocols/dubbo/codec.ts (decodeHeader,
// decodeLazy).
#pragma once
#include <cstddef>
#include <cstdint>

#include "codec/codec.h"

namespace strait {
namespace codec {
namespace dubbo {

// Fills all kSlots of `out` for the frame at in.off; for a hessian2 request also the service,
// version and method, which open the body (see RpcCodec.decodeHeader).
void DecodeHeader(const Input& in, uint32_t max_frame, int32_t* out);
// Fills GROUP_* of the whole request frame at `off` from its attachments (METHOD is eager, so
// asking for it changes nothing). `len` is the buffer's length: nothing past it is read.
void DecodeLazy(const uint8_t* base, size_t len, size_t off, int32_t field, int32_t* out);

}  // namespace dubbo
}  // namespace codec
}  // namespace strait
