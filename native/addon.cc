// strait_native: registers exports only. The data path lives in io/.
#include <napi.h>

#include "io/acceptor.h"
#include "io/connector.h"
#include "io/env.h"
#include "io/pipe.h"
#include "io/socket_util.h"

namespace strait {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitEnv(env);
  Env* e = GetEnv(env);
  Napi::Function acceptor = Acceptor::Init(env);
  Napi::Function connect_request = ConnectRequest::Init(env);
  Napi::Function pipe = Pipe::Init(env);
  e->acceptor_ctor = Napi::Persistent(acceptor);
  e->connect_request_ctor = Napi::Persistent(connect_request);
  e->pipe_ctor = Napi::Persistent(pipe);
  exports.Set("version", Napi::String::New(env, "1"));
  exports.Set("listenTcp", Napi::Function::New(env, ListenTcp));
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix));
  exports.Set("localAddress", Napi::Function::New(env, LocalAddress));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("errnoName", Napi::Function::New(env, ErrnoName));
  exports.Set("stats", Napi::Function::New(env, Stats));
  exports.Set("connect", Napi::Function::New(env, ConnectRequest::Connect));
  exports.Set("Acceptor", acceptor);
  exports.Set("Pipe", pipe);
  return exports;
}

}  // namespace strait

// The macro pastes its argument into a symbol name, so it needs an unqualified identifier.
static Napi::Object InitStraitNative(Napi::Env env, Napi::Object exports) { return strait::Init(env, exports); }
NODE_API_MODULE(strait_native, InitStraitNative)
