#include "io/env.h"

namespace strait {

Env* GetEnv(Napi::Env env) { return env.GetInstanceData<Env>(); }

void InitEnv(Napi::Env env) {
  auto* e = new Env();
  if (napi_get_uv_event_loop(env, &e->loop) != napi_ok) {
    delete e;
    throw Napi::Error::New(env, "strait_native: cannot get the libuv loop");
  }
  env.SetInstanceData<Env>(e);  // deleted by node-addon-api when the environment ends
}

}  // namespace strait
