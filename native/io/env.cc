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
