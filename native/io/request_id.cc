#include "io/request_id.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

namespace strait {

namespace {

// Two lower-case hex digits per byte value, in output order.
struct HexPairs {
  char d[256][2] = {};
  constexpr HexPairs() {
    const char* hex = "0123456789abcdef";
    for (int i = 0; i < 256; i++) {
      d[i][0] = hex[i >> 4];
      d[i][1] = hex[i & 15];
    }
  }
};
constexpr HexPairs kHex;

}  // namespace

bool RequestIds::Write(uint8_t* out) {
  if (used_ == kPoolBytes) {
    size_t got = 0;
    while (got < kPoolBytes) {
      const ssize_t n = getrandom(bytes_ + got, kPoolBytes - got, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      got += size_t(n);
    }
    used_ = 0;
  }
  uint8_t r[16];
  memcpy(r, bytes_ + used_, 16);
  used_ += 16;
  // Version 4, variant 10.
  r[6] = uint8_t((r[6] & 0x0f) | 0x40);
  r[8] = uint8_t((r[8] & 0x3f) | 0x80);
  // 8-4-4-4-12 digits; a dash before bytes 4, 6, 8 and 10.
  uint8_t* o = out;
#pragma GCC unroll 16
  for (size_t i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
    memcpy(o, kHex.d[r[i]], 2);
    o += 2;
  }
  return true;
}

bool FillRequestId(RequestIds& ids, uint8_t* begin, uint8_t* value_end, const char* name_sep, size_t name_sep_len) {
  if (value_end < begin || size_t(value_end - begin) < name_sep_len + kUuidLength) return false;
  uint8_t* value = value_end - kUuidLength;
  if (memcmp(value - name_sep_len, name_sep, name_sep_len) != 0) return false;
  return ids.Write(value);
}

namespace {

napi_value NewRequestId(napi_env env, napi_callback_info info) {
  void* data = nullptr;
  size_t argc = 0;
  if (napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data) != napi_ok) return nullptr;
  char id[kUuidLength];
  if (!static_cast<RequestIds*>(data)->Write(reinterpret_cast<uint8_t*>(id))) {
    napi_throw_error(env, nullptr, "requestId: no random bytes (getrandom failed)");
    return nullptr;
  }
  napi_value s;
  if (napi_create_string_latin1(env, id, kUuidLength, &s) != napi_ok) return nullptr;
  return s;
}

}  // namespace

napi_value RequestIdFunction(napi_env env, RequestIds* ids) {
  napi_value fn;
  if (napi_create_function(env, "requestId", NAPI_AUTO_LENGTH, NewRequestId, ids, &fn) != napi_ok) return nullptr;
  return fn;
}

}  // namespace strait
