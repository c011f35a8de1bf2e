#include "io/env.h"

#include "io/poller.h"

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
  env.AddCleanupHook([e]() {
    e->AbandonAll();
    delete e->poller;
    e->poller = nullptr;
  });
  return e;
}

Env* GetEnv(Napi::Env env) { return env.GetInstanceData<Env>(); }

Napi::Value SetTable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double slot = -1;
  if (info.Length() < 2 || napi_get_value_double(env, info[0], &slot) != napi_ok || !(slot >= 0 && slot < kTableSlots) || slot != static_cast<uint32_t>(slot))
    throw Napi::RangeError::New(env, "setTable: slot must be an integer in [0, " + std::to_string(kTableSlots - 1) + "]");
  napi_typedarray_type type;
  size_t len = 0;
  void* p = nullptr;
  if (napi_get_typedarray_info(env, info[1], &type, &len, &p, nullptr, nullptr) != napi_ok)
    throw Napi::TypeError::New(env, "setTable: table must be a typed array");
  Env::Table& t = GetEnv(env)->tables[static_cast<uint32_t>(slot)];
  t.ref = Napi::Persistent(info[1]);
  t.data = p;
  t.len = len;
  t.type = type;
  return env.Undefined();
}

bool TableArg(napi_env env, Env* e, TableSlot slot, napi_value v, napi_typedarray_type want, void** data, size_t* len) {
  const Env::Table& t = e->tables[slot];
  napi_valuetype vt;
  if (t.data != nullptr && napi_typeof(env, v, &vt) == napi_ok && vt == napi_null) {
    if (t.type != want) return false;
    *data = t.data;
    *len = t.len;
    return true;
  }
  napi_typedarray_type type;
  return napi_get_typedarray_info(env, v, &type, len, data, nullptr, nullptr) == napi_ok && type == want;
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
  o.Set("http1HeadsRepeated", static_cast<double>(e->stats.http1_heads_repeated));
  o.Set("h2H1HeadsReused", static_cast<double>(e->stats.h2_h1_heads_reused));
  o.Set("h2ListsReused", static_cast<double>(e->stats.h2_lists_reused));
  return o;
}

}  // namespace strait
