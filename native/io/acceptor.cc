#include "io/acceptor.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/env.h"
#include "io/socket_util.h"

namespace strait {

// Accept at most this many per wake-up so one busy listener cannot starve the loop.
static constexpr int kAcceptBatch = 64;
// After EMFILE/ENFILE, stop accepting for a moment instead of spinning on a full table.
static constexpr uint64_t kBackoffMs = 100;

Napi::Function Acceptor::Init(Napi::Env env) {
  return DefineClass(env, "Acceptor",
                     {InstanceMethod("pause", &Acceptor::Pause), InstanceMethod("resume", &Acceptor::Resume),
                      InstanceMethod("close", &Acceptor::Close)});
}

Acceptor::Acceptor(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<Acceptor>(info), fd_(info[0].As<Napi::Number>().Int32Value()), async_(info.Env(), "StraitAcceptor") {
  on_accept_ = Napi::Persistent(info[1].As<Napi::Function>());
  on_error_ = Napi::Persistent(info[2].As<Napi::Function>());
  strait::Env* e = GetEnv(info.Env());
  poll_ = new uv_poll_t;
  int r = uv_poll_init(e->loop, poll_, fd_);
  if (r != 0) {
    delete poll_;
    poll_ = nullptr;
    ThrowErrno(info.Env(), "uv_poll_init", -r);
  }
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* h, int status, int events) {
    static_cast<Acceptor*>(h->data)->OnReadable();
  });
  Ref();  // alive while listening, even if JavaScript drops its reference
}

Acceptor::~Acceptor() { Shutdown(); }

void Acceptor::OnReadable() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  for (int i = 0; i < kAcceptBatch && !closed_ && !paused_; i++) {
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int cfd = accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) Backoff();
      on_error_.MakeCallback(Value(), {Napi::String::New(env, uv_err_name(-err))}, async_);
      return;
    }
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
      int one = 1;
      setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    Napi::Object a = AddressObject(env, ss, len);
    on_accept_.MakeCallback(Value(), {Napi::Number::New(env, cfd), a.Get("family"), a.Get("address"), a.Get("port")}, async_);
  }
}

void Acceptor::Backoff() {
  if (backoff_ || closed_) return;
  uv_poll_stop(poll_);
  backoff_ = new uv_timer_t;
  uv_timer_init(GetEnv(Env())->loop, backoff_);
  backoff_->data = this;
  uv_timer_start(backoff_, [](uv_timer_t* t) {
    auto* self = static_cast<Acceptor*>(t->data);
    CloseAndFree(self->backoff_);
    self->backoff_ = nullptr;
    if (!self->closed_ && !self->paused_) {
      uv_poll_start(self->poll_, UV_READABLE, [](uv_poll_t* h, int, int) { static_cast<Acceptor*>(h->data)->OnReadable(); });
    }
  }, kBackoffMs, 0);
}

Napi::Value Acceptor::Pause(const Napi::CallbackInfo& info) {
  if (!closed_ && !paused_) {
    paused_ = true;
    uv_poll_stop(poll_);
  }
  return info.Env().Undefined();
}

Napi::Value Acceptor::Resume(const Napi::CallbackInfo& info) {
  if (!closed_ && paused_) {
    paused_ = false;
    if (!backoff_) uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* h, int, int) { static_cast<Acceptor*>(h->data)->OnReadable(); });
  }
  return info.Env().Undefined();
}

void Acceptor::Shutdown() {
  if (closed_) return;
  closed_ = true;
  if (poll_) CloseAndFree(poll_);
  if (backoff_) CloseAndFree(backoff_);
  poll_ = nullptr;
  backoff_ = nullptr;
  close(fd_);
}

Napi::Value Acceptor::Close(const Napi::CallbackInfo& info) {
  if (!closed_) {
    Shutdown();
    Unref();
  }
  return info.Env().Undefined();
}

}  // namespace strait
