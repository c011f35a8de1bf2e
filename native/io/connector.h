// Non-blocking connect with a timeout, completed from Node's loop.
#pragma once
#include <napi.h>
#include <uv.h>

namespace strait {

class ConnectRequest : public Napi::ObjectWrap<ConnectRequest> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit ConnectRequest(const Napi::CallbackInfo& info);
  ~ConnectRequest() override;
  // connect(host, port, timeoutMs, callback): port < 0 means host is a unix socket path.
  static Napi::Value Connect(const Napi::CallbackInfo& info);

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  void Start(const std::string& host, int port, uint64_t timeout_ms);
  void Complete(int status);
  void Release();
  void Deliver(int status);

  int fd_ = -1;
  int pending_status_ = 0;  // an immediate failure, delivered from the next loop turn
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  bool done_ = false;
  Napi::FunctionReference callback_;
  Napi::AsyncContext async_;
};

}  // namespace strait
