// Per-environment state. The main thread and every worker thread that loads the addon get
// their own Env (stored with SetInstanceData), so nothing on the data path is shared across
// threads and nothing needs a lock.
#pragma once
#include <napi.h>
#include <uv.h>

#include <cstdint>

#include "io/buffer_pool.h"

namespace strait {

struct DataPathStats {
  uint64_t pipes_active = 0;
  uint64_t read_calls = 0;    // read/readv syscalls made by pipes
  uint64_t writev_calls = 0;  // gathered-write syscalls made by pipes
};

// An object that owns uv handles or fds (Acceptor, ConnectRequest, Pipe) while it is open.
// Env keeps them on an intrusive list so that environment teardown can close them: a worker
// thread's loop is closed with uv_loop_close, which fails (and Node aborts) while any handle
// is still open.
class LiveObject {
 public:
  virtual ~LiveObject() = default;
  // Release uv handles, fds and buffers without calling into JavaScript (teardown only).
  virtual void Abandon() = 0;

 private:
  friend struct Env;
  LiveObject* prev_ = nullptr;
  LiveObject* next_ = nullptr;
  bool linked_ = false;
};

struct Env {
  uv_loop_t* loop = nullptr;
  BufferPool pool;
  DataPathStats stats;
  Napi::FunctionReference connect_request_ctor;
  // The Buffer that received HTTP/2 DATA is copied into for JavaScript, batch after batch
  // (http2::Session::DataForJs), its bytes and how many are taken.
  Napi::Reference<Napi::Buffer<uint8_t>> data_pool;
  uint8_t* data_pool_mem = nullptr;
  size_t data_pool_used = 0;
  // The Int32Array of [start, end) runs that header-list calls read when JavaScript passes null
  // for their `runs` (RUNS_TABLE in src/native.ts, set once by setRunsTable):
  // napi_get_typedarray_info on an Int32Array costs ~380 instructions a call.
  Napi::Reference<Napi::Int32Array> runs_ref;
  const int32_t* runs = nullptr;
  size_t runs_len = 0;

  void Link(LiveObject* o);
  void Unlink(LiveObject* o);
  // Abandons every live object; runs from the environment's cleanup hook.
  void AbandonAll();

 private:
  LiveObject* live_ = nullptr;
};

// Creates the Env, stores it as instance data and registers the teardown hook.
Env* InitEnv(Napi::Env env);
Env* GetEnv(Napi::Env env);
// setRunsTable(Int32Array): the table Env::runs points into, held until the environment ends.
Napi::Value SetRunsTable(const Napi::CallbackInfo& info);
// The runs argument `v` of a header-list call: the table set by setRunsTable when `v` is null,
// else an Int32Array of its own. False when it is neither.
bool RunsOf(napi_env env, Env* e, napi_value v, const int32_t** runs, size_t* len);

// Turns off libuv's idle-time metrics on this environment's loop (see env.cc).
Napi::Value DisableLoopIdleTime(const Napi::CallbackInfo& info);

// uv handles live in their own heap allocations, apart from their owner: the owner (a JS-owned
// ObjectWrap) may be garbage-collected while libuv still needs the handle memory until the
// close callback has run.
template <typename T>
void CloseAndFree(T* handle) {
  uv_close(reinterpret_cast<uv_handle_t*>(handle), [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
}

Napi::Value Stats(const Napi::CallbackInfo& info);

}  // namespace strait
