#include "io/js_util.h"

#include <string.h>
#include <uv.h>

namespace strait {

std::string ErrnoNameOf(int code) {
  int neg = code > 0 ? -code : code;  // libuv codes are negated errnos
  char buf[64];
  // uv_err_name_r, not uv_err_name: the latter strdup()s (and leaks) a string for unknown codes.
  uv_err_name_r(neg, buf, sizeof(buf));
  if (strncmp(buf, "Unknown", 7) != 0) return buf;
  if (const char* g = strerrorname_np(-neg)) return g;  // glibc >= 2.32
  return buf;
}

void ThrowErrno(Napi::Env env, const std::string& what, int err) {
  std::string name = ErrnoNameOf(err);
  Napi::Error e = Napi::Error::New(env, what + ": " + name + " (" + strerror(err) + ")");
  e.Set("code", Napi::String::New(env, name));
  e.Set("errno", Napi::Number::New(env, -err));
  throw e;
}

static std::string Where(const char* fn, const char* name) { return std::string(fn) + ": " + name; }

void ArgIntFail(napi_env env, bool number, double d, const char* fn, const char* name, int64_t min, int64_t max) {
  if (!number) throw Napi::TypeError::New(env, Where(fn, name) + " must be a number");
  throw Napi::RangeError::New(env, Where(fn, name) + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                                       "], got " + std::to_string(d));
}

bool ArgBool(napi_env env, napi_value v) {
  bool b;
  if (napi_get_value_bool(env, v, &b) == napi_ok) return b;
  return Napi::Value(env, v).ToBoolean();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsString()) throw Napi::TypeError::New(info.Env(), Where(fn, name) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsFunction()) throw Napi::TypeError::New(info.Env(), Where(fn, name) + " must be a function");
  return v.As<Napi::Function>();
}

double OptNumber(Napi::Object opts, const char* key, const char* fn, double min, double max) {
  Napi::Value v = opts.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(opts.Env(), Where(fn, key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max)) throw Napi::RangeError::New(opts.Env(), Where(fn, key) + " out of range: " + std::to_string(d));
  return d;
}

void CallFromLoop(Napi::Env env, const Napi::FunctionReference& fn, Napi::Value recv, std::initializer_list<napi_value> args,
                  const Napi::AsyncContext& ctx) {
  CallFromLoop(env, fn, recv, args.size(), args.begin(), ctx);
}

void CallFromLoop(Napi::Env env, const Napi::FunctionReference& fn, Napi::Value recv, size_t argc, const napi_value* argv,
                  const Napi::AsyncContext& ctx) {
  try {
    // Through the function, not FunctionReference::MakeCallback: that one opens an escapable
    // HandleScope of its own, which Node allocates on the heap (a malloc and a free per call).
    fn.Value().MakeCallback(recv, argc, argv, ctx);
  } catch (const Napi::Error& err) {
    // node-addon-api has already taken the exception off the env. Hand it to Node's
    // uncaught-exception machinery; during environment teardown (JS no longer callable)
    // there is nothing to report and the value is empty.
    if (!err.IsEmpty()) napi_fatal_exception(env, err.Value());
  }
}

Napi::Value ErrnoName(const Napi::CallbackInfo& info) {
  int32_t code = ArgInt(info, 0, "errnoName", "code", INT32_MIN + 1, INT32_MAX);
  return Napi::String::New(info.Env(), ErrnoNameOf(code));
}

}  // namespace strait
