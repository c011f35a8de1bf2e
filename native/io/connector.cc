#include "io/connector.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "io/env.h"
#include "io/socket_util.h"

namespace strait {

Napi::Function ConnectRequest::Init(Napi::Env env) {
  return DefineClass(env, "ConnectRequest", {InstanceMethod("cancel", &ConnectRequest::Cancel)});
}

Napi::Value ConnectRequest::Connect(const Napi::CallbackInfo& info) {
  strait::Env* e = GetEnv(info.Env());
  Napi::Object req = e->connect_request_ctor.New({info[3]});
  ConnectRequest* self = ConnectRequest::Unwrap(req);
  self->Start(info[0].As<Napi::String>(), info[1].As<Napi::Number>().Int32Value(),
              static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value()));
  return req;
}

ConnectRequest::ConnectRequest(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<ConnectRequest>(info), async_(info.Env(), "StraitConnect") {
  callback_ = Napi::Persistent(info[0].As<Napi::Function>());
}

ConnectRequest::~ConnectRequest() { Release(); }

void ConnectRequest::Start(const std::string& host, int port, uint64_t timeout_ms) {
  Napi::Env env = Env();
  sockaddr_storage ss;
  socklen_t len;
  if (port < 0) {
    auto* sun = reinterpret_cast<sockaddr_un*>(&ss);
    memset(&ss, 0, sizeof(ss));
    if (host.size() >= sizeof(sun->sun_path)) throw Napi::TypeError::New(env, "connect: unix path too long");
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, host.c_str(), host.size());
    len = sizeof(sockaddr_un);
  } else if (!ParseIp(host, port, &ss, &len)) {
    throw Napi::TypeError::New(env, "connect: not an IP literal: " + host);
  }
  Ref();  // alive until the callback has run or the request is cancelled
  fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int status = 0;
  if (fd_ < 0) {
    status = -errno;
  } else {
    if (ss.ss_family != AF_UNIX) {
      int one = 1;
      setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) status = -errno;
  }
  strait::Env* e = GetEnv(env);
  // Even an immediate result (loopback, unix, refused) is reported from the loop, never
  // synchronously: callers can rely on connect() returning before the callback runs.
  poll_ = new uv_poll_t;
  if (status == 0 && uv_poll_init(e->loop, poll_, fd_) == 0) {
    poll_->data = this;
    uv_poll_start(poll_, UV_WRITABLE, [](uv_poll_t* h, int st, int) {
      auto* self = static_cast<ConnectRequest*>(h->data);
      // libuv reports POLLERR as UV_EBADF; the socket's own error says what really happened.
      int err = 0;
      socklen_t l = sizeof(err);
      if (getsockopt(self->fd_, SOL_SOCKET, SO_ERROR, &err, &l) != 0) err = errno;
      if (err == 0 && st < 0) err = -st;
      self->Complete(-err);
    });
  } else {
    delete poll_;
    poll_ = nullptr;
    if (status == 0) status = -EIO;
  }
  timer_ = new uv_timer_t;
  uv_timer_init(e->loop, timer_);
  timer_->data = this;
  if (poll_ == nullptr) {
    // Deliver the failure on the next loop turn.
    pending_status_ = status;
    uv_timer_start(timer_, [](uv_timer_t* t) {
      auto* self = static_cast<ConnectRequest*>(t->data);
      self->Complete(self->pending_status_);
    }, 0, 0);
  } else if (timeout_ms > 0) {
    uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<ConnectRequest*>(t->data)->Complete(-ETIMEDOUT); }, timeout_ms, 0);
  }
}

void ConnectRequest::Release() {
  if (poll_) CloseAndFree(poll_);
  if (timer_) CloseAndFree(timer_);
  poll_ = nullptr;
  timer_ = nullptr;
}

void ConnectRequest::Complete(int status) {
  if (done_) return;
  done_ = true;
  // Close our poll handle before the fd changes hands: the pipe registers its own.
  Release();
  if (status != 0 && fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  Deliver(status);
  Unref();
}

void ConnectRequest::Deliver(int status) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  callback_.MakeCallback(Value(), {Napi::Number::New(env, status), Napi::Number::New(env, status == 0 ? fd_ : -1)}, async_);
}

Napi::Value ConnectRequest::Cancel(const Napi::CallbackInfo& info) {
  if (!done_) {
    done_ = true;
    Release();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    Unref();
  }
  return info.Env().Undefined();
}

}  // namespace strait
