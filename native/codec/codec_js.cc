#include "codec/codec_js.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

#include "codec/bolt.h"
#include "codec/codec.h"
#include "codec/dubbo.h"

namespace strait {
namespace codec {

namespace {

using HeaderFn = void (*)(const Input&, uint32_t, int32_t*);
using LazyFn = void (*)(const uint8_t*, size_t, size_t, int32_t, int32_t*);

// Argument checks. A failed check leaves a pending JS exception and returns false; the caller
// returns nullptr, which Node turns into that exception.
bool Fail(napi_env env, bool range, const char* fn, const char* name, const char* what) {
  std::string msg = std::string(fn) + ": " + name + " " + what;
  if (range)
    napi_throw_range_error(env, nullptr, msg.c_str());
  else
    napi_throw_type_error(env, nullptr, msg.c_str());
  return false;
}

bool ArgInt(napi_env env, napi_value v, const char* fn, const char* name, int64_t min, int64_t max, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return Fail(env, false, fn, name, "must be a number");
  if (!(d >= double(min) && d <= double(max)) || d != std::floor(d))
    return Fail(env, true, fn, name, ("must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]").c_str());
  *out = int64_t(d);
  return true;
}

bool ArgProtocol(napi_env env, napi_value v, const char* fn, HeaderFn* header, LazyFn* lazy) {
  int64_t p;
  if (!ArgInt(env, v, fn, "protocol", kBolt, kDubbo, &p)) return false;
  if (p == kBolt) {
    if (header) *header = bolt::DecodeHeader;
    if (lazy) *lazy = bolt::DecodeLazy;
  } else {
    if (header) *header = dubbo::DecodeHeader;
    if (lazy) *lazy = dubbo::DecodeLazy;
  }
  return true;
}

bool ArgBytes(napi_env env, napi_value v, const char* fn, const uint8_t** data, size_t* len) {
  napi_typedarray_type type;
  void* p = nullptr;
  if (napi_get_typedarray_info(env, v, &type, len, &p, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
    return Fail(env, false, fn, "buf", "must be a Buffer or Uint8Array");
  *data = static_cast<const uint8_t*>(p);
  return true;
}

// An Int32Array of at least `min_len` slots (`data` already points at its first element).
bool ArgSlots(napi_env env, napi_value v, const char* fn, size_t min_len, int32_t** data, size_t* len) {
  napi_typedarray_type type;
  void* p = nullptr;
  if (napi_get_typedarray_info(env, v, &type, len, &p, nullptr, nullptr) != napi_ok || type != napi_int32_array)
    return Fail(env, false, fn, "out", "must be an Int32Array");
  if (*len < min_len) return Fail(env, true, fn, "out", "is shorter than H.SIZE slots");
  *data = static_cast<int32_t*>(p);
  return true;
}

// Decodes frames from `off` into consecutive records of `out` (at most `cap`); returns how many
// were filled. Stops after a partial frame or an error (its record is the last).
size_t Frames(HeaderFn header, const uint8_t* data, size_t off, size_t end, uint32_t max_frame, int32_t* out, size_t cap) {
  size_t n = 0;
  size_t pos = off;
  while (n < cap && pos < end) {
    int32_t* rec = out + n * kSlots;
    header(Input{data, pos, end}, max_frame, rec);
    n++;
    if (rec[kState] != kWhole) break;
    pos += size_t(rec[kFrameLen]);  // > 0: a whole frame is at least its fixed header
  }
  return n;
}

// Common to decodeHeader and decodeFrames: (protocol, buf, off, end, maxFrame, out).
struct HeaderArgs {
  HeaderFn header;
  const uint8_t* data;
  size_t off, end;
  uint32_t max_frame;
  int32_t* out;
  size_t out_len;
};

bool ReadHeaderArgs(napi_env env, napi_value* argv, const char* fn, HeaderArgs* a) {
  size_t len;
  int64_t off, end, max_frame;
  if (!ArgProtocol(env, argv[0], fn, &a->header, nullptr) || !ArgBytes(env, argv[1], fn, &a->data, &len)) return false;
  // Offsets stay below 2^31: slots are int32.
  const int64_t limit = std::min<int64_t>(int64_t(len), INT32_MAX);
  if (!ArgInt(env, argv[2], fn, "off", 0, limit, &off) || !ArgInt(env, argv[3], fn, "end", off, limit, &end) ||
      !ArgInt(env, argv[4], fn, "maxFrame", 0, INT32_MAX, &max_frame) ||
      !ArgSlots(env, argv[5], fn, kSlots, &a->out, &a->out_len))
    return false;
  a->off = size_t(off);
  a->end = size_t(end);
  a->max_frame = uint32_t(max_frame);
  return true;
}

// decodeHeader(protocol, buf, off, end, maxFrame, out): void
napi_value DecodeHeader(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  HeaderArgs a;
  if (argc < 6) return Fail(env, false, "decodeHeader", "arguments", "must be (protocol, buf, off, end, maxFrame, out)"), nullptr;
  if (!ReadHeaderArgs(env, argv, "decodeHeader", &a)) return nullptr;
  a.header(Input{a.data, a.off, a.end}, a.max_frame, a.out);
  return nullptr;  // undefined
}

// decodeLazy(protocol, buf, off, out, field): void
napi_value DecodeLazy(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  const char* fn = "decodeLazy";
  if (argc < 5) return Fail(env, false, fn, "arguments", "must be (protocol, buf, off, out, field)"), nullptr;
  LazyFn lazy;
  const uint8_t* data;
  size_t len, out_len;
  int64_t off, field;
  int32_t* out;
  if (!ArgProtocol(env, argv[0], fn, nullptr, &lazy) || !ArgBytes(env, argv[1], fn, &data, &len) ||
      !ArgInt(env, argv[2], fn, "off", 0, std::min<int64_t>(int64_t(len), INT32_MAX), &off) ||
      !ArgSlots(env, argv[3], fn, kSlots, &out, &out_len) || !ArgInt(env, argv[4], fn, "field", kLazyMethod, kLazyGroup, &field))
    return nullptr;
  lazy(data, len, size_t(off), int32_t(field), out);
  return nullptr;
}

// decodeFrames(protocol, buf, off, end, maxFrame, out, maxFrames): number of records filled.
// Records are consecutive kSlots runs of `out`; every record but the last has STATE 1, and the
// last one may be a partial frame (STATE 0) or an error (< 0), where decoding stopped.
napi_value DecodeFrames(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  const char* fn = "decodeFrames";
  if (argc < 7) return Fail(env, false, fn, "arguments", "must be (protocol, buf, off, end, maxFrame, out, maxFrames)"), nullptr;
  HeaderArgs a;
  int64_t max_frames;
  if (!ReadHeaderArgs(env, argv, fn, &a) || !ArgInt(env, argv[6], fn, "maxFrames", 0, INT32_MAX, &max_frames)) return nullptr;
  const size_t cap = std::min<size_t>(size_t(max_frames), a.out_len / kSlots);
  napi_value result;
  napi_create_uint32(env, uint32_t(Frames(a.header, a.data, a.off, a.end, a.max_frame, a.out, cap)), &result);
  return result;
}

// decodeFrames with protocol, maxFrame and the records fixed when bound: per read only
// (buf, off, end) cross the boundary. Checking all seven arguments per read cost as much as
// decoding the read's frames (perf, 64-byte Bolt calls).
struct BoundFrames {
  HeaderFn header;
  uint32_t max_frame;
  int32_t* out;
  size_t cap;  // records
  napi_ref out_ref = nullptr;
};

void ReleaseFrames(napi_env env, void* data, void*) {
  auto* b = static_cast<BoundFrames*>(data);
  if (b->out_ref) napi_delete_reference(env, b->out_ref);
  delete b;
}

// decode(buf, off, end): records filled, as decodeFrames.
napi_value BoundDecode(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok) return nullptr;
  const char* fn = "decodeFramesBound";
  if (argc < 3) return Fail(env, false, fn, "arguments", "must be (buf, off, end)"), nullptr;
  auto* b = static_cast<BoundFrames*>(data);
  const uint8_t* bytes;
  size_t len;
  if (!ArgBytes(env, argv[0], fn, &bytes, &len)) return nullptr;
  int64_t off, end;
  const int64_t limit = std::min<int64_t>(int64_t(len), INT32_MAX);
  if (!ArgInt(env, argv[1], fn, "off", 0, limit, &off) || !ArgInt(env, argv[2], fn, "end", off, limit, &end)) return nullptr;
  napi_value result;
  napi_create_uint32(env, uint32_t(Frames(b->header, bytes, size_t(off), size_t(end), b->max_frame, b->out, b->cap)), &result);
  return result;
}

// bindFrameDecoder(protocol, maxFrame, out, maxFrames) -> decode(buf, off, end). The function
// keeps `out` alive (and in place: typed arrays never move their backing store).
napi_value BindFrameDecoder(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  const char* fn = "bindFrameDecoder";
  if (argc < 4) return Fail(env, false, fn, "arguments", "must be (protocol, maxFrame, out, maxFrames)"), nullptr;
  HeaderFn header;
  int64_t max_frame, max_frames;
  int32_t* out;
  size_t out_len;
  if (!ArgProtocol(env, argv[0], fn, &header, nullptr) || !ArgInt(env, argv[1], fn, "maxFrame", 0, INT32_MAX, &max_frame) ||
      !ArgSlots(env, argv[2], fn, kSlots, &out, &out_len) || !ArgInt(env, argv[3], fn, "maxFrames", 0, INT32_MAX, &max_frames))
    return nullptr;
  auto* b = new BoundFrames{header, uint32_t(max_frame), out, std::min<size_t>(size_t(max_frames), out_len / kSlots)};
  napi_value f;
  if (napi_create_reference(env, argv[2], 1, &b->out_ref) != napi_ok || napi_create_function(env, "decodeFramesBound", NAPI_AUTO_LENGTH, BoundDecode, b, &f) != napi_ok ||
      napi_add_finalizer(env, f, b, ReleaseFrames, nullptr, nullptr) != napi_ok) {
    if (b->out_ref) napi_delete_reference(env, b->out_ref);
    delete b;
    return nullptr;
  }
  return f;
}

Napi::Function Make(Napi::Env env, const char* name, napi_callback cb) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

}  // namespace

Napi::Function DecodeHeaderFunction(Napi::Env env) { return Make(env, "decodeHeader", DecodeHeader); }
Napi::Function DecodeLazyFunction(Napi::Env env) { return Make(env, "decodeLazy", DecodeLazy); }
Napi::Function DecodeFramesFunction(Napi::Env env) { return Make(env, "decodeFrames", DecodeFrames); }
Napi::Function BindFrameDecoderFunction(Napi::Env env) { return Make(env, "bindFrameDecoder", BindFrameDecoder); }

}  // namespace codec
}  // namespace strait
