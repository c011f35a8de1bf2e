#include "http1/http1_js.h"

#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <string>

#include "http1/head.h"

namespace strait {
namespace http1 {

namespace {

napi_value Throw(napi_env env, bool range, const char* what) {
  std::string msg = std::string("parseHttp1Head: ") + what;
  if (range)
    napi_throw_range_error(env, nullptr, msg.c_str());
  else
    napi_throw_type_error(env, nullptr, msg.c_str());
  return nullptr;
}

// parseHttp1Head(isRequest, buf, off, end, maxHeadBytes, maxHeaders, out): void. The result
// lands in out[kResult] and the slots after it; `out` needs kFieldsAt + 5 * maxHeaders slots.
napi_value ParseHead(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  if (argc < 7) return Throw(env, false, "arguments must be (isRequest, buf, off, end, maxHeadBytes, maxHeaders, out)");
  bool request;
  if (napi_get_value_bool(env, argv[0], &request) != napi_ok) return Throw(env, false, "isRequest must be a boolean");
  napi_typedarray_type type;
  size_t len, out_len;
  void* data = nullptr;
  void* slots = nullptr;
  if (napi_get_typedarray_info(env, argv[1], &type, &len, &data, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
    return Throw(env, false, "buf must be a Buffer or Uint8Array");
  int64_t off, end, max_head, max_headers;
  if (napi_get_value_int64(env, argv[2], &off) != napi_ok || napi_get_value_int64(env, argv[3], &end) != napi_ok ||
      napi_get_value_int64(env, argv[4], &max_head) != napi_ok || napi_get_value_int64(env, argv[5], &max_headers) != napi_ok)
    return Throw(env, false, "off, end, maxHeadBytes and maxHeaders must be numbers");
  // Offsets are reported as int32 slots.
  const int64_t limit = int64_t(len) < INT32_MAX ? int64_t(len) : INT32_MAX;
  if (off < 0 || end < off || end > limit) return Throw(env, true, "off/end out of range");
  if (max_head < 1 || max_head > INT32_MAX || max_headers < 0 || max_headers > 1 << 20) return Throw(env, true, "limits out of range");
  if (napi_get_typedarray_info(env, argv[6], &type, &out_len, &slots, nullptr, nullptr) != napi_ok || type != napi_int32_array)
    return Throw(env, false, "out must be an Int32Array");
  if (out_len < size_t(kFieldsAt) + size_t(kFieldSlots) * size_t(max_headers)) return Throw(env, true, "out is shorter than 16 + 5 * maxHeaders slots");
  const Limits limits{size_t(max_head), size_t(max_headers)};
  const auto* buf = static_cast<const uint8_t*>(data);
  auto* out = static_cast<int32_t*>(slots);
  if (request)
    ParseRequest(buf, size_t(off), size_t(end), limits, out);
  else
    ParseResponse(buf, size_t(off), size_t(end), limits, out);
  return nullptr;
}

// sendHttp1(fd, buf): bytes sent (maybe fewer than buf holds) or -errno. One non-blocking send,
// so a small message leaves without Node's stream write machinery; the caller queues the rest.
napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  int32_t fd;
  napi_typedarray_type type;
  size_t len;
  void* data = nullptr;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, nullptr, "sendHttp1: fd must be a non-negative number");
    return nullptr;
  }
  if (napi_get_typedarray_info(env, argv[1], &type, &len, &data, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, nullptr, "sendHttp1: buf must be a Buffer or Uint8Array");
    return nullptr;
  }
  // The count returns as an int32: send at most that much (the caller queues the rest).
  if (len > size_t(INT32_MAX)) len = size_t(INT32_MAX);
  ssize_t n;
  do {
    n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  napi_value r;
  napi_create_int32(env, n < 0 ? -errno : int32_t(n), &r);
  return r;
}

}  // namespace

Napi::Function SendFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "sendHttp1", NAPI_AUTO_LENGTH, Send, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

Napi::Function ParseHeadFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "parseHttp1Head", NAPI_AUTO_LENGTH, ParseHead, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

}  // namespace http1
}  // namespace strait
