// The L4 splice between two connected sockets: reads into pooled chunks, one writev per flush,
// backpressure by not reading a source whose bytes the other side has not taken, half-close
// carried both ways, an optional idle timeout. Runs entirely in C++; JavaScript hears from it
// once, when it ends.
#pragma once
#include <napi.h>
#include <uv.h>

#include <deque>

namespace strait {

enum PipeCloseReason { kDone = 0, kIdleTimeout = 1, kResetA = 2, kResetB = 3, kLocal = 4, kError = 5 };

class Pipe : public Napi::ObjectWrap<Pipe> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Pipe(const Napi::CallbackInfo& info);
  ~Pipe() override;

 private:
  struct Chunk {
    char* data;
    size_t len;  // bytes filled
    size_t off;  // bytes already written
  };
  struct Side {
    int fd = -1;
    uv_poll_t* poll = nullptr;
    int events = 0;  // what poll currently waits for
  };
  // Bytes moving from `src` to `dst`.
  struct Direction {
    Side* src;
    Side* dst;
    std::deque<Chunk> pending;
    size_t pending_bytes = 0;
    uint64_t bytes = 0;
    bool src_eof = false;
    bool dst_shut = false;
  };

  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value BytesAtoB(const Napi::CallbackInfo& info);
  Napi::Value BytesBtoA(const Napi::CallbackInfo& info);

  void OnEvent(Side* side, int status, int events);
  // Each returns false when the pipe has finished.
  bool Read(Direction* d);
  bool Flush(Direction* d);
  void UpdateInterest(Side* s);
  void ArmIdle(uint64_t ms);
  void OnIdleTimer();
  void Finish(PipeCloseReason reason);

  Side a_, b_;
  Direction a_to_b_, b_to_a_;
  size_t high_water_mark_;
  uint64_t idle_timeout_ms_;
  uint64_t last_activity_ = 0;
  uv_timer_t* idle_timer_ = nullptr;
  bool finished_ = false;
  Napi::FunctionReference on_close_;
  Napi::AsyncContext async_;
};

}  // namespace strait
