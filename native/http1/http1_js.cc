#include "http1/http1_js.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <climits>
#include <memory>
#include <string>
#include <vector>

#include "http1/head.h"
#include "http2/session.h"
#include "io/env.h"
#include "io/request_id.h"

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

// Moves a parsed head to copyTo[at...] and shifts every reported offset with it, so the head no
// longer depends on `buf`: the batch reader's arena is reused next turn, and a head's stream
// lives longer than that. A memcpy here costs less than a Buffer per read in JavaScript.
void CopyHead(bool request, const uint8_t* buf, size_t off, uint8_t* to, size_t to_len, size_t at, int32_t* out) {
  out[kCopied] = 0;
  if (out[kResult] <= 0) return;
  const size_t n = size_t(out[kResult]) - off;
  if (at > to_len || n > to_len - at) return;  // no room: the caller finds room and asks again
  memmove(to + at, buf + off, n);
  const int32_t d = int32_t(int64_t(at) - int64_t(off));
  MoveSlots(request, out, d);
  int32_t* f = out + RecordsAt(out);
  for (int32_t i = 0; i < out[kFieldCount]; i++, f += kFieldSlots) {
    f[1] += d;  // slot 0 is the kind
    f[2] += d;
    f[3] += d;
    f[4] += d;
  }
  out[kCopied] = 1;
}

// parseHttp1Head(isRequest, buf, off, end, maxHeadBytes, maxHeaders, out[, copyTo, copyAt]):
// void. The result lands in out[kResult] and the slots after it, the field records from
// out[kRecordsAt] (16 when 0), which needs 5 * maxHeaders slots from there. With copyTo, a
// complete head is also copied to copyTo[copyAt...] when it fits there, and its offsets then
// point into copyTo (out[kCopied] says whether it was).
napi_value ParseHead(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
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
  if (out_len < size_t(kFieldsAt) || out_len < RecordsAt(static_cast<const int32_t*>(slots)) + size_t(kFieldSlots) * size_t(max_headers))
    return Throw(env, true, "out is shorter than its records slot (16 when 0) + 5 * maxHeaders slots");
  const Limits limits{size_t(max_head), size_t(max_headers)};
  const auto* buf = static_cast<const uint8_t*>(data);
  auto* out = static_cast<int32_t*>(slots);
  uint8_t* to = nullptr;
  size_t to_len = 0;
  int64_t to_at = 0;
  napi_valuetype vt = napi_undefined;
  if (argc >= 9 && napi_typeof(env, argv[7], &vt) == napi_ok && vt != napi_undefined) {
    void* td = nullptr;
    if (napi_get_typedarray_info(env, argv[7], &type, &to_len, &td, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
      return Throw(env, false, "copyTo must be a Buffer or Uint8Array");
    if (napi_get_value_int64(env, argv[8], &to_at) != napi_ok) return Throw(env, false, "copyAt must be a number");
    if (to_len > size_t(INT32_MAX)) to_len = size_t(INT32_MAX);  // offsets are int32 slots
    if (to_at < 0 || to_at > int64_t(to_len)) return Throw(env, true, "copyAt out of range");
    to = static_cast<uint8_t*>(td);
  }
  if (request)
    ParseRequest(buf, size_t(off), size_t(end), limits, out);
  else
    ParseResponse(buf, size_t(off), size_t(end), limits, out);
  if (to)
    CopyHead(request, buf, size_t(off), to, to_len, size_t(to_at), out);
  else
    out[kCopied] = 0;
  // Whatever `out` held is not the head a stamp names any more.
  strait::Env::Http1Stamp& st = GetEnv(Napi::Env(env))->http1_stamp;
  if (st.out == out) st.gen = 0;
  return nullptr;
}

napi_value HeadThrow(napi_env env, const char* fn, bool range, const char* what);

// A parser bound to its result array and copy slab, shared by the two functions
// bindHttp1HeadParser returns. Reading a typed array's data pointer costs a handle and a few
// checks per argument; the owned parse of every keep-alive read passed three of them (the read,
// `out`, the slab), of which only the read changes between calls.
struct BoundParser {
  napi_ref out_ref = nullptr;
  napi_ref slab_ref = nullptr;
  int32_t* out = nullptr;
  size_t out_len = 0;
  uint8_t* slab = nullptr;
  size_t slab_len = 0;
  strait::Env* env = nullptr;  // for the registered reader arena (parseArena)
  // bindHttp1HeadParser's optional second array: parseArenaArgs' arguments (kParse*), read
  // from memory instead of one N-API call each (~50 instructions, six per head).
  napi_ref args_ref = nullptr;
  const int32_t* args = nullptr;
  // The previous request head's Host value and target bytes and their numbers (kHostGen,
  // kTargetGen): a keep-alive client sends one Host over and over, and often one path.
  std::string last_host, last_target;
  int32_t host_gen = 0, target_gen = 0;
  // The last request head and response head parsed, for the next of each kind (HeadMemo).
  HeadMemo request_memo, response_memo;
  int users = 2;  // parse and setSlab (and parseArena once added); freed when all are collected
};

void ReleaseBound(napi_env env, void* data, void*) {
  auto* b = static_cast<BoundParser*>(data);
  if (--b->users > 0) return;
  if (b->out_ref) napi_delete_reference(env, b->out_ref);
  if (b->slab_ref) napi_delete_reference(env, b->slab_ref);
  if (b->args_ref) napi_delete_reference(env, b->args_ref);
  delete b;
}

napi_value ParseBound(napi_env env, BoundParser* b, bool request, const uint8_t* buf, size_t len, napi_value* nums);

// parse(isRequest, buf, off, end, maxHeadBytes, maxHeaders, copyAt): parseHttp1Head with the
// bound `out`, and with copyTo = the bound slab when copyAt >= 0.
napi_value BoundParse(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok) return nullptr;
  auto* b = static_cast<BoundParser*>(data);
  if (argc < 7) return Throw(env, false, "arguments must be (isRequest, buf, off, end, maxHeadBytes, maxHeaders, copyAt)");
  bool request;
  if (napi_get_value_bool(env, argv[0], &request) != napi_ok) return Throw(env, false, "isRequest must be a boolean");
  napi_typedarray_type type;
  size_t len;
  void* bytes = nullptr;
  if (napi_get_typedarray_info(env, argv[1], &type, &len, &bytes, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
    return Throw(env, false, "buf must be a Buffer or Uint8Array");
  return ParseBound(env, b, request, static_cast<const uint8_t*>(bytes), len, argv + 2);
}

napi_value ParseBoundWith(napi_env env, BoundParser* b, bool request, const uint8_t* buf, size_t len, int64_t off, int64_t end, int64_t max_head, int64_t max_headers,
                          int64_t to_at);

// parse()'s work once `buf` is known: nums holds off, end, maxHeadBytes, maxHeaders, copyAt.
napi_value ParseBound(napi_env env, BoundParser* b, bool request, const uint8_t* buf, size_t len, napi_value* nums) {
  int64_t off, end, max_head, max_headers, to_at;
  if (napi_get_value_int64(env, nums[0], &off) != napi_ok || napi_get_value_int64(env, nums[1], &end) != napi_ok ||
      napi_get_value_int64(env, nums[2], &max_head) != napi_ok || napi_get_value_int64(env, nums[3], &max_headers) != napi_ok ||
      napi_get_value_int64(env, nums[4], &to_at) != napi_ok)
    return Throw(env, false, "off, end, maxHeadBytes, maxHeaders and copyAt must be numbers");
  return ParseBoundWith(env, b, request, buf, len, off, end, max_head, max_headers, to_at);
}

// The number for the bytes base[s, e): `*gen` when they are `last`'s, else the next number (never
// 0), and `last` takes them. Values past kMaxKept bytes are not kept (0: JavaScript makes a string).
static int32_t SameOrNext(const uint8_t* base, int32_t s, int32_t e, std::string& last, int32_t* gen) {
  constexpr size_t kMaxKept = 256;
  const size_t n = size_t(e - s);
  if (n > kMaxKept) return 0;
  if (*gen != 0 && n == last.size() && memcmp(last.data(), base + s, n) == 0) return *gen;
  last.assign(reinterpret_cast<const char*>(base + s), n);
  *gen = *gen == INT32_MAX ? 1 : *gen + 1;
  return *gen;
}

napi_value ParseBoundWith(napi_env env, BoundParser* b, bool request, const uint8_t* buf, size_t len, int64_t off, int64_t end, int64_t max_head, int64_t max_headers,
                          int64_t to_at) {
  const int64_t limit = int64_t(len) < INT32_MAX ? int64_t(len) : INT32_MAX;
  if (off < 0 || end < off || end > limit) return Throw(env, true, "off/end out of range");
  if (max_head < 1 || max_head > INT32_MAX || max_headers < 0 || max_headers > 1 << 20) return Throw(env, true, "limits out of range");
  if (b->out_len < RecordsAt(b->out) + size_t(kFieldSlots) * size_t(max_headers)) return Throw(env, true, "out is shorter than its records slot (16 when 0) + 5 * maxHeaders slots");
  if (to_at >= 0 && (b->slab == nullptr || to_at > int64_t(b->slab_len))) return Throw(env, true, "copyAt out of range (or no slab set)");
  const Limits limits{size_t(max_head), size_t(max_headers)};
  // A number for these bytes (Env::http1_stamp): the kept head's for a repeat, else a new one.
  HeadMemo& memo = request ? b->request_memo : b->response_memo;
  const uint64_t fresh = ++b->env->http1_gens;
  const bool repeat = ParseWithMemo(memo, request, buf, size_t(off), size_t(end), limits, b->out, fresh);
  if (repeat) b->env->stats.http1_heads_repeated++;
  b->env->http1_stamp = {b->out, RecordsAt(b->out), repeat ? memo.gen : fresh};
  if (to_at >= 0)
    CopyHead(request, buf, size_t(off), b->slab, b->slab_len, size_t(to_at), b->out);
  else
    b->out[kCopied] = 0;
  if (request && b->out[kResult] > 0) {
    // The offsets point into the slab when the head was copied there.
    const uint8_t* base = b->out[kCopied] == 1 ? b->slab : buf;
    b->out[kHostGen] = b->out[kHostStart] < 0 ? 0 : SameOrNext(base, b->out[kHostStart], b->out[kHostEnd], b->last_host, &b->host_gen);
    b->out[kTargetGen] = SameOrNext(base, b->out[kLineC], b->out[kLineD], b->last_target, &b->target_gen);
  }
  return nullptr;
}

// parseArena(isRequest, off, end, maxHeadBytes, maxHeaders, copyAt): parse() of the HTTP/1
// reader's arena as registered (setTable's ARENA slot), where nearly every head lies: no
// Uint8Array argument to look up (~250 instructions a head).
napi_value BoundParseArena(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok) return nullptr;
  auto* b = static_cast<BoundParser*>(data);
  if (argc < 6) return Throw(env, false, "arguments must be (isRequest, off, end, maxHeadBytes, maxHeaders, copyAt)");
  bool request;
  if (napi_get_value_bool(env, argv[0], &request) != napi_ok) return Throw(env, false, "isRequest must be a boolean");
  const strait::Env::Table& t = b->env->tables[strait::kTableArena];
  if (t.data == nullptr || t.type != napi_uint8_array) return Throw(env, false, "no Uint8Array is registered as the reader arena");
  return ParseBound(env, b, request, static_cast<const uint8_t*>(t.data), t.len, argv + 1);
}

// The slots of parseArenaArgs' array (src/protocols/http1/native_head.ts's PARSE).
enum { kParseRequest = 0, kParseOff = 1, kParseEnd = 2, kParseMaxHead = 3, kParseMaxHeaders = 4, kParseCopyAt = 5, kParseCount = 6 };

// parseArenaArgs(): parseArena with its six arguments (isRequest as 0 or 1) in the array bound
// with it.
napi_value BoundParseArenaArgs(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data) != napi_ok) return nullptr;
  auto* b = static_cast<BoundParser*>(data);
  const strait::Env::Table& t = b->env->tables[strait::kTableArena];
  if (t.data == nullptr || t.type != napi_uint8_array) return Throw(env, false, "no Uint8Array is registered as the reader arena");
  const int32_t* a = b->args;
  return ParseBoundWith(env, b, a[kParseRequest] != 0, static_cast<const uint8_t*>(t.data), t.len, a[kParseOff], a[kParseEnd], a[kParseMaxHead], a[kParseMaxHeaders],
                        a[kParseCopyAt]);
}

// setSlab(slab[, out]): where parse copies heads from now on (held until the next setSlab), and
// with `out` the results array parse writes from now on: JavaScript moves to a new one when the
// last is full of heads' field records, and the functions stay the ones its calls know.
napi_value BoundSetSlab(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok) return nullptr;
  auto* b = static_cast<BoundParser*>(data);
  napi_typedarray_type type;
  size_t len = 0;
  void* p = nullptr;
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &len, &p, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
    return Throw(env, false, "slab must be a Buffer or Uint8Array");
  napi_valuetype vt = napi_undefined;
  if (argc >= 2 && napi_typeof(env, argv[1], &vt) != napi_ok) return nullptr;
  if (vt != napi_undefined) {
    size_t olen = 0;
    void* op = nullptr;
    if (napi_get_typedarray_info(env, argv[1], &type, &olen, &op, nullptr, nullptr) != napi_ok || type != napi_int32_array)
      return Throw(env, false, "out must be an Int32Array");
    if (olen < size_t(kFieldsAt)) return Throw(env, true, "out is shorter than 16 slots");
    napi_ref oref;
    if (napi_create_reference(env, argv[1], 1, &oref) != napi_ok) return nullptr;
    if (b->out_ref) napi_delete_reference(env, b->out_ref);
    b->out_ref = oref;
    b->out = static_cast<int32_t*>(op);
    b->out_len = olen;
  }
  napi_ref ref;
  if (napi_create_reference(env, argv[0], 1, &ref) != napi_ok) return nullptr;
  if (b->slab_ref) napi_delete_reference(env, b->slab_ref);
  b->slab_ref = ref;
  b->slab = static_cast<uint8_t*>(p);
  // Offsets are reported as int32 slots.
  b->slab_len = len > size_t(INT32_MAX) ? size_t(INT32_MAX) : len;
  return nullptr;
}

// The two functions of a bind*() call, sharing `st` (freed when both are collected: `users` starts
// at 2) and holding `keep` (the bound typed array) alive through `*keep_ref`. nullptr on failure
// (st freed, or left to the one finalizer that was registered).
template <typename State>
napi_value BoundPair(napi_env env, napi_value keep, State* st, napi_ref* keep_ref, const char* n0, napi_callback f0, const char* n1,
                     napi_callback f1, napi_finalize release) {
  napi_value a, b, arr;
  if (napi_create_reference(env, keep, 1, keep_ref) != napi_ok || napi_create_function(env, n0, NAPI_AUTO_LENGTH, f0, st, &a) != napi_ok ||
      napi_create_function(env, n1, NAPI_AUTO_LENGTH, f1, st, &b) != napi_ok) {
    if (*keep_ref) napi_delete_reference(env, *keep_ref);
    delete st;
    return nullptr;
  }
  // Both finalizers are registered before anything else can fail, so `users` reaches 0.
  if (napi_add_finalizer(env, a, st, release, nullptr, nullptr) != napi_ok) {
    napi_delete_reference(env, *keep_ref);
    delete st;
    return nullptr;
  }
  if (napi_add_finalizer(env, b, st, release, nullptr, nullptr) != napi_ok) {
    st->users = 1;  // only the first one's finalizer will run
    return nullptr;
  }
  if (napi_create_array_with_length(env, 2, &arr) != napi_ok || napi_set_element(env, arr, 0, a) != napi_ok || napi_set_element(env, arr, 1, b) != napi_ok)
    return nullptr;
  return arr;
}

// A binder's optional second argument, an Int32Array of at least `min` slots whose numbers the
// bound functions read instead of arguments: its memory, or null when absent (undefined).
// Checked before anything is made, so a bad one leaks nothing. False once it has thrown.
static bool OptionalArgs(napi_env env, size_t argc, napi_value* argv, size_t min, const char* fn, const char* what, const int32_t** args, size_t* args_len = nullptr) {
  *args = nullptr;
  if (argc < 2) return true;
  napi_valuetype vt = napi_undefined;
  if (napi_typeof(env, argv[1], &vt) != napi_ok) return false;
  if (vt == napi_undefined) return true;
  napi_typedarray_type type;
  size_t alen = 0;
  void* ap = nullptr;
  if (napi_get_typedarray_info(env, argv[1], &type, &alen, &ap, nullptr, nullptr) != napi_ok || type != napi_int32_array || alen < min)
    return HeadThrow(env, fn, false, what), false;
  *args = static_cast<const int32_t*>(ap);
  if (args_len != nullptr) *args_len = alen;
  return true;
}

// bindHttp1HeadParser(out[, args]) -> [parse, setSlab, parseArena[, parseArenaArgs]], all holding
// `out` (and the slab, and `args`) alive.
napi_value BindParser(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  napi_typedarray_type type;
  size_t len = 0;
  void* p = nullptr;
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &len, &p, nullptr, nullptr) != napi_ok || type != napi_int32_array)
    return HeadThrow(env, "bindHttp1HeadParser", false, "out must be an Int32Array");
  if (len < size_t(kFieldsAt)) return HeadThrow(env, "bindHttp1HeadParser", true, "out is shorter than 16 slots");
  const int32_t* args = nullptr;
  if (!OptionalArgs(env, argc, argv, size_t(kParseCount), "bindHttp1HeadParser", "args must be an Int32Array of 6 slots or more", &args)) return nullptr;
  auto* b = new BoundParser();
  b->out = static_cast<int32_t*>(p);
  b->out_len = len;
  b->env = GetEnv(Napi::Env(env));
  napi_value pair = BoundPair(env, argv[0], b, &b->out_ref, "parseHttp1HeadBound", BoundParse, "setHttp1HeadSlab", BoundSetSlab, ReleaseBound);
  if (pair == nullptr) return nullptr;
  // The third shares `b`: counted before its finalizer can run, so `b` outlives all three.
  napi_value c;
  if (napi_create_function(env, "parseHttp1HeadArena", NAPI_AUTO_LENGTH, BoundParseArena, b, &c) != napi_ok) return pair;
  b->users++;
  if (napi_add_finalizer(env, c, b, ReleaseBound, nullptr, nullptr) != napi_ok) {
    b->users--;  // never registered: only the pair's finalizers will run
    return pair;
  }
  napi_set_element(env, pair, 2, c);
  if (args == nullptr || napi_create_reference(env, argv[1], 1, &b->args_ref) != napi_ok) return pair;
  b->args = args;
  napi_value d;
  if (napi_create_function(env, "parseHttp1HeadArenaArgs", NAPI_AUTO_LENGTH, BoundParseArenaArgs, b, &d) != napi_ok) return pair;
  b->users++;
  if (napi_add_finalizer(env, d, b, ReleaseBound, nullptr, nullptr) != napi_ok) {
    b->users--;
    return pair;
  }
  napi_set_element(env, pair, 3, d);
  return pair;
}

// One non-blocking send of p[0, len): bytes the kernel took or -errno (EINTR retried). len is at
// most INT32_MAX (every caller checks), so the count fits the int32 handed back to JavaScript.
static int32_t SendNow(int fd, const uint8_t* p, size_t len) {
  ssize_t n;
  do {
    n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : int32_t(n);
}

// sendHttp1(fd, buf[, off, len]): bytes sent (maybe fewer than asked) or -errno. One
// non-blocking send of buf, or of buf[off, off + len), so a small message leaves without Node's
// stream write machinery (nor, with a range, a Buffer view); the caller queues the rest.
napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
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
  const uint8_t* p = static_cast<const uint8_t*>(data);
  if (argc >= 4) {
    int32_t off, n;
    if (napi_get_value_int32(env, argv[2], &off) != napi_ok || napi_get_value_int32(env, argv[3], &n) != napi_ok || off < 0 || n < 0 ||
        size_t(off) > len || size_t(n) > len - size_t(off)) {
      napi_throw_range_error(env, nullptr, "sendHttp1: off/len outside buf");
      return nullptr;
    }
    p += off;
    len = size_t(n);
  }
  // The count returns as an int32: send at most that much (the caller queues the rest).
  if (len > size_t(INT32_MAX)) len = size_t(INT32_MAX);
  napi_value r;
  napi_create_int32(env, SendNow(fd, p, len), &r);
  return r;
}

// sendHttp1Ranges(n, table, bufs): the sends a batch's end queued, in one call. `table` is an
// Int32Array of n rows [fd, index in bufs, off, len, result]; each row gets one non-blocking send
// of bufs[index][off, off + len) and its result as sendHttp1's (bytes taken or -errno; -EINVAL for
// a row that names no Uint8Array or a range outside it, which nothing is sent for; -EAGAIN, with
// nothing sent, for a row behind one of the same fd that was not taken whole). Per row this
// is a send and, when the row's buffer is not the previous row's, one element read: the N-API
// entry and argument reads of a sendHttp1 call (~800 instructions) are paid once per batch.
napi_value SendRanges(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  int32_t n = -1;
  napi_typedarray_type type;
  size_t rows_len = 0;
  void* rows_p = nullptr;
  bool is_array = false;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 0) {
    napi_throw_type_error(env, nullptr, "sendHttp1Ranges: n must be a non-negative number");
    return nullptr;
  }
  if (napi_get_typedarray_info(env, argv[1], &type, &rows_len, &rows_p, nullptr, nullptr) != napi_ok || type != napi_int32_array) {
    napi_throw_type_error(env, nullptr, "sendHttp1Ranges: table must be an Int32Array");
    return nullptr;
  }
  if (size_t(n) > rows_len / 5) {
    napi_throw_range_error(env, nullptr, "sendHttp1Ranges: n rows do not fit the table");
    return nullptr;
  }
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, nullptr, "sendHttp1Ranges: bufs must be an array");
    return nullptr;
  }
  int32_t* row = static_cast<int32_t*>(rows_p);
  int32_t last = -1;  // the buffer index `base`/`cap` are for
  const uint8_t* base = nullptr;
  size_t cap = 0;
  std::vector<int32_t> blocked;  // fds a range was cut short on (rare: allocates only then)
  for (int32_t i = 0; i < n; i++, row += 5) {
    const int32_t fd = row[0], idx = row[1], off = row[2], len = row[3];
    if (idx != last) {
      napi_value b;
      void* p = nullptr;
      size_t blen = 0;
      last = idx;
      base = nullptr;
      cap = 0;
      if (idx >= 0 && napi_get_element(env, argv[2], uint32_t(idx), &b) == napi_ok &&
          napi_get_typedarray_info(env, b, &type, &blen, &p, nullptr, nullptr) == napi_ok && type == napi_uint8_array) {
        base = static_cast<const uint8_t*>(p);
        cap = blen;
      } else {
        // A failed call may leave an exception pending (a getter on the array): not ours to raise.
        napi_value ignored;
        bool pending = false;
        if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &ignored);
      }
    }
    if (base == nullptr || fd < 0 || off < 0 || len < 0 || size_t(off) > cap || size_t(len) > cap - size_t(off)) {
      row[4] = -EINVAL;
      continue;
    }
    // A socket that did not take a whole range sends nothing more in this call: JavaScript
    // queues that rest on its stream, and the later ranges behind it.
    bool behind = false;
    for (int32_t b : blocked) behind = behind || b == fd;
    if (behind) {
      row[4] = -EAGAIN;
      continue;
    }
    row[4] = SendNow(fd, base + off, size_t(len));
    if (row[4] != len) blocked.push_back(fd);
  }
  return nullptr;
}

napi_value HeadThrow(napi_env env, const char* fn, bool range, const char* what) {
  std::string msg = std::string(fn) + ": " + what;
  if (range)
    napi_throw_range_error(env, nullptr, msg.c_str());
  else
    napi_throw_type_error(env, nullptr, msg.c_str());
  return nullptr;
}

// The pieces of an outgoing head (encodeHead's layout in src/protocols/http1/encoder.ts, the
// reference): first line CRLF, src[runs[2i], runs[2i+1]) CRLF per run of kept header lines,
// extra, CRLF, tail[tail_start, tail_end). Arguments 1..8 of writeHttp1Head / sendHttp1Head.
struct HeadPieces {
  napi_value first, extra;
  size_t first_len = 0, extra_len = 0;
  const uint8_t* src = nullptr;
  size_t src_len = 0;
  const int32_t* runs = nullptr;
  int32_t n_runs = 0;
  const uint8_t* tail = nullptr;
  int32_t tail_start = 0, tail_end = 0;
  size_t size = 0;  // bytes of the whole head
  // The strings' bytes when the writer still has them from its last head (kKnowSameFirst,
  // kKnowSameExtra): copied from there, not read from V8. Null: read the napi_value.
  const uint8_t* first_bytes = nullptr;
  const uint8_t* extra_bytes = nullptr;
  // Where a string read from V8 is kept for the next head (BoundWriter::Lines), or null.
  std::string* keep_first = nullptr;
  std::string* keep_extra = nullptr;
  // Where registered tables are read: the bound writer's, or looked up once (GetEnv is an N-API
  // call, ~26 instructions, and a head read up to four tables).
  const strait::Env* env = nullptr;
};

// Reads and checks every piece (a bad one throws: nothing is read outside its buffer) and sums
// the size. V8 writes strings one byte per char (the low byte, as Buffer.write(s, 'latin1')).
// With `bound_runs` (bindHttp1HeadWriter), argv[3] is not read: the runs are the bound array's.
// What the caller already knows of the pieces (ReadPiecesWith's `known`): src and tail are
// present or null, and the two strings' lengths (h.first_len, h.extra_len) are set.
// kKnowSrcArena: src is the registered reader arena (kTableArena), read from there;
// kKnowSrcSlab: src is the head parser's registered slab (kTableHeadSlab), where owned heads are
// copied; kKnowTailArena: the tail is the reader arena. With
// kKnowOutTable (writeAt, writeSendAt), `out` is their registered slab (kTableStage, kTableKept).
// kKnowRunsFromHead (writeAt, writeSendAt): the kept lines are worked out here from the head the
// parser reported last (RunsFromHeadOut), not read from the runs array.
enum : int32_t {
  kKnowSrc = 1,
  kKnowTail = 2,
  kKnowLengths = 4,
  kKnown = 8,
  kKnowOutTable = 16,
  kKnowSrcArena = 32,
  kKnowRunsFromHead = 64,
  kKnowSrcSlab = 128,
  kKnowTailArena = 256,
  // firstLine / extra equal the string this function of this writer wrote last: its bytes are
  // the writer's copy (BoundWriter::Lines), not read through N-API (~130 instructions a string).
  kKnowSameFirst = 512,
  kKnowSameExtra = 1024,
};

// A registered byte table's memory (kKnowOutTable, kKnowSrcArena); false when none is.
static bool ByteTable(napi_env env, HeadPieces& h, TableSlot slot, uint8_t** data, size_t* len) {
  if (h.env == nullptr) h.env = GetEnv(Napi::Env(env));
  const strait::Env::Table& t = h.env->tables[slot];
  if (t.data == nullptr || t.type != napi_uint8_array) return false;
  *data = static_cast<uint8_t*>(t.data);
  *len = t.len;
  return true;
}

bool ReadPiecesWith(napi_env env, const char* fn, napi_value* argv, HeadPieces& h, const int32_t* bound_runs, size_t bound_len, int32_t known = 0);

bool ReadPieces(napi_env env, const char* fn, napi_value* argv, HeadPieces& h, const int32_t* bound_runs = nullptr, size_t bound_len = 0) {
  if (napi_get_value_int32(env, argv[4], &h.n_runs) != napi_ok || napi_get_value_int32(env, argv[7], &h.tail_start) != napi_ok ||
      napi_get_value_int32(env, argv[8], &h.tail_end) != napi_ok)
    return HeadThrow(env, fn, false, "nRuns, tailStart and tailEnd must be numbers"), false;
  return ReadPiecesWith(env, fn, argv, h, bound_runs, bound_len);
}

// ReadPieces with h.n_runs, h.tail_start and h.tail_end already set (argv[4], [7], [8] unread).
// `known`: 0, or kKnown with the kKnow* bits of what needs no N-API call to learn (a
// napi_typeof per optional buffer, ~110 instructions, a length read per string, ~40). A string
// whose length is given is still written only up to that length (PutPieces), never past it.
bool ReadPiecesWith(napi_env env, const char* fn, napi_value* argv, HeadPieces& h, const int32_t* bound_runs, size_t bound_len, int32_t known) {
  napi_typedarray_type type;
  napi_valuetype vt;
  void* p = nullptr;
  size_t len = 0;
  h.first = argv[1];
  h.extra = argv[5];
  if (!(known & kKnowLengths) && (napi_get_value_string_latin1(env, h.first, nullptr, 0, &h.first_len) != napi_ok ||
                                   napi_get_value_string_latin1(env, h.extra, nullptr, 0, &h.extra_len) != napi_ok))
    return HeadThrow(env, fn, false, "firstLine and extra must be strings"), false;
  if (known & kKnown)
    vt = (known & kKnowSrc) ? napi_object : napi_null;
  else if (napi_typeof(env, argv[2], &vt) != napi_ok)
    return false;
  if ((known & kKnown) && (known & kKnowSrcArena)) {
    uint8_t* a = nullptr;
    if (!ByteTable(env, h, kTableArena, &a, &h.src_len)) return HeadThrow(env, fn, false, "no Uint8Array is registered as the reader arena"), false;
    h.src = a;
  } else if ((known & kKnown) && (known & kKnowSrcSlab)) {
    uint8_t* a = nullptr;
    if (!ByteTable(env, h, kTableHeadSlab, &a, &h.src_len)) return HeadThrow(env, fn, false, "no Uint8Array is registered as the head slab"), false;
    h.src = a;
  } else if (vt != napi_null && vt != napi_undefined) {
    if (napi_get_typedarray_info(env, argv[2], &type, &h.src_len, &p, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
      return HeadThrow(env, fn, false, "src must be a Buffer, Uint8Array or null"), false;
    h.src = static_cast<const uint8_t*>(p);
  }
  if (bound_runs != nullptr) {
    h.runs = bound_runs;
    len = bound_len;
  } else {
    if (napi_get_typedarray_info(env, argv[3], &type, &len, &p, nullptr, nullptr) != napi_ok || type != napi_int32_array)
      return HeadThrow(env, fn, false, "runs must be an Int32Array"), false;
    h.runs = static_cast<const int32_t*>(p);
  }
  if (h.n_runs < 0 || size_t(h.n_runs) * 2 > len || (h.n_runs > 0 && !h.src)) return HeadThrow(env, fn, true, "nRuns out of range"), false;
  if (known & kKnown)
    vt = (known & kKnowTail) ? napi_object : napi_null;
  else if (napi_typeof(env, argv[6], &vt) != napi_ok)
    return false;
  if ((known & kKnown) && (known & kKnowTail) && (known & kKnowTailArena)) {
    uint8_t* a = nullptr;
    if (!ByteTable(env, h, kTableArena, &a, &len)) return HeadThrow(env, fn, false, "no Uint8Array is registered as the reader arena"), false;
    if (h.tail_start < 0 || h.tail_end < h.tail_start || size_t(h.tail_end) > len) return HeadThrow(env, fn, true, "tailStart/tailEnd out of range"), false;
    h.tail = a;
  } else if (vt != napi_null && vt != napi_undefined) {
    if (napi_get_typedarray_info(env, argv[6], &type, &len, &p, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
      return HeadThrow(env, fn, false, "tail must be a Buffer, Uint8Array or null"), false;
    if (h.tail_start < 0 || h.tail_end < h.tail_start || size_t(h.tail_end) > len) return HeadThrow(env, fn, true, "tailStart/tailEnd out of range"), false;
    h.tail = static_cast<const uint8_t*>(p);
  } else if (h.tail_end != h.tail_start) {
    return HeadThrow(env, fn, true, "tailStart/tailEnd without a tail"), false;
  }
  size_t size = h.first_len + 2 + h.extra_len + 2 + size_t(h.tail_end - h.tail_start);
  for (int32_t i = 0; i < h.n_runs; i++) {
    const int32_t s = h.runs[2 * i], e = h.runs[2 * i + 1];
    if (s < 0 || e < s || size_t(e) > h.src_len) return HeadThrow(env, fn, true, "a run is outside src"), false;
    size += size_t(e - s) + 2;
  }
  h.size = size;
  return true;
}

// Writes the head's h.size bytes to out. V8 ends a string it writes with a NUL: a CRLF always
// follows both strings and overwrites it, so nothing lands past h.size. False when a string did
// not fill its h.*_len bytes (a length the caller gave that is not the string's, or no string):
// the caller throws rather than send bytes nobody wrote.
bool PutPieces(napi_env env, const HeadPieces& h, uint8_t* out) {
  size_t p = 0, got = 0;
  if (h.first_bytes != nullptr) {
    memcpy(out, h.first_bytes, h.first_len);
  } else {
    if (napi_get_value_string_latin1(env, h.first, reinterpret_cast<char*>(out), h.first_len + 1, &got) != napi_ok || got != h.first_len) return false;
  }
  p += h.first_len;
  out[p++] = '\r';
  out[p++] = '\n';
  for (int32_t i = 0; i < h.n_runs; i++) {
    const size_t s = size_t(h.runs[2 * i]), n = size_t(h.runs[2 * i + 1]) - s;
    memcpy(out + p, h.src + s, n);
    p += n;
    out[p++] = '\r';
    out[p++] = '\n';
  }
  if (h.extra_bytes != nullptr) {
    memcpy(out + p, h.extra_bytes, h.extra_len);
  } else {
    if (napi_get_value_string_latin1(env, h.extra, reinterpret_cast<char*>(out + p), h.extra_len + 1, &got) != napi_ok || got != h.extra_len) return false;
  }
  // Kept only now that the whole head is written (nothing after this fails): a call that threw
  // leaves the writer's lines as JavaScript last noted them.
  if (h.first_bytes == nullptr && h.keep_first != nullptr) h.keep_first->assign(reinterpret_cast<const char*>(out), h.first_len);
  if (h.extra_bytes == nullptr && h.keep_extra != nullptr) h.keep_extra->assign(reinterpret_cast<const char*>(out + p), h.extra_len);
  p += h.extra_len;
  out[p++] = '\r';
  out[p++] = '\n';
  if (h.tail_end > h.tail_start) memcpy(out + p, h.tail + h.tail_start, size_t(h.tail_end - h.tail_start));
  return true;
}

static napi_value PiecesThrow(napi_env env, const char* fn) { return HeadThrow(env, fn, false, "firstLine and extra must be strings of their given lengths"); }

// writeHttp1Head(out, firstLine, src, runs, nRuns, extra, tail, tailStart, tailEnd) -> bytes
// written (the head's size) into out, in one call instead of a JS write or copy per piece.
napi_value WriteHeadWith(napi_env env, const char* fn, napi_value* argv, const int32_t* bound_runs, size_t bound_len);
napi_value WriteHeadAt(napi_env env, const char* fn, napi_value* argv, const int32_t* bound_runs, size_t bound_len, size_t at);
napi_value SendHeadWith(napi_env env, const char* fn, napi_value* argv, const int32_t* bound_runs, size_t bound_len);

napi_value WriteHead(napi_env env, napi_callback_info info) {
  const char* fn = "writeHttp1Head";
  size_t argc = 9;
  napi_value argv[9];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  if (argc < 9) return HeadThrow(env, fn, false, "arguments must be (out, firstLine, src, runs, nRuns, extra, tail, tailStart, tailEnd)");
  return WriteHeadWith(env, fn, argv, nullptr, 0);
}

// The head goes to out[at, at + size).
napi_value WriteHeadAt(napi_env env, const char* fn, napi_value* argv, const int32_t* bound_runs, size_t bound_len, size_t at) {
  napi_typedarray_type type;
  size_t cap = 0;
  void* out = nullptr;
  if (napi_get_typedarray_info(env, argv[0], &type, &cap, &out, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
    return HeadThrow(env, fn, false, "out must be a Buffer or Uint8Array");
  HeadPieces h;
  if (!ReadPieces(env, fn, argv, h, bound_runs, bound_len)) return nullptr;
  if (at > cap || h.size > cap - at || h.size > size_t(INT32_MAX)) return HeadThrow(env, fn, true, "out is too small");
  if (!PutPieces(env, h, static_cast<uint8_t*>(out) + at)) return PiecesThrow(env, fn);
  napi_value r;
  napi_create_int32(env, int32_t(h.size), &r);
  return r;
}

// sendHttp1Head(fd, firstLine, src, runs, nRuns, extra, tail, tailStart, tailEnd): bytes sent
// (maybe fewer than the head's size) or -errno. The head is built in a scratch buffer and leaves
// by one non-blocking send: no Buffer for a head nobody keeps. The caller queues what is left.
napi_value SendHead(napi_env env, napi_callback_info info) {
  const char* fn = "sendHttp1Head";
  size_t argc = 9;
  napi_value argv[9];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  if (argc < 9) return HeadThrow(env, fn, false, "arguments must be (fd, firstLine, src, runs, nRuns, extra, tail, tailStart, tailEnd)");
  return SendHeadWith(env, fn, argv, nullptr, 0);
}

napi_value WriteHeadWith(napi_env env, const char* fn, napi_value* argv, const int32_t* bound_runs, size_t bound_len) {
  return WriteHeadAt(env, fn, argv, bound_runs, bound_len, 0);
}

napi_value SendHeadWith(napi_env env, const char* fn, napi_value* argv, const int32_t* bound_runs, size_t bound_len) {
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return HeadThrow(env, fn, false, "fd must be a non-negative number");
  HeadPieces h;
  if (!ReadPieces(env, fn, argv, h, bound_runs, bound_len)) return nullptr;
  if (h.size > size_t(INT32_MAX)) return HeadThrow(env, fn, true, "head too large");
  // One per thread (a worker has its own): grows to the largest head sent, ~1 KiB usually.
  static thread_local std::string scratch;
  if (scratch.size() < h.size) scratch.resize(h.size);
  auto* out = reinterpret_cast<uint8_t*>(&scratch[0]);
  if (!PutPieces(env, h, out)) return PiecesThrow(env, fn);
  napi_value r;
  napi_create_int32(env, SendNow(fd, out, h.size), &r);
  return r;
}

// The runs array bound once (bindHttp1HeadWriter), like BoundParser: one typed-array read fewer
// per head written.
struct BoundWriter {
  napi_ref runs_ref = nullptr;
  const int32_t* runs = nullptr;
  size_t runs_len = 0;
  // bindHttp1HeadWriter's optional second array: the number arguments of writeAt and
  // writeSendAt (kArg*), read from memory instead of one N-API call each (~60 instructions).
  napi_ref args_ref = nullptr;
  int32_t* args = nullptr;  // kArgSize is written back
  size_t args_len = 0;
  // kKnowRunsFromHead's runs (RunsFromHeadOut), for writeAt (0) and writeSendAt (1): the
  // responses a proxy writes and the requests it forwards each repeat among themselves.
  std::vector<int32_t> head_runs[2];
  // Which head head_runs were worked out for: the parse stamp's number (Env::http1_stamp; 0:
  // none), the drop mask, the field count and the first field's offset then; the runs' count and
  // the bytes they add. A repeat of that head with the same mask takes them, moved.
  struct RunsMemo {
    uint64_t gen = 0;
    int32_t drop = 0, count = 0, first = 0, n = 0;
    size_t size = 0;
  } runs_memo[2];
  const strait::Env* env = nullptr;  // the environment it was bound in: its registered tables
  int users = 0;  // functions holding this (write, send, writeSend): set by BindWriter
  std::unique_ptr<RequestIds> ids;  // writeSend's request ids, made at the first
  // The first line and extra lines writeAt (0) and writeSendAt (1) read from V8 last, as written:
  // a keep-alive connection's heads repeat them (status line, server line, request line for one
  // path, the added lines). JavaScript says when a string is the same (kKnowSameFirst/-Extra);
  // each is kept only once its head was written whole, and JavaScript notes it only when the
  // call returned, so the two never disagree.
  struct Lines {
    std::string first, extra;
  } lines[2];
};

void ReleaseWriter(napi_env env, void* data, void*) {
  auto* w = static_cast<BoundWriter*>(data);
  if (--w->users > 0) return;
  if (w->runs_ref) napi_delete_reference(env, w->runs_ref);
  if (w->args_ref) napi_delete_reference(env, w->args_ref);
  delete w;
}

// The bound functions take the unbound ones' arguments without `runs` (index 3).
template <napi_value (*With)(napi_env, const char*, napi_value*, const int32_t*, size_t)>
napi_value BoundHead(napi_env env, napi_callback_info info, const char* fn, const char* usage) {
  size_t argc = 8;
  napi_value in[8];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, in, nullptr, &data) != napi_ok) return nullptr;
  if (argc < 8) return HeadThrow(env, fn, false, usage);
  auto* w = static_cast<BoundWriter*>(data);
  napi_value argv[9] = {in[0], in[1], in[2], nullptr, in[3], in[4], in[5], in[6], in[7]};
  return With(env, fn, argv, w->runs, w->runs_len);
}

// write(out, firstLine, src, nRuns, extra, tail, tailStart, tailEnd[, at]): with `at`, the head
// goes to out[at, ...), so a head staged in a shared buffer needs no Buffer view of its own.
napi_value BoundWrite(napi_env env, napi_callback_info info) {
  const char* fn = "writeHttp1HeadBound";
  size_t argc = 9;
  napi_value in[9];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, in, nullptr, &data) != napi_ok) return nullptr;
  if (argc < 8) return HeadThrow(env, fn, false, "arguments must be (out, firstLine, src, nRuns, extra, tail, tailStart, tailEnd[, at])");
  auto* w = static_cast<BoundWriter*>(data);
  napi_value argv[9] = {in[0], in[1], in[2], nullptr, in[3], in[4], in[5], in[6], in[7]};
  int32_t at = 0;
  napi_valuetype vt = napi_undefined;
  if (argc > 8 && napi_typeof(env, in[8], &vt) == napi_ok && vt != napi_undefined &&
      (napi_get_value_int32(env, in[8], &at) != napi_ok || at < 0))
    return HeadThrow(env, fn, true, "at must be a non-negative number");
  return WriteHeadAt(env, fn, argv, w->runs, w->runs_len, size_t(at));
}

napi_value BoundSend(napi_env env, napi_callback_info info) {
  return BoundHead<SendHeadWith>(env, info, "sendHttp1HeadBound", "arguments must be (fd, firstLine, src, nRuns, extra, tail, tailStart, tailEnd)");
}

// writeSend(out, firstLine, src, nRuns, extra, tail, tailStart, tailEnd, fd, keepAt, keepLen[, at]):
// write's bytes into `out` (from out[at] with `at`: a head kept in a shared slab needs no Buffer
// view), except the head's [keepAt, keepAt + keepLen) (keepAt -1: none), which keeps
// what the caller put there; keepLen FILL_REQUEST_ID (-1) puts a fresh random UUID v4 there
// instead, over the request id line's placeholder (36 bytes). Then, with fd >= 0, one
// non-blocking send of the whole head. Returns bytes sent or -errno (fd >= 0), else the
// size. A forwarded request head is kept as a Buffer for retries and sent at once: one call
// instead of write + sendHttp1 (an N-API entry and its argument reads per request).
napi_value WriteSendWith(napi_env env, const char* fn, BoundWriter* w, uint8_t* outp, size_t cap, HeadPieces& h, int32_t fd, int32_t keep_at, int32_t keep_len, int32_t at);

// A head writer's `out` argument as bytes; false (thrown) when it is no Uint8Array.
static bool OutArg(napi_env env, const char* fn, napi_value v, uint8_t** out, size_t* cap) {
  napi_typedarray_type type;
  void* p = nullptr;
  if (napi_get_typedarray_info(env, v, &type, cap, &p, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
    return HeadThrow(env, fn, false, "out must be a Buffer or Uint8Array"), false;
  *out = static_cast<uint8_t*>(p);
  return true;
}

napi_value BoundWriteSend(napi_env env, napi_callback_info info) {
  const char* fn = "writeSendHttp1HeadBound";
  size_t argc = 12;
  napi_value in[12];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, in, nullptr, &data) != napi_ok) return nullptr;
  if (argc < 11) return HeadThrow(env, fn, false, "arguments must be (out, firstLine, src, nRuns, extra, tail, tailStart, tailEnd, fd, keepAt, keepLen[, at])");
  auto* w = static_cast<BoundWriter*>(data);
  napi_value argv[9] = {in[0], in[1], in[2], nullptr, in[3], in[4], in[5], in[6], in[7]};
  int32_t fd, keep_at, keep_len;
  if (napi_get_value_int32(env, in[8], &fd) != napi_ok || napi_get_value_int32(env, in[9], &keep_at) != napi_ok ||
      napi_get_value_int32(env, in[10], &keep_len) != napi_ok)
    return HeadThrow(env, fn, false, "fd, keepAt and keepLen must be numbers");
  int32_t at = 0;
  napi_valuetype vt = napi_undefined;
  if (argc > 11 && napi_typeof(env, in[11], &vt) == napi_ok && vt != napi_undefined &&
      (napi_get_value_int32(env, in[11], &at) != napi_ok || at < 0))
    return HeadThrow(env, fn, true, "at must be a non-negative number");
  uint8_t* out = nullptr;
  size_t cap = 0;
  if (!OutArg(env, fn, argv[0], &out, &cap)) return nullptr;
  HeadPieces h;
  if (!ReadPieces(env, fn, argv, h, w->runs, w->runs_len)) return nullptr;
  return WriteSendWith(env, fn, w, out, cap, h, fd, keep_at, keep_len, at);
}

// The slots of the args array (bindHttp1HeadWriter's second argument), src/protocols/http1/encoder.ts's ARG.
// kArgKnown: 0, or kKnown with kKnowSrc / kKnowTail for a src / tail given (not null) and
// kKnowLengths with the strings' lengths in kArgFirstLen and kArgExtraLen.
// kArgDrop and kArgSize (past kArgCount: an array of 12 slots) are read and written only under
// kKnowRunsFromHead: the HeaderKind bits of the fields left out, and the head's size as written.
enum { kArgRuns = 0, kArgTailStart = 1, kArgTailEnd = 2, kArgAt = 3, kArgFd = 4, kArgKeepAt = 5, kArgKeepLen = 6, kArgKnown = 7, kArgFirstLen = 8, kArgExtraLen = 9, kArgCount = 10,
       kArgDrop = 10, kArgSize = 11, kArgCountRuns = 12 };

// The string lengths the args array gives (kKnowLengths), checked to be lengths at all.
static bool ArgLengths(const int32_t* a, HeadPieces& h) {
  if (!(a[kArgKnown] & kKnowLengths)) return true;
  if (a[kArgFirstLen] < 0 || a[kArgExtraLen] < 0) return false;
  h.first_len = size_t(a[kArgFirstLen]);
  h.extra_len = size_t(a[kArgExtraLen]);
  return true;
}

// The kept lines of the head the parser reported last (its fields in the kTableHeadOut table,
// offsets into h.src) as runs: fields whose kind (below 32, OTHER always kept) has no bit in
// `drop` stay, and fields that follow each other across exactly CRLF make one run; h.size grows
// by their bytes. What collectRuns in encoder.ts does over head.fields, less the JavaScript loop
// (~40 instructions a field) and the runs array it fills. JavaScript asks only for a head whose
// fields are still the table's (fieldsInTables in src/protocols/http1/parser.ts); every run is
// checked to lie inside src all the same.
static bool RunsFromHeadOut(napi_env env, const char* fn, HeadPieces& h, int32_t drop, std::vector<int32_t>& runs, BoundWriter::RunsMemo& memo) {
  if (h.env == nullptr) h.env = GetEnv(Napi::Env(env));
  const strait::Env::Table& o = h.env->tables[kTableHeadOut];
  if (o.data == nullptr || o.type != napi_int32_array || o.len < size_t(kFieldsAt)) return HeadThrow(env, fn, false, "no Int32Array is registered as the head parser's results"), false;
  if (h.src == nullptr) return HeadThrow(env, fn, false, "runs from the head need its src"), false;
  const int32_t* out = static_cast<const int32_t*>(o.data);
  const int32_t count = out[kFieldCount];
  const size_t at = RecordsAt(out);
  if (count < 0 || at > o.len || size_t(count) > (o.len - at) / size_t(kFieldSlots)) return HeadThrow(env, fn, true, "the head's field count is past the results table"), false;
  const uint8_t* src = h.src;
  const size_t src_len = h.src_len;
  // The table holds the head a parser stamped last: a head with the bytes of the one the runs
  // were worked out for has them at the same distances from its first field.
  const strait::Env::Http1Stamp& st = h.env->http1_stamp;
  const uint64_t gen = st.out == out && st.records_at == at && count > 0 ? st.gen : 0;
  if (gen != 0 && memo.gen == gen && memo.drop == drop && memo.count == count) {
    int32_t* w = runs.data();
    const int32_t d = out[at + 1] - memo.first;
    const int32_t n2 = 2 * memo.n;
    if (n2 > 0 && (w[0] + d < 0 || size_t(w[n2 - 1] + d) > src_len)) return HeadThrow(env, fn, true, "a field is outside src"), false;
    for (int32_t i = 0; i < n2; i++) w[i] += d;
    memo.first = out[at + 1];
    h.runs = w;
    h.n_runs = memo.n;
    h.size += memo.size;
    return true;
  }
  memo.gen = 0;  // the runs are rewritten from here (a throw leaves them half done)
  // The writer's own (a thread_local here cost a __tls_get_addr call a head), grown to the most
  // fields a head had; written through a pointer, not push_back (~45 instructions a field).
  if (runs.size() < 2 * size_t(count)) runs.resize(2 * size_t(count));
  int32_t* w = runs.data();
  int32_t n = 0;
  size_t size = 0;
  int32_t run_s = -1, run_e = -1;
  const int32_t* r = out + at;
  for (int32_t k = 0; k < count; k++, r += kFieldSlots) {
    const int32_t kind = r[0];
    if (kind > 0 && kind < 32 && ((drop >> kind) & 1) != 0) continue;
    const int32_t s = r[1], e = r[4];
    if (s < 0 || e < s || size_t(e) > src_len) return HeadThrow(env, fn, true, "a field is outside src"), false;
    size += size_t(e - s) + 2;
    if (run_s >= 0 && s == run_e + 2 && src[run_e] == '\r' && src[run_e + 1] == '\n') {
      run_e = e;
      continue;
    }
    if (run_s >= 0) {
      w[n++] = run_s;
      w[n++] = run_e;
    }
    run_s = s;
    run_e = e;
  }
  if (run_s >= 0) {
    w[n++] = run_s;
    w[n++] = run_e;
  }
  h.runs = w;
  h.n_runs = n / 2;
  h.size += size;
  memo = {gen, drop, count, count > 0 ? out[at + 1] : 0, n / 2, size};
  return true;
}

// kKnowSameFirst / kKnowSameExtra: the strings' bytes from `lines` (their lengths given, and
// checked to be the kept ones'); otherwise the string read from V8 is kept there once written.
static bool SameLines(napi_env env, const char* fn, int32_t known, BoundWriter::Lines& lines, HeadPieces& h) {
  if ((known & (kKnowSameFirst | kKnowSameExtra)) && !(known & kKnowLengths)) return HeadThrow(env, fn, false, "same lines need their lengths"), false;
  if (known & kKnowSameFirst) {
    if (h.first_len != lines.first.size()) return HeadThrow(env, fn, true, "firstLine is not the one written last"), false;
    h.first_bytes = reinterpret_cast<const uint8_t*>(lines.first.data());
  } else {
    h.keep_first = &lines.first;
  }
  if (known & kKnowSameExtra) {
    if (h.extra_len != lines.extra.size()) return HeadThrow(env, fn, true, "extra is not the one written last"), false;
    h.extra_bytes = reinterpret_cast<const uint8_t*>(lines.extra.data());
  } else {
    h.keep_extra = &lines.extra;
  }
  return true;
}

// What writeAt and writeSendAt share once called: their writer and args array, `out` (the
// argument, or the slab registered in `slot` under kKnowOutTable) and the head's pieces read.
struct ArgsHead {
  BoundWriter* w = nullptr;
  int32_t* a = nullptr;
  uint8_t* out = nullptr;
  size_t cap = 0;
  HeadPieces h;
};

// `nargs` arguments (out, firstLine, src, extra[, tail]); `tail`: whether the fifth is the tail
// (writeAt) or there is none, whatever the array says (writeSendAt); `role`: which of the
// writer's kept lines are the caller's (0 writeAt, 1 writeSendAt). False once it has thrown.
static bool ReadArgsHead(napi_env env, napi_callback_info info, const char* fn, const char* usage, bool tail, TableSlot slot, const char* no_slab, int role, ArgsHead& r) {
  size_t argc = 5;
  napi_value in[5];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, in, nullptr, &data) != napi_ok) return false;
  if (argc < (tail ? 5u : 4u)) return HeadThrow(env, fn, false, usage), false;
  r.w = static_cast<BoundWriter*>(data);
  r.h.env = r.w->env;
  int32_t* a = r.a = r.w->args;
  if (a[kArgAt] < 0) return HeadThrow(env, fn, true, "at must be a non-negative number"), false;
  napi_value tail_arg;
  if (tail) {
    tail_arg = in[4];
    r.h.tail_start = a[kArgTailStart];
    r.h.tail_end = a[kArgTailEnd];
  } else {
    napi_get_null(env, &tail_arg);
  }
  napi_value argv[9] = {in[0], in[1], in[2], nullptr, nullptr, in[3], tail_arg, nullptr, nullptr};
  const int32_t known = a[kArgKnown] & kKnown ? (tail ? a[kArgKnown] : a[kArgKnown] & ~kKnowTail) : 0;
  if (known & kKnowOutTable) {
    if (!ByteTable(env, r.h, slot, &r.out, &r.cap)) return HeadThrow(env, fn, false, no_slab), false;
  } else if (!OutArg(env, fn, argv[0], &r.out, &r.cap)) {
    return false;
  }
  const bool from_head = (known & kKnowRunsFromHead) != 0;
  if (from_head && r.w->args_len < size_t(kArgCountRuns)) return HeadThrow(env, fn, false, "runs from the head need an args array of 12 slots"), false;
  r.h.n_runs = from_head ? 0 : a[kArgRuns];
  if (!ArgLengths(a, r.h)) return HeadThrow(env, fn, true, "string lengths out of range"), false;
  if (!SameLines(env, fn, known, r.w->lines[role], r.h)) return false;
  if (!ReadPiecesWith(env, fn, argv, r.h, r.w->runs, r.w->runs_len, known)) return false;
  if (!from_head) return true;
  if (!RunsFromHeadOut(env, fn, r.h, a[kArgDrop], r.w->head_runs[role], r.w->runs_memo[role])) return false;
  a[kArgSize] = int32_t(std::min(r.h.size, size_t(INT32_MAX)));
  return true;
}

// writeAt(out, firstLine, src, extra, tail): write's bytes into out[at, ...), the numbers (nRuns,
// tailStart, tailEnd, at) from the bound args array.
napi_value BoundWriteArgs(napi_env env, napi_callback_info info) {
  const char* fn = "writeHttp1HeadArgs";
  ArgsHead r;
  if (!ReadArgsHead(env, info, fn, "arguments must be (out, firstLine, src, extra, tail)", true, kTableStage, "no Uint8Array is registered as the stage", 0, r)) return nullptr;
  const size_t at = size_t(r.a[kArgAt]);
  if (at > r.cap || r.h.size > r.cap - at || r.h.size > size_t(INT32_MAX)) return HeadThrow(env, fn, true, "out is too small");
  if (!PutPieces(env, r.h, r.out + at)) return PiecesThrow(env, fn);
  napi_value v;
  napi_create_int32(env, int32_t(r.h.size), &v);
  return v;
}

// writeSendAt(out, firstLine, src, extra): writeSend with no tail, the numbers (nRuns, at, fd,
// keepAt, keepLen) from the bound args array.
napi_value BoundWriteSendArgs(napi_env env, napi_callback_info info) {
  const char* fn = "writeSendHttp1HeadArgs";
  ArgsHead r;
  if (!ReadArgsHead(env, info, fn, "arguments must be (out, firstLine, src, extra)", false, kTableKept, "no Uint8Array is registered as the kept slab", 1, r)) return nullptr;
  const int32_t* a = r.a;
  int32_t keep_at = a[kArgKeepAt];
  // The size is known only now: the kept range is given as a distance from the head's end.
  if ((a[kArgKnown] & kKnown) && (a[kArgKnown] & kKnowRunsFromHead) && keep_at >= 0) {
    if (keep_at == 0 || size_t(keep_at) > r.h.size) return HeadThrow(env, fn, true, "keepAt/keepLen out of range");
    keep_at = int32_t(r.h.size - size_t(keep_at));
  }
  return WriteSendWith(env, fn, r.w, r.out, r.cap, r.h, a[kArgFd], keep_at, a[kArgKeepLen], a[kArgAt]);
}

// The rest of writeSend once `out` and the pieces are read: the head written from out[at], the
// kept range restored or filled, the send.
napi_value WriteSendWith(napi_env env, const char* fn, BoundWriter* w, uint8_t* outp, size_t cap, HeadPieces& h, int32_t fd, int32_t keep_at, int32_t keep_len, int32_t at) {
  if (size_t(at) > cap || h.size > cap - size_t(at) || h.size > size_t(INT32_MAX)) return HeadThrow(env, fn, true, "out is too small");
  uint8_t kept[64];
  const bool keep = keep_at >= 0;
  const bool fill_id = keep && keep_len == -1;
  if (fill_id) keep_len = int32_t(kUuidLength);
  if (keep && (keep_len < 0 || size_t(keep_len) > sizeof kept || size_t(keep_at) + size_t(keep_len) > h.size))
    return HeadThrow(env, fn, true, "keepAt/keepLen out of range");
  auto* out = static_cast<uint8_t*>(outp) + at;
  if (fill_id) {
    if (!w->ids) w->ids = std::make_unique<RequestIds>();
    if (!w->ids->Write(kept)) return HeadThrow(env, fn, false, "no random bytes for a request id (getrandom failed)");
  } else if (keep) {
    memcpy(kept, out + keep_at, size_t(keep_len));
  }
  if (!PutPieces(env, h, out)) return PiecesThrow(env, fn);
  if (keep) memcpy(out + keep_at, kept, size_t(keep_len));
  int32_t r = int32_t(h.size);
  if (fd >= 0) r = SendNow(fd, out, h.size);
  napi_value rv;
  napi_create_int32(env, r, &rv);
  return rv;
}

// bindHttp1HeadWriter(runs[, args]) -> [write, send, writeSend[, writeAt, writeSendAt]], all holding
// `runs` (and `args`) alive.
napi_value BindWriter(napi_env env, napi_callback_info info) {
  const char* fn = "bindHttp1HeadWriter";
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  napi_typedarray_type type;
  size_t len = 0;
  void* p = nullptr;
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &len, &p, nullptr, nullptr) != napi_ok || type != napi_int32_array)
    return HeadThrow(env, fn, false, "runs must be an Int32Array");
  const int32_t* args = nullptr;
  size_t args_len = 0;
  if (!OptionalArgs(env, argc, argv, size_t(kArgCount), fn, "args must be an Int32Array of 10 slots or more", &args, &args_len)) return nullptr;
  auto* w = new BoundWriter();
  w->env = GetEnv(Napi::Env(env));
  w->runs = static_cast<const int32_t*>(p);
  w->runs_len = len;
  w->users = 2;  // BoundPair's two first: once both finalizers are registered, the third's is added
  napi_value pair = BoundPair(env, argv[0], w, &w->runs_ref, "writeHttp1HeadBound", BoundWrite, "sendHttp1HeadBound", BoundSend, ReleaseWriter);
  if (pair == nullptr) return nullptr;
  // The third shares `w`: counted before its finalizer can run, so `w` outlives all three.
  napi_value c;
  if (napi_create_function(env, "writeSendHttp1HeadBound", NAPI_AUTO_LENGTH, BoundWriteSend, w, &c) != napi_ok) return pair;
  w->users++;
  if (napi_add_finalizer(env, c, w, ReleaseWriter, nullptr, nullptr) != napi_ok) {
    w->users--;  // never registered: only the pair's finalizers will run
    return pair;
  }
  napi_set_element(env, pair, 2, c);
  if (args == nullptr) return pair;
  // writeAt and writeSendAt, with the numbers in `args`, which they keep alive (w->args_ref).
  if (napi_create_reference(env, argv[1], 1, &w->args_ref) != napi_ok) return pair;
  w->args = const_cast<int32_t*>(args);
  w->args_len = args_len;
  static constexpr struct {
    const char* name;
    napi_callback cb;
  } kArgFns[] = {{"writeHttp1HeadArgs", BoundWriteArgs}, {"writeSendHttp1HeadArgs", BoundWriteSendArgs}};
  for (uint32_t k = 0; k < 2; k++) {
    napi_value f;
    if (napi_create_function(env, kArgFns[k].name, NAPI_AUTO_LENGTH, kArgFns[k].cb, w, &f) != napi_ok) return pair;
    w->users++;
    if (napi_add_finalizer(env, f, w, ReleaseWriter, nullptr, nullptr) != napi_ok) {
      w->users--;
      return pair;
    }
    napi_set_element(env, pair, 3 + k, f);
  }
  return pair;
}

// The pairs of flat[i, end) ("name\0value\0...", the last NUL optional) as "name: value\r\n"
// lines at out[o]; `te` is left out (hop-by-hop). Returns the new offset, or -1 when out is too small.
long PutFlatFields(const uint8_t* flat, size_t i, size_t end, uint8_t* out, size_t o, size_t cap) {
  while (i < end) {
    const auto* nul = static_cast<const uint8_t*>(memchr(flat + i, 0, end - i));
    const size_t name_end = nul ? size_t(nul - flat) : end;
    const size_t v = name_end < end ? name_end + 1 : end;
    nul = v < end ? static_cast<const uint8_t*>(memchr(flat + v, 0, end - v)) : nullptr;
    const size_t value_end = nul ? size_t(nul - flat) : end;
    const size_t name_len = name_end - i, value_len = value_end - v;
    if (!(name_len == 2 && flat[i] == 't' && flat[i + 1] == 'e')) {
      if (o + name_len + value_len + 4 > cap) return -1;
      memcpy(out + o, flat + i, name_len);
      o += name_len;
      out[o++] = ':';
      out[o++] = ' ';
      memcpy(out + o, flat + v, value_len);
      o += value_len;
      out[o++] = '\r';
      out[o++] = '\n';
    }
    i = value_end + 1;
  }
  return long(o);
}

// Appends string `s` (latin1, one byte per char as V8 writes it) at out[o]; false when it does
// not fit. V8 ends what it writes with a NUL, so one byte of room past the string is needed.
// One N-API call when the string ends before out does; only one that reaches the end may have
// been cut, and asks for the length.
bool PutString(napi_env env, napi_value s, uint8_t* out, size_t& o, size_t cap) {
  if (o >= cap) return false;
  size_t got = 0, len = 0;
  if (napi_get_value_string_latin1(env, s, reinterpret_cast<char*>(out + o), cap - o, &got) != napi_ok) return false;
  if (got + 1 < cap - o) {
    o += got;
    return true;
  }
  napi_get_value_string_latin1(env, s, nullptr, 0, &len);
  if (o + len + 1 > cap) return false;
  o += len;  // it fitted, so it was written whole
  return true;
}

// Reads string `s` (latin1) into buf at `at`, growing buf when it does not fit: one N-API call
// for a string shorter than the room buf already has. False when `s` is no string.
bool ReadAt(napi_env env, napi_value s, std::string& buf, size_t at, size_t* len) {
  if (buf.size() < at + 256) buf.resize(at + 256);
  size_t room = buf.size() - at, got = 0;
  if (napi_get_value_string_latin1(env, s, &buf[at], room, &got) != napi_ok) return false;
  if (got + 1 >= room) {
    napi_get_value_string_latin1(env, s, nullptr, 0, &got);
    if (buf.size() < at + got + 1) buf.resize(at + got + 1);
    napi_get_value_string_latin1(env, s, &buf[at], got + 1, &got);
  }
  *len = got;
  return true;
}

// writeHttp1HeadFromFlat(out, method, path, authority, src, runs, nRuns, extra, chunked) ->
// bytes written (`runs` null: the runs table, setTable slot 0). The HTTP/1.1 head of a request that
// came as HTTP/2 (FlatRequest.h1Head in
// src/filters/network/http_connection_manager/upstream_try.ts, the reference): request line and
// host, then the "name\0value\0" pairs of src's kept runs and of extra as header lines (`te`
// left out), `transfer-encoding: chunked` when asked, and the blank line. One call instead of two
// string writes, a byte loop and a slice in JavaScript per forwarded request.
//
// With a number `fd` in place of `out` and the head's expected `size` as a tenth argument, the
// head is built in a scratch buffer and sent by one non-blocking send instead: bytes sent or
// -errno, or kHeadNotSent (nothing sent) when the head is not `size` bytes. A head the kernel
// takes whole then never becomes a Buffer. An eleventh argument true (`fillId`, after `size` or
// undefined): extra's last pair is REQUEST_ID_FILL_PAIR, and its value is written as a fresh id.
constexpr int32_t kHeadNotSent = -0x7fffffff;  // HEAD_NOT_SENT in src/protocols/http1/encoder.ts

// "<method> <path> HTTP/1.1\r\nhost: <authority>\r\n" at out[o], each value written by put(k)
// (0 method, 1 path, 2 authority), which advances `o`; false when out is too small.
template <typename Put>
bool PutRequestStart(Put put, uint8_t* out, size_t& o, size_t cap) {
  static const char kVersion[] = " HTTP/1.1\r\nhost: ";
  bool ok = put(0) && o + 1 <= cap;
  if (ok) out[o++] = ' ';
  ok = ok && put(1) && o + sizeof kVersion - 1 <= cap;
  if (ok) {
    memcpy(out + o, kVersion, sizeof kVersion - 1);
    o += sizeof kVersion - 1;
  }
  ok = ok && put(2) && o + 2 <= cap;
  if (ok) {
    out[o++] = '\r';
    out[o++] = '\n';
  }
  return ok;
}

// fillId: the head's additions end with "x-request-id: <placeholder>\r\n" (REQUEST_ID_FILL_PAIR),
// whose value gets a fresh id; `o` is just past that line.
void FillHeadRequestId(napi_env env, uint8_t* out, size_t o) {
  static const char kName[] = "x-request-id: ";
  if (o >= 2) FillRequestId(GetEnv(Napi::Env(env))->request_ids, out, out + o - 2, kName, sizeof kName - 1);
}

// The kept runs of `src` and then the pairs of `extra` as header lines at out[o]; false when
// out is too small.
bool PutRunsThenExtra(const uint8_t* src, const int32_t* runs, int32_t n_runs, const uint8_t* extra, size_t extra_len, uint8_t* out, size_t& o, size_t cap) {
  for (int32_t k = 0; k < n_runs; k++) {
    const long e = PutFlatFields(src, size_t(runs[2 * k]), size_t(runs[2 * k + 1]), out, o, cap);
    if (e < 0) return false;
    o = size_t(e);
  }
  const long e = PutFlatFields(extra, 0, extra_len, out, o, cap);
  if (e < 0) return false;
  o = size_t(e);
  return true;
}

napi_value WriteHeadFromFlat(napi_env env, napi_callback_info info) {
  const char* fn = "writeHttp1HeadFromFlat";
  size_t argc = 11;
  napi_value argv[11];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  if (argc < 9) return HeadThrow(env, fn, false, "arguments must be (out | fd, method, path, authority, src, runs, nRuns, extra, chunked[, size[, fillId]])");
  napi_typedarray_type type;
  napi_valuetype vt;
  size_t cap = 0, runs_len = 0, src_len = 0, extra_len = 0;
  void* outp = nullptr;
  int32_t fd = -1;
  if (napi_typeof(env, argv[0], &vt) != napi_ok) return nullptr;
  if (vt == napi_number) {
    int32_t size = 0;
    if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return HeadThrow(env, fn, false, "fd must be a non-negative number");
    if (argc < 10 || napi_get_value_int32(env, argv[9], &size) != napi_ok || size < 0) return HeadThrow(env, fn, false, "size must be a non-negative number");
    cap = size_t(size);
  } else if (napi_get_typedarray_info(env, argv[0], &type, &cap, &outp, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
    return HeadThrow(env, fn, false, "out must be a Buffer or Uint8Array");
  }
  const int32_t* runs = nullptr;
  if (!RunsOf(env, GetEnv(Napi::Env(env)), argv[5], &runs, &runs_len)) return HeadThrow(env, fn, false, "runs must be an Int32Array, or null for the runs table");
  int32_t n_runs = 0;
  bool chunked = false;
  if (napi_get_value_int32(env, argv[6], &n_runs) != napi_ok || napi_get_value_bool(env, argv[8], &chunked) != napi_ok)
    return HeadThrow(env, fn, false, "nRuns must be a number and chunked a boolean");
  // The two lists as bytes, side by side (plus V8's closing NUL), and in send mode the head
  // itself; one of each per thread, grown to the largest seen.
  static thread_local std::string scratch;
  static thread_local std::string head;
  if (!ReadAt(env, argv[4], scratch, 0, &src_len) || !ReadAt(env, argv[7], scratch, src_len, &extra_len))
    return HeadThrow(env, fn, false, "src and extra must be strings");
  if (n_runs < 0 || size_t(n_runs) * 2 > runs_len) return HeadThrow(env, fn, true, "nRuns out of range");
  for (int32_t k = 0; k < n_runs; k++) {
    if (runs[2 * k] < 0 || runs[2 * k + 1] < runs[2 * k] || size_t(runs[2 * k + 1]) > src_len) return HeadThrow(env, fn, true, "a run is outside src");
  }
  const auto* flat = reinterpret_cast<const uint8_t*>(scratch.data());
  if (fd >= 0) {
    if (head.size() < cap + 1) head.resize(cap + 1);
    outp = &head[0];
  }
  auto* out = static_cast<uint8_t*>(outp);
  size_t o = 0;
  static const char kChunked[] = "transfer-encoding: chunked\r\n";
  bool ok = PutRequestStart([&](int k) { return PutString(env, argv[1 + k], out, o, cap); }, out, o, cap) &&
            PutRunsThenExtra(flat, runs, n_runs, flat + src_len, extra_len, out, o, cap);
  bool fill = false;
  if (ok && argc > 10 && napi_get_value_bool(env, argv[10], &fill) == napi_ok && fill) FillHeadRequestId(env, out, o);
  if (ok && chunked) {
    ok = o + sizeof kChunked - 1 <= cap;
    if (ok) {
      memcpy(out + o, kChunked, sizeof kChunked - 1);
      o += sizeof kChunked - 1;
    }
  }
  ok = ok && o + 2 <= cap && o + 2 <= size_t(INT32_MAX);
  napi_value r;
  if (fd >= 0) {
    // Send mode: a head that is not the size the caller expects is not sent; the caller then
    // writes it from a Buffer.
    int32_t sent = kHeadNotSent;
    if (ok) {
      out[o++] = '\r';
      out[o++] = '\n';
      if (o == cap) sent = SendNow(fd, out, o);
    }
    napi_create_int32(env, sent, &r);
    return r;
  }
  if (!ok) return HeadThrow(env, fn, true, "out is too small");
  out[o++] = '\r';
  out[o++] = '\n';
  napi_create_int32(env, int32_t(o), &r);
  return r;
}

constexpr int32_t kHeadNotHeld = -0x7ffffffe;  // HEAD_NOT_HELD in src/protocols/http1/encoder.ts

// A value for the request line or Host: the held request's own (its bit in `same`, 1 method,
// 2 path, 4 authority) or JavaScript's string.
bool PutValue(napi_env env, napi_value s, const http2::HeldRequestView& h, int k, int32_t same, uint8_t* out, size_t& o, size_t cap) {
  if (!(same & (1 << k))) return PutString(env, s, out, o, cap);
  const size_t n = h.pseudo_len[k];
  if (!h.pseudo[k] || o + n > cap) return false;
  memcpy(out + o, h.pseudo[k], n);
  o += n;
  return true;
}

// sendHttp1HeadHeld(fd, size, downSession, downStream, same, method, path, authority, runs,
// nRuns, extra[, fillId]) -> as writeHttp1HeadFromFlat's send mode, or HEAD_NOT_HELD.
// `same`'s bits past the three pseudo-headers' (HELD_* in upstream_try.ts): kHeldExtraGen, the
// extra is the string JavaScript numbered with the call-args table's slot 7 (sendHttp1HeadHeldArgs
// only; a number never given to another string), so the HTTP/1 lines made of it last under that
// number are copied and the string not read; kHeldRunsTable, the runs are the runs table's.
enum : int32_t { kHeldExtraGen = 8, kHeldRunsTable = 16 };
// writeHttp1HeadFromFlat(fd, ...) for a request that came in on a native HTTP/2 server session
// of this thread, which holds it for stream `downStream` (requestHeld's block): the kept runs
// are cut from those bytes instead of a string handed back and read again, and the method, path
// and authority that are the request's own (`same`) are not read either.
napi_value SendHeadHeldWith(napi_env env, const char* fn, napi_value* argv, int32_t fd, int32_t size, double dsid, int32_t down, int32_t same, int32_t n_runs, bool fill, double gen = 0);

napi_value SendHeadHeld(napi_env env, napi_callback_info info) {
  const char* fn = "sendHttp1HeadHeld";
  size_t argc = 12;
  napi_value argv[12];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  int32_t fd = -1, size = 0, down = 0, same = 0, n_runs = 0;
  double dsid = 0;
  if (argc < 11 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_get_value_int32(env, argv[1], &size) != napi_ok || size < 0 ||
      napi_get_value_double(env, argv[2], &dsid) != napi_ok || napi_get_value_int32(env, argv[3], &down) != napi_ok ||
      napi_get_value_int32(env, argv[4], &same) != napi_ok || napi_get_value_int32(env, argv[9], &n_runs) != napi_ok)
    return HeadThrow(env, fn, false, "arguments must be (fd, size, downSession, downStream, same, method, path, authority, runs, nRuns, extra[, fillId])");
  bool fill = false;
  if (argc > 11 && napi_get_value_bool(env, argv[11], &fill) != napi_ok) fill = false;
  return SendHeadHeldWith(env, fn, argv, fd, size, dsid, down, same, n_runs, fill);
}

// The slots of sendHttp1HeadHeldArgs' numbers in the registered call-args table (kTableCallArgs,
// a Float64Array: a session number does not fit an int32), src/native.ts's CALL_ARGS.
enum { kHeldFd = 0, kHeldSize = 1, kHeldSession = 2, kHeldStream = 3, kHeldSame = 4, kHeldRuns = 5, kHeldFillId = 6, kHeldCount = 7, kHeldGen = 7 };

// sendHttp1HeadHeldArgs(method, path, authority, runs, extra): sendHttp1HeadHeld with its numbers
// (fd, size, downSession, downStream, same, nRuns, fillId) in the registered call-args table:
// seven number reads fewer (~350 instructions) per request an h2c client sends to HTTP/1.
napi_value SendHeadHeldArgs(napi_env env, napi_callback_info info) {
  const char* fn = "sendHttp1HeadHeldArgs";
  size_t argc = 5;
  napi_value in[5];
  if (napi_get_cb_info(env, info, &argc, in, nullptr, nullptr) != napi_ok) return nullptr;
  const strait::Env::Table& t = GetEnv(Napi::Env(env))->tables[kTableCallArgs];
  if (argc < 5) return HeadThrow(env, fn, false, "arguments must be (method, path, authority, runs, extra)");
  if (t.data == nullptr || t.type != napi_float64_array || t.len < size_t(kHeldCount)) return HeadThrow(env, fn, false, "no Float64Array of 7 slots or more is registered as the call-args table");
  const double* a = static_cast<const double*>(t.data);
  int32_t fd, size, down, same, n_runs;
  if (!IntIn(a[kHeldFd], 0, INT32_MAX, &fd) || !IntIn(a[kHeldSize], 0, INT32_MAX, &size) || !IntIn(a[kHeldStream], INT32_MIN, INT32_MAX, &down) ||
      !IntIn(a[kHeldSame], INT32_MIN, INT32_MAX, &same) || !IntIn(a[kHeldRuns], INT32_MIN, INT32_MAX, &n_runs))
    return HeadThrow(env, fn, false, "the call-args table's fd, size, downStream, same and nRuns must be integers (fd and size not negative)");
  napi_value argv[11] = {nullptr, nullptr, nullptr, nullptr, nullptr, in[0], in[1], in[2], in[3], nullptr, in[4]};
  const double gen = (same & kHeldExtraGen) && t.len > size_t(kHeldGen) ? a[kHeldGen] : 0;
  return SendHeadHeldWith(env, fn, argv, fd, size, a[kHeldSession], down, same, n_runs, a[kHeldFillId] != 0, gen);
}

// sendHttp1HeadHeld's work once its numbers are read: argv[5..8] and [10] are the method, path,
// authority, runs and extra.
napi_value SendHeadHeldWith(napi_env env, const char* fn, napi_value* argv, int32_t fd, int32_t size, double dsid, int32_t down, int32_t same, int32_t n_runs, bool fill, double gen) {
  http2::HeldRequestView h;
  napi_value r;
  if (!http2::HeldRequest(dsid, down, &h)) {
    napi_create_int32(env, kHeadNotHeld, &r);
    return r;
  }
  strait::Env* e = GetEnv(Napi::Env(env));
  const int32_t* runs = nullptr;
  size_t runs_len = 0, extra_len = 0;
  if (same & kHeldRunsTable) {
    // The runs argument is null and the runs table holds them: no napi_typeof to learn it.
    const strait::Env::Table& t = e->tables[kTableRuns];
    if (t.data == nullptr || t.type != napi_int32_array) return HeadThrow(env, fn, false, "no Int32Array is registered as the runs table");
    runs = static_cast<const int32_t*>(t.data);
    runs_len = t.len;
  } else if (!RunsOf(env, e, argv[8], &runs, &runs_len)) {
    return HeadThrow(env, fn, false, "runs must be an Int32Array, or null for the runs table");
  }
  if (n_runs < 0 || size_t(n_runs) * 2 > runs_len) return HeadThrow(env, fn, true, "nRuns out of range");
  for (int32_t k = 0; k < n_runs; k++) {
    if (runs[2 * k] < 0 || runs[2 * k + 1] < runs[2 * k] || size_t(runs[2 * k + 1]) > h.list) return HeadThrow(env, fn, true, "a run is outside the held request");
  }
  strait::Env::HeldH1& held = e->held_h1;
  // The lines made of the extra numbered `gen` (kHeldExtraGen) are copied, that string not read.
  // Any other call voids them until its extra is converted, and keeps its lines under its number
  // (0 when it gave none: they are not taken again).
  const bool kept = gen != 0 && held.lines_ok && held.gen == gen;
  if (!kept) {
    held.lines_ok = false;
    held.gen = gen;
    if (!ReadAt(env, argv[10], held.extra, 0, &extra_len)) return HeadThrow(env, fn, false, "extra must be a string");
  }
  const size_t cap = size_t(size);
  std::string& head = held.head;
  if (head.size() < cap + 1) head.resize(cap + 1);
  auto* out = reinterpret_cast<uint8_t*>(&head[0]);
  size_t o = 0;
  bool ok = PutRequestStart([&](int k) { return PutValue(env, argv[5 + k], h, k, same, out, o, cap); }, out, o, cap) &&
            PutRunsThenExtra(reinterpret_cast<const uint8_t*>(h.data), runs, n_runs, nullptr, 0, out, o, cap);
  if (ok && kept) {
    ok = o + held.lines.size() <= cap;
    if (ok) {
      memcpy(out + o, held.lines.data(), held.lines.size());
      o += held.lines.size();
    }
  } else if (ok) {
    const size_t at = o;
    ok = PutRunsThenExtra(nullptr, nullptr, 0, reinterpret_cast<const uint8_t*>(held.extra.data()), extra_len, out, o, cap);
    if (ok) {
      held.lines.assign(reinterpret_cast<const char*>(out + at), o - at);
      held.lines_ok = true;
    }
  }
  if (ok && fill) FillHeadRequestId(env, out, o);
  int32_t sent = kHeadNotSent;
  if (ok && o + 2 == cap) {
    out[o++] = '\r';
    out[o++] = '\n';
    sent = SendNow(fd, out, o);
  }
  napi_create_int32(env, sent, &r);
  return r;
}

}  // namespace

Napi::Function SendHeadHeldFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "sendHttp1HeadHeld", NAPI_AUTO_LENGTH, SendHeadHeld, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

Napi::Function SendHeadHeldArgsFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "sendHttp1HeadHeldArgs", NAPI_AUTO_LENGTH, SendHeadHeldArgs, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

Napi::Function BindWriterFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "bindHttp1HeadWriter", NAPI_AUTO_LENGTH, BindWriter, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

Napi::Function WriteHeadFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "writeHttp1Head", NAPI_AUTO_LENGTH, WriteHead, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

Napi::Function SendHeadFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "sendHttp1Head", NAPI_AUTO_LENGTH, SendHead, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

Napi::Function SendFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "sendHttp1", NAPI_AUTO_LENGTH, Send, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

Napi::Function SendRangesFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "sendHttp1Ranges", NAPI_AUTO_LENGTH, SendRanges, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

Napi::Function BindParserFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "bindHttp1HeadParser", NAPI_AUTO_LENGTH, BindParser, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

Napi::Function ParseHeadFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "parseHttp1Head", NAPI_AUTO_LENGTH, ParseHead, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

Napi::Function WriteHeadFromFlatFunction(Napi::Env env) {
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "writeHttp1HeadFromFlat", NAPI_AUTO_LENGTH, WriteHeadFromFlat, nullptr, &fn), Napi::Function());
  return Napi::Function(env, fn);
}

}  // namespace http1
}  // namespace strait
