#include "io/env.h"

namespace strait {

void Env::Link(LiveObject* o) {
  if (o->linked_) return;
  o->linked_ = true;
  o->prev_ = nullptr;
  o->next_ = live_;
  if (live_) live_->prev_ = o;
  live_ = o;
}

void Env::Unlink(LiveObject* o) {
  if (!o->linked_) return;
  o->linked_ = false;
  if (o->prev_) o->prev_->next_ = o->next_;
  else live_ = o->next_;
  if (o->next_) o->next_->prev_ = o->prev_;
  o->prev_ = o->next_ = nullptr;
}

void Env::AbandonAll() {
  while (live_) {
    LiveObject* o = live_;
    Unlink(o);
    o->Abandon();
  }
}

Env* InitEnv(Napi::Env env) {
  auto* e = new Env();
  if (napi_get_uv_event_loop(env, &e->loop) != napi_ok || e->loop == nullptr) {
    delete e;
    throw Napi::Error::New(env, "strait_native: cannot get the libuv loop");
  }
  // node-addon-api deletes the Env when the environment ends, after the cleanup hook below
  // (hooks run in reverse order of registration, and Node-API's own teardown hook was added
  // before this module loaded).
  env.SetInstanceData<Env>(e);
  // Close every handle still open when the environment goes away. Node runs the loop once
  // more after the hooks, which lets libuv finish the closes before uv_loop_close.
  env.AddCleanupHook([e]() { e->AbandonAll(); });
  return e;
}

Env* GetEnv(Napi::Env env) { return env.GetInstanceData<Env>(); }

Napi::Value SetRunsTable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  napi_typedarray_type type;
  size_t len = 0;
  void* p = nullptr;
  if (info.Length() < 1 || napi_get_typedarray_info(env, info[0], &type, &len, &p, nullptr, nullptr) != napi_ok || type != napi_int32_array)
    throw Napi::TypeError::New(env, "setRunsTable: table must be an Int32Array");
  Env* e = GetEnv(env);
  e->runs_ref = Napi::Persistent(info[0].As<Napi::Int32Array>());
  e->runs = static_cast<const int32_t*>(p);
  e->runs_len = len;
  return env.Undefined();
}

bool RunsOf(napi_env env, Env* e, napi_value v, const int32_t** runs, size_t* len) {
  napi_valuetype t;
  if (e->runs != nullptr && napi_typeof(env, v, &t) == napi_ok && t == napi_null) {
    *runs = e->runs;
    *len = e->runs_len;
    return true;
  }
  napi_typedarray_type type;
  void* p = nullptr;
  if (napi_get_typedarray_info(env, v, &type, len, &p, nullptr, nullptr) != napi_ok || type != napi_int32_array) return false;
  *runs = static_cast<const int32_t*>(p);
  return true;
}

// Node configures its loop with UV_METRICS_IDLE_TIME (for performance.eventLoopUtilization, which
// Strait never reads). With it, libuv precedes every blocking epoll_pwait with a non-blocking
// one so that it can time the wait: at a fixed request rate that is one wasted syscall per
// wakeup, about one per request. libuv can turn the option on but not off, so this clears its
// bit in the loop's internal fields, whose first member has been `unsigned int flags` (bit 1 =
// UV_METRICS_IDLE_TIME) from libuv 1.39, where the option appeared, through 1.51. Returns
// whether the bit was set and is now clear; a libuv outside that range is left alone.
Napi::Value DisableLoopIdleTime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const unsigned int v = uv_version();
  const unsigned int major = v >> 16, minor = (v >> 8) & 0xff;
  uv_loop_t* loop = GetEnv(env)->loop;
  if (major != 1 || minor < 39 || minor > 51 || loop->internal_fields == nullptr) return Napi::Boolean::New(env, false);
  auto* flags = static_cast<unsigned int*>(loop->internal_fields);
  const bool was = (*flags & UV_METRICS_IDLE_TIME) != 0;
  *flags &= ~static_cast<unsigned int>(UV_METRICS_IDLE_TIME);
  return Napi::Boolean::New(env, was);
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Env* e = GetEnv(env);
  Napi::Object o = Napi::Object::New(env);
  // Doubles: counters outgrow int32 quickly and JS numbers are exact to 2^53.
  o.Set("poolChunks", static_cast<double>(e->pool.allocated()));
  o.Set("poolChunksInUse", static_cast<double>(e->pool.in_use()));
  o.Set("poolBytes", static_cast<double>(e->pool.allocated() * BufferPool::kChunkSize));
  o.Set("pipesActive", static_cast<double>(e->stats.pipes_active));
  o.Set("readCalls", static_cast<double>(e->stats.read_calls));
  o.Set("writevCalls", static_cast<double>(e->stats.writev_calls));
  return o;
}

}  // namespace strait
