// The JavaScript boundary: argument checks, errors thrown at set-up time, errno names, and
// calls back into JavaScript from libuv callbacks.
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>

namespace strait {

// "ECONNREFUSED" for -111 (or 111); libuv's names, then glibc's, for anything libuv lacks.
std::string ErrnoNameOf(int code);
// Throws a JS Error "<what>: EADDRINUSE (Address already in use)" with `code` = the errno
// name and `errno` = the negative errno, like Node's own system errors.
[[noreturn]] void ThrowErrno(Napi::Env env, const std::string& what, int err);

// A call's arguments, read with one napi_get_cb_info into a stack array, for the calls made
// per request. Napi::CallbackInfo asks twice and allocates the array on the heap when a call
// has more than six arguments (requestRuns has ten): ~250 instructions a call.
class Args {
 public:
  static constexpr size_t kMax = 13;  // arguments past this read as undefined (requestHeld has 13)
  // `skip` (0 or 1): a leading argument the method does not see, read with Raw(0) (the session
  // number of H2Session.calls). `max` (at most kMax): the arguments the method reads at most;
  // napi_get_cb_info fills every slot asked for, with undefined past the last argument given.
  Args(napi_env env, napi_callback_info cb, size_t skip = 0, size_t max = kMax) : env_(env), skip_(skip), cap_(max) {
    argc_ = max + skip;
    napi_get_cb_info(env, cb, &argc_, argv_, nullptr, &data_);
  }
  // For the same method called through the prototype.
  explicit Args(const Napi::CallbackInfo& info) : env_(info.Env()), argc_(info.Length()), data_(info.Data()) {
    for (size_t i = 0; i < kMax; i++) argv_[i] = info[i];
  }
  Napi::Env Env() const { return Napi::Env(env_); }
  size_t Length() const { return argc_ > skip_ ? argc_ - skip_ : 0; }
  void* Data() const { return data_; }
  Napi::Value operator[](size_t i) const { return i < cap_ ? Napi::Value(env_, argv_[i + skip_]) : Env().Undefined(); }
  napi_value Raw(size_t i) const { return argv_[i]; }

 private:
  napi_env env_;
  size_t skip_ = 0;
  size_t cap_ = kMax;
  size_t argc_;
  void* data_ = nullptr;
  napi_value argv_[kMax + 1];
};

// Argument checks: a TypeError/RangeError naming the function and the argument.
// ArgInt is inline and its error path out of line: it reads several arguments of every
// per-request call, and the error path's strings made the whole function save and restore six
// registers on every call. `min` lies within int32_t; a `max` past it (a buffer's length can
// be up to 4 GiB) is cut to INT32_MAX, so that the cast below stays defined.
[[noreturn]] void ArgIntFail(napi_env env, bool number, double d, const char* fn, const char* name, int64_t min, int64_t max);
inline int32_t ArgInt(napi_env env, napi_value v, const char* fn, const char* name, int64_t min, int64_t max) {
  double d = 0;
  if (max > INT32_MAX) max = INT32_MAX;
  // napi_get_value_double refuses a non-number itself: no napi_typeof first.
  const bool number = napi_get_value_double(env, v, &d) == napi_ok;
  if (number && d >= static_cast<double>(min) && d <= static_cast<double>(max)) {
    const int32_t i = static_cast<int32_t>(d);
    if (static_cast<double>(i) == d) return i;
  }
  ArgIntFail(env, number, d, fn, name, min, max);
}
inline int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t min, int64_t max) {
  return ArgInt(info.Env(), info[i], fn, name, min, max);
}
inline int32_t ArgInt(const Args& info, size_t i, const char* fn, const char* name, int64_t min, int64_t max) {
  return ArgInt(info.Env(), info[i], fn, name, min, max);
}
// Truthiness, as ToBoolean, without napi_coerce_to_bool's cost when the value is a boolean.
bool ArgBool(napi_env env, napi_value v);
inline bool ArgBool(const Napi::CallbackInfo& info, size_t i) { return ArgBool(info.Env(), info[i]); }
inline bool ArgBool(const Args& info, size_t i) { return ArgBool(info.Env(), info[i]); }
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
double OptNumber(Napi::Object opts, const char* key, const char* fn, double min, double max);

// Calls `fn` with `recv` as `this` through MakeCallback, so the async context is entered and
// promise microtasks / nextTicks queued by the callback run before control returns to libuv.
// Use only from libuv callbacks (no JavaScript frame below): a callback that throws becomes
// an 'uncaughtException' the way a throwing Node socket callback would, instead of a C++
// exception escaping into libuv or a JS exception silently left pending. The caller holds a
// HandleScope (every caller makes handles for `recv` or the arguments anyway).
void CallFromLoop(Napi::Env env, const Napi::FunctionReference& fn, Napi::Value recv, std::initializer_list<napi_value> args,
                  const Napi::AsyncContext& ctx);
void CallFromLoop(Napi::Env env, const Napi::FunctionReference& fn, Napi::Value recv, size_t argc, const napi_value* argv,
                  const Napi::AsyncContext& ctx);

Napi::Value ErrnoName(const Napi::CallbackInfo& info);

// A number read from a call-args table (CALL_ARGS) as an int32: an integral double in [lo, hi]
// (false otherwise: NaN, fractions, out of range).
inline bool IntIn(double v, int32_t lo, int32_t hi, int32_t* out) {
  if (!(v >= lo && v <= hi) || v != static_cast<double>(static_cast<int32_t>(v))) return false;
  *out = static_cast<int32_t>(v);
  return true;
}

}  // namespace strait
