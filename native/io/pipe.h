// The L4 splice between two connected sockets: reads into pooled chunks, one gathered write per
// flush, backpressure by not reading a source whose bytes the destination has not taken,
// half-close carried both ways, an optional idle timeout. Runs entirely in C++; JavaScript
// hears from it once, when it ends.
#pragma once
#include <napi.h>
#include <uv.h>

#include "io/buffer_pool.h"
#include "io/env.h"

namespace strait {

// Mirrors PipeCloseReason in src/native.ts.
enum PipeCloseReason { kDone = 0, kIdleTimeout = 1, kResetA = 2, kResetB = 3, kLocal = 4, kError = 5 };

// new Pipe(fdA, fdB, {idleTimeoutMs, highWaterMark}, onClose(reason, bytesAtoB, bytesBtoA)).
// Owns both fds once the arguments have been validated (it closes them if it then fails).
class Pipe : public Napi::ObjectWrap<Pipe>, public LiveObject {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Pipe(const Napi::CallbackInfo& info);
  ~Pipe() override;
  void Abandon() override;

 private:
  struct Direction;
  struct Side {
    Pipe* pipe = nullptr;
    int fd = -1;
    uv_poll_t* poll = nullptr;
    int events = 0;            // what the poll currently waits for
    Direction* out = nullptr;  // bytes read from this side
    Direction* in = nullptr;   // bytes written to this side
  };
  // Bytes moving from `src` to `dst`, queued as a chain of chunks (head is written first).
  struct Direction {
    Side* src = nullptr;
    Side* dst = nullptr;
    Chunk* head = nullptr;
    Chunk* tail = nullptr;
    size_t pending = 0;  // read but not yet written; never above the high-water mark
    uint64_t bytes = 0;  // delivered to dst
    bool src_eof = false;
    bool dst_shut = false;  // the EOF has been passed on with shutdown(SHUT_WR)
  };

  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value BytesAtoB(const Napi::CallbackInfo& info);
  Napi::Value BytesBtoA(const Napi::CallbackInfo& info);

  void OnEvent(Side* side, int status, int events);
  // Read and Flush return false once the pipe has finished (the object may be unreferenced).
  bool Read(Direction* d);
  bool Flush(Direction* d);
  void UpdateInterest(Side* s);
  void ArmIdle(uint64_t ms);
  void OnIdleTimer();
  PipeCloseReason ResetOf(const Side* s) const { return s == &a_ ? kResetA : kResetB; }
  void Finish(PipeCloseReason reason, bool from_js);
  // Closes handles and fds, returns every chunk to the pool. Abortive: RST instead of FIN.
  void Release(bool abortive);

  strait::Env* env_;
  Side a_, b_;
  Direction a_to_b_, b_to_a_;
  size_t high_water_mark_ = 0;
  uint64_t idle_timeout_ms_ = 0;
  uint64_t last_activity_ = 0;  // uv_now() when a byte last moved either way
  uv_timer_t* idle_timer_ = nullptr;
  bool finished_ = false;
  Napi::FunctionReference on_close_;
  Napi::AsyncContext async_;
};

}  // namespace strait
