// The JavaScript boundary: argument checks, errors thrown at set-up time, errno names, and
// calls back into JavaScript from libuv callbacks.
#pragma once
#include <napi.h>

#include <initializer_list>
#include <string>

namespace strait {

// "ECONNREFUSED" for -111 (or 111); libuv's names, then glibc's, for anything libuv lacks.
std::string ErrnoNameOf(int code);
// Throws a JS Error "<what>: EADDRINUSE (Address already in use)" with `code` = the errno
// name and `errno` = the negative errno, like Node's own system errors.
[[noreturn]] void ThrowErrno(Napi::Env env, const std::string& what, int err);

// Argument checks: a TypeError/RangeError naming the function and the argument.
int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t min, int64_t max);
// Truthiness, as ToBoolean, without napi_coerce_to_bool's cost when the value is a boolean.
bool ArgBool(const Napi::CallbackInfo& info, size_t i);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
double OptNumber(Napi::Object opts, const char* key, const char* fn, double min, double max);

// Calls `fn` with `recv` as `this` through MakeCallback, so the async context is entered and
// promise microtasks / nextTicks queued by the callback run before control returns to libuv.
// Use only from libuv callbacks (no JavaScript frame below): a callback that throws becomes
// an 'uncaughtException' the way a throwing Node socket callback would, instead of a C++
// exception escaping into libuv or a JS exception silently left pending.
void CallFromLoop(Napi::Env env, const Napi::FunctionReference& fn, Napi::Value recv, std::initializer_list<napi_value> args,
                  const Napi::AsyncContext& ctx);
void CallFromLoop(Napi::Env env, const Napi::FunctionReference& fn, Napi::Value recv, size_t argc, const napi_value* argv,
                  const Napi::AsyncContext& ctx);

Napi::Value ErrnoName(const Napi::CallbackInfo& info);

}  // namespace strait
