#include "io/connector.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/js_util.h"
#include "io/socket_util.h"

namespace strait {

Napi::Function ConnectRequest::Init(Napi::Env env) {
  return DefineClass(env, "ConnectRequest", {InstanceMethod("cancel", &ConnectRequest::Cancel)});
}

Napi::Value ConnectRequest::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = ArgString(info, 0, "connect", "host");
  int port = ArgInt(info, 1, "connect", "port", INT32_MIN, 65535);
  uint32_t timeout_ms = static_cast<uint32_t>(ArgInt(info, 2, "connect", "timeoutMs", 0, INT32_MAX));
  Napi::Function callback = ArgFunction(info, 3, "connect", "callback");
  sockaddr_storage ss;
  socklen_t len;
  if (port < 0) {
    if (!ParseUnix(host, &ss, &len)) throw Napi::TypeError::New(env, "connect: unix path empty or too long: " + host);
  } else if (!ParseIp(host, port, &ss, &len)) {
    throw Napi::TypeError::New(env, "connect: not an IP literal (resolve names first): " + host);
  }
  Napi::Object req = GetEnv(env)->connect_request_ctor.New({});
  ConnectRequest* self = ConnectRequest::Unwrap(req);
  self->callback_ = Napi::Persistent(callback);
  self->Start(env, ss, len, timeout_ms);
  return req;
}

ConnectRequest::ConnectRequest(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<ConnectRequest>(info), env_(GetEnv(info.Env())), async_(info.Env(), "StraitConnect") {}

ConnectRequest::~ConnectRequest() {
  if (!done_) Abandon();  // environment teardown only: an open request holds a Ref
}

void ConnectRequest::Start(Napi::Env env, const sockaddr_storage& ss, socklen_t len, uint32_t timeout_ms) {
  int status = 0;
  fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    status = -errno;
  } else {
    if (ss.ss_family != AF_UNIX) SetNoDelay(fd_);
    // Non-blocking TCP connect returns EINPROGRESS and completes when the socket turns
    // writable. A unix connect completes (or fails) at once; on a full backlog it returns
    // EAGAIN instead of waiting, which we report as the failure it is.
    if (connect(fd_, reinterpret_cast<const sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) status = -errno;
  }
  if (status == 0) {
    poll_ = new uv_poll_t;
    int r = uv_poll_init(env_->loop, poll_, fd_);
    if (r != 0) {
      delete poll_;  // never initialised
      poll_ = nullptr;
      status = r;
    }
  }
  timer_ = new uv_timer_t;
  uv_timer_init(env_->loop, timer_);
  timer_->data = this;
  if (status != 0) {
    // Even an immediate failure is reported from the loop, never synchronously: callers may
    // rely on connect() returning (and its handle being stored) before the callback runs.
    pending_status_ = status;
    uv_timer_start(timer_, [](uv_timer_t* t) {
      auto* self = static_cast<ConnectRequest*>(t->data);
      self->Complete(self->pending_status_);
    }, 0, 0);
  } else {
    poll_->data = this;
    uv_poll_start(poll_, UV_WRITABLE, [](uv_poll_t* h, int st, int) { static_cast<ConnectRequest*>(h->data)->OnWritable(st); });
    if (timeout_ms > 0) {
      uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<ConnectRequest*>(t->data)->Complete(-ETIMEDOUT); }, timeout_ms, 0);
    }
  }
  Ref();  // alive until the callback has run or the request is cancelled
  env_->Link(this);
}

void ConnectRequest::OnWritable(int st) {
  // libuv reports POLLERR as UV_EBADF; SO_ERROR holds what really happened (ECONNREFUSED...).
  int err = 0;
  socklen_t l = sizeof(err);
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &l) != 0) err = errno;
  if (err == 0 && st < 0) err = -st;
  Complete(-err);
}

void ConnectRequest::Release() {
  // Close our poll before the fd changes hands: a Pipe or Acceptor registers its own poll on
  // it, and libuv allows one poll handle per fd. uv_close drops the fd from epoll at once.
  if (poll_) CloseAndFree(poll_);
  if (timer_) CloseAndFree(timer_);
  poll_ = nullptr;
  timer_ = nullptr;
}

void ConnectRequest::Complete(int status) {
  if (done_) return;
  done_ = true;
  Release();
  if (status != 0 && fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Object self = Value();  // a local handle keeps the object alive past Unref
  env_->Unlink(this);
  Unref();
  int fd = status == 0 ? fd_ : -1;
  fd_ = -1;  // JavaScript owns it now
  // The only call: the callback is let go of when this returns, since its closure may hold what
  // holds this request (a cycle through a strong reference is never freed).
  Napi::FunctionReference callback = std::move(callback_);
  CallFromLoop(env, callback, self, {Napi::Number::New(env, status), Napi::Number::New(env, fd)}, async_);
}

void ConnectRequest::Abandon() {
  done_ = true;
  Release();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Napi::Value ConnectRequest::Cancel(const Napi::CallbackInfo& info) {
  if (!done_) {
    env_->Unlink(this);
    Abandon();
    Unref();
    callback_.Reset();  // never called now
  }
  return info.Env().Undefined();
}

}  // namespace strait
