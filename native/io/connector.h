// Non-blocking connect with a timeout, completed from Node's loop.
#pragma once
#include <napi.h>
#include <uv.h>

#include <string>

#include "io/env.h"

namespace strait {

// connect(host, port, timeoutMs, callback) returns one of these; JavaScript only sees cancel().
class ConnectRequest : public Napi::ObjectWrap<ConnectRequest>, public LiveObject {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit ConnectRequest(const Napi::CallbackInfo& info);
  ~ConnectRequest() override;
  void Abandon() override;
  // The exported function: validates, creates the request, starts it.
  static Napi::Value Connect(const Napi::CallbackInfo& info);

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  void Start(Napi::Env env, const sockaddr_storage& ss, socklen_t len, uint32_t timeout_ms);
  void OnWritable(int status);
  void Complete(int status);
  void Release();

  strait::Env* env_;
  int fd_ = -1;
  int pending_status_ = 0;  // a failure known at once, delivered from the next loop turn
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  bool done_ = false;
  Napi::FunctionReference callback_;
  Napi::AsyncContext async_;
};

}  // namespace strait
