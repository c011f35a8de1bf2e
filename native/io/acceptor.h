// Accepts on a listening fd from inside Node's loop and hands each new fd to JavaScript.
#pragma once
#include <napi.h>
#include <uv.h>

namespace strait {

class Acceptor : public Napi::ObjectWrap<Acceptor> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Acceptor(const Napi::CallbackInfo& info);
  ~Acceptor() override;

 private:
  Napi::Value Pause(const Napi::CallbackInfo& info);
  Napi::Value Resume(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  void OnReadable();
  void Backoff();
  void Shutdown();

  int fd_;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* backoff_ = nullptr;
  bool paused_ = false;
  bool closed_ = false;
  Napi::FunctionReference on_accept_;
  Napi::FunctionReference on_error_;
  Napi::AsyncContext async_;
};

}  // namespace strait
