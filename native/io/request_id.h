// Random UUID v4 request ids (x-request-id, as Envoy generates them) written straight into an
// outgoing head by the addon, so that JavaScript neither formats 36 bytes nor makes a string
// nobody reads.
#pragma once
#include <node_api.h>

#include <cstddef>
#include <cstdint>

namespace strait {

constexpr size_t kUuidLength = 36;

// Random bytes for ids, taken 16 at a time and refilled from getrandom(2) 16 KiB at a time
// (1024 ids a system call). One per owner on one thread: nothing here is locked.
class RequestIds {
 public:
  // Writes a fresh random UUID v4 (RFC 9562 §5.4: 36 lower-case characters) to out[0, 36);
  // false if getrandom failed (nothing written).
  bool Write(uint8_t* out);

 private:
  static constexpr size_t kPoolBytes = 16 * 1024;
  uint8_t bytes_[kPoolBytes];
  size_t used_ = kPoolBytes;
};

// Puts a fresh id in place of the placeholder value of a written request's x-request-id pair
// (REQUEST_ID_FILL_PAIR in src/protocols/http1/request_id.ts), which JavaScript leaves for the
// writer when nothing else needs the id: no string is made. `value_end` is just past the value
// and `name_sep` ("x-request-id" and the separator that follows it in this format) must come
// right before it, at or after `begin`; false, nothing written, when it does not.
bool FillRequestId(RequestIds& ids, uint8_t* begin, uint8_t* value_end, const char* name_sep, size_t name_sep_len);

// requestId() -> a fresh random UUID v4 as a string: the id of a request whose upstream header
// list JavaScript builds as a string anyway (HTTP/2), for less than String.fromCharCode's 36
// arguments (~850 instructions with their set-up). `ids`: the calling thread's (Env's).
napi_value RequestIdFunction(napi_env env, RequestIds* ids);

}  // namespace strait
