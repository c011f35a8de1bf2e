// Per-environment state. The main thread and every worker thread that loads the addon get
// their own Env (stored with SetInstanceData), so nothing on the data path is shared across
// threads and nothing needs a lock.
#pragma once
#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <string>

#include "io/buffer_pool.h"
#include "io/request_id.h"

namespace strait {

struct DataPathStats {
  uint64_t pipes_active = 0;
  uint64_t read_calls = 0;    // read/readv syscalls made by pipes
  uint64_t writev_calls = 0;  // gathered-write syscalls made by pipes
  uint64_t http1_heads_repeated = 0;  // heads the bound HTTP/1 parser answered from its HeadMemo
  uint64_t h2_h1_heads_reused = 0;    // HTTP/1 response heads respondH1Head sent from its lowered copy
  uint64_t h2_lists_reused = 0;       // header lists an HTTP/2 session took from its FlatMemo, unscanned
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

// The slots of Env::tables (TableSlot in src/native.ts; the numbers are shared).
enum TableSlot : uint32_t {
  kTableRuns = 0,   // [start, end) runs of a header list (RUNS_TABLE)
  kTableFlat = 1,   // the shared flat header writer's bytes (FLAT, flat_headers.ts)
  kTableSpans = 2,  // the shared span list of an HTTP/1 head forwarded to HTTP/2 (H1_SPANS)
  kTableArena = 3,  // the HTTP/1 batch reader's arena, where upstream heads are parsed
  kTableHeadOut = 4,  // the HTTP/1 head parser's results (`out`, Slot in http1/head.h)
  kTableStage = 5,    // the slab HTTP/1 response heads are staged in (STAGE, http1/encoder.ts)
  kTableKept = 6,     // the slab forwarded HTTP/1 request heads are kept in (KEPT, same file)
  kTableCallArgs = 7,  // a Float64Array calls read their numbers from (CALL_ARGS, src/native.ts)
  kTableHeadSlab = 8,  // the slab the HTTP/1 head parser copies owned heads into (native_head.ts)
  kTableSlots = 9,
};

class Poller;

struct Env {
  uv_loop_t* loop = nullptr;
  // The epoll set of sockets owned by native sessions (io/poller.h, PollerOf); deleted by the
  // environment's cleanup hook after every live object is abandoned.
  Poller* poller = nullptr;
  BufferPool pool;
  DataPathStats stats;
  Napi::FunctionReference connect_request_ctor;
  // The Buffer that received HTTP/2 DATA is copied into for JavaScript, batch after batch
  // (http2::Session::DataForJs), its bytes and how many are taken.
  Napi::Reference<Napi::Buffer<uint8_t>> data_pool;
  // The events array and field table JavaScript gives every HTTP/2 session (http2 HoldArray).
  Napi::Reference<Napi::Value> h2_events;
  Napi::Reference<Napi::Value> h2_fields;
  uint8_t* data_pool_mem = nullptr;
  size_t data_pool_used = 0;
  size_t data_pool_size = 0;
  // The pool's number, new with each pool (1 to INT32_MAX, then 1 again): a batch tells JavaScript the number of the
  // pool its bytes are in, and dataArgs copies from the pool at an offset only while it is the
  // same one (bytes once written to a pool never change).
  uint32_t data_pool_gen = 0;
  // Typed arrays JavaScript registered with setTable, by slot: a call passes null in place of
  // the one registered for that argument and the addon reads it from here, where
  // napi_get_typedarray_info cost ~350 instructions a call (it materialises the ArrayBuffer
  // handle to find the memory). Each is held (ref) until replaced or the environment ends.
  struct Table {
    Napi::Reference<Napi::Value> ref;
    void* data = nullptr;
    size_t len = 0;  // elements
    napi_typedarray_type type = napi_uint8_array;
  };
  Table tables[kTableSlots];
  // requestId()'s random bytes (RequestIdFunction).
  RequestIds request_ids;
  // sendHttp1HeadHeld's buffers (http1/http1_js.cc): the extra pairs as read, the head as
  // written, and the last extra as HTTP/1 lines with JavaScript's number for that string, kept
  // for a call that gives the same number (valid only once converted whole).
  struct HeldH1 {
    std::string extra, head, lines;
    bool lines_ok = false;
    double gen = 0;  // JavaScript's number for the extra the lines were made of (0: none)
  } held_h1;
  // The head an HTTP/1 parser wrote into a results array last: the array, the slot its field
  // records start at, and a number for its bytes (new for every head a bound parser parsed, the
  // same again for a repeat of that parser's kept head, HeadMemo; 0 when unknown). The head
  // writers reuse the kept lines they worked out for a number (RunsFromHeadOut) only while the
  // registered results table holds that very head.
  struct Http1Stamp {
    const int32_t* out = nullptr;
    size_t records_at = 0;
    uint64_t gen = 0;
  } http1_stamp;
  uint64_t http1_gens = 0;
  // The added pairs ("name\0value\0...") H2Session.requestHeldArgs (0) and respondHeldArgs (1)
  // read last, as bytes, with JavaScript's number for that string (0: none): a call that gives the
  // same number appends these instead of reading the string (http2/session.cc KeptExtra).
  struct KeptPairs {
    std::string bytes;
    double gen = 0;
  } h2_extra[2];

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
// setTable(slot, typedArray): registers the array a call's null stands for in that slot.
Napi::Value SetTable(const Napi::CallbackInfo& info);
// A typed array argument `v` of type `want`: the table in `slot` when `v` is null and one is
// registered, else `v`'s own memory. False when it is neither (or of another type).
bool TableArg(napi_env env, Env* e, TableSlot slot, napi_value v, napi_typedarray_type want, void** data, size_t* len);
// The runs argument of a header-list call (respondRuns, requestRuns, writeHttp1HeadFromFlat).
inline bool RunsOf(napi_env env, Env* e, napi_value v, const int32_t** runs, size_t* len) {
  void* p = nullptr;
  if (!TableArg(env, e, kTableRuns, v, napi_int32_array, &p, len)) return false;
  *runs = static_cast<const int32_t*>(p);
  return true;
}

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
