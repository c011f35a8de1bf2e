// Per-environment state (main thread or a worker thread each get their own), stored with
// SetInstanceData so nothing is shared across threads.
#pragma once
#include <napi.h>
#include <uv.h>

#include "io/buffer_pool.h"

namespace strait {

struct DataPathStats {
  uint64_t pipes_active = 0;
  uint64_t read_calls = 0;
  uint64_t writev_calls = 0;
};

struct Env {
  uv_loop_t* loop = nullptr;
  BufferPool pool;
  DataPathStats stats;
  Napi::FunctionReference acceptor_ctor;
  Napi::FunctionReference connect_request_ctor;
  Napi::FunctionReference pipe_ctor;
};

Env* GetEnv(Napi::Env env);
void InitEnv(Napi::Env env);

// Frees a uv handle after uv_close: handles are heap-allocated apart from their owner so
// the owner may be garbage-collected while libuv still finishes closing them.
template <typename T>
void CloseAndFree(T* handle) {
  uv_close(reinterpret_cast<uv_handle_t*>(handle), [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
}

}  // namespace strait
