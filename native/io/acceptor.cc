#include "io/acceptor.h"

#include <algorithm>
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/js_util.h"
#include "io/socket_util.h"

namespace strait {

// Accept at most this many per wake-up so one busy listener cannot starve the rest of the
// loop; the poll is level-triggered, so whatever is left wakes us again on the next turn.
static constexpr int kAcceptBatch = 64;
// After a resource error (EMFILE, ENFILE, ...) stop polling for a moment: the listener stays
// readable while connections wait, so polling on would spin the loop at 100% CPU.
static constexpr uint64_t kBackoffMs = 100;

// Errors that belong to the one connection being accepted, not to the listener. Linux passes
// pending network errors of the new socket up through accept (accept(2), "Error handling"):
// the right response is to try the next connection.
static bool PerConnectionError(int err) {
  switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETDOWN:
    case ENETUNREACH:
    case EPERM:  // a firewall (netfilter) rejected this connection
      return true;
    default:
      return false;
  }
}

Napi::Function Acceptor::Init(Napi::Env env) {
  return DefineClass(env, "Acceptor",
                     {InstanceMethod("pause", &Acceptor::Pause), InstanceMethod("resume", &Acceptor::Resume),
                      InstanceMethod("close", &Acceptor::Close)});
}

Acceptor::Acceptor(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<Acceptor>(info),
      env_(GetEnv(info.Env())),
      fd_(ArgInt(info, 0, "Acceptor", "fd", 0, INT32_MAX)),
      async_(info.Env(), "StraitAcceptor") {
  on_accept_ = Napi::Persistent(ArgFunction(info, 1, "Acceptor", "onAccept"));
  on_error_ = Napi::Persistent(ArgFunction(info, 2, "Acceptor", "onError"));
  repeat_peer_ = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array || info[4].As<Napi::TypedArray>().ElementLength() < 2) {
      Napi::TypeError::New(info.Env(), "Acceptor: batch must be an Int32Array of 2 slots or more").ThrowAsJavaScriptException();
      return;
    }
    batch_ = Napi::Persistent(info[4].As<Napi::Int32Array>());
  }
  poll_ = new uv_poll_t;
  // uv_poll_init also switches the fd to non-blocking mode, whoever created it.
  int r = uv_poll_init(env_->loop, poll_, fd_);
  if (r != 0) {
    delete poll_;  // never initialised, so no uv_close
    poll_ = nullptr;
    closed_ = true;
    ThrowErrno(info.Env(), "Acceptor: uv_poll_init", -r);
  }
  poll_->data = this;
  // A listener of our own or one inherited from the old process in a hot restart: either way
  // it gets the option here (a Unix socket has no Nagle to turn off).
  sockaddr_storage ls;
  socklen_t ll = sizeof(ls);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&ls), &ll) == 0 && (ls.ss_family == AF_INET || ls.ss_family == AF_INET6)) {
    SetNoDelay(fd_);
    nodelay_ = NoDelayFrom::kUnchecked;
  }
  StartPolling();
  Ref();  // alive while listening, even if JavaScript drops its reference
  env_->Link(this);
}

Acceptor::~Acceptor() {
  // Only reached open if the environment is going away without the cleanup hook (it unlinks
  // and abandons first); never call into JavaScript from a finalizer.
  if (!closed_) Abandon();
}

void Acceptor::StartPolling() {
  if (polling_ || closed_ || paused_ || backoff_) return;
  polling_ = true;
  uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* h, int status, int events) {
    // status < 0 (POLLERR on a listening socket) is left to accept4, which reports the error.
    auto* self = static_cast<Acceptor*>(h->data);
    if (self->batch_.IsEmpty()) self->OnReadable();
    else self->OnReadableBatch();
  });
}

namespace {

// One callback scope for every connection a wake-up hands to JavaScript (~46 a wake-up under
// connection churn): MakeCallback per connection set up and tore down a scope, the async
// context and a microtask checkpoint each time (~650 instructions a connection). Opened at the
// first connection, closed (microtasks and nextTicks run then) when the batch is handed over or
// before anything else is called.
class BatchScope {
 public:
  BatchScope(napi_env env, napi_value resource, napi_async_context ctx) : env_(env), resource_(resource), ctx_(ctx) {}
  ~BatchScope() { Close(); }
  BatchScope(const BatchScope&) = delete;
  BatchScope& operator=(const BatchScope&) = delete;
  bool Open() {
    if (scope_ == nullptr && napi_open_callback_scope(env_, resource_, ctx_, &scope_) != napi_ok) scope_ = nullptr;
    return scope_ != nullptr;
  }
  void Close() {
    if (scope_ != nullptr) napi_close_callback_scope(env_, scope_);
    scope_ = nullptr;
  }

 private:
  napi_env env_;
  napi_value resource_;
  napi_async_context ctx_;
  napi_callback_scope scope_ = nullptr;
};

}  // namespace

int Acceptor::AcceptOne(Accepted& a) {
  socklen_t len = sizeof(a.ss);
  // accept4 sets non-blocking and close-on-exec atomically: no window where a forked
  // child could inherit the fd, and no extra fcntl calls per connection.
  a.fd = accept4(fd_, reinterpret_cast<sockaddr*>(&a.ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (a.fd < 0) {
    int err = errno;
    if (err == EWOULDBLOCK) return EAGAIN;
    return PerConnectionError(err) ? EINTR : err;
  }
  a.len = len;
  const sockaddr_storage& ss = a.ss;
  if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) NoDelay(a.fd);
  if (repeat_peer_ && SamePeer(ss)) {
    a.has_peer = false;
    a.port = ntohs(ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(&ss)->sin_port : reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  } else {
    a.has_peer = true;
    a.parts = DescribeAddress(ss, len);
    a.port = a.parts.port;
  }
  return 0;
}

void Acceptor::PeerStrings(const Accepted& a, napi_value* family, napi_value* address) {
  napi_env env = Env();
  // An IP address and the family names are ASCII: made as Latin-1 strings, without the UTF-8
  // decoder's pass (~100 instructions each, two per connection). A unix path stays UTF-8.
  napi_create_string_latin1(env, a.parts.family, NAPI_AUTO_LENGTH, family);
  if (a.ss.ss_family == AF_INET || a.ss.ss_family == AF_INET6) napi_create_string_latin1(env, a.parts.address.data(), a.parts.address.size(), address);
  else *address = Napi::String::New(Env(), a.parts.address);
}

void Acceptor::OnReadable() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  BatchScope batch(env, Value(), async_);
  for (int i = 0; i < kAcceptBatch && !closed_ && !paused_; i++) {
    Accepted a;
    int err = AcceptOne(a);
    if (err == EAGAIN) return;
    if (err == EINTR) continue;
    if (err != 0) {
      // EMFILE, ENFILE, ENOBUFS, ENOMEM, or a broken listener: back off, then tell JS.
      Backoff();
      batch.Close();
      CallFromLoop(env, on_error_, Value(), {Napi::String::New(env, ErrnoNameOf(err))}, async_);
      return;
    }
    const int cfd = a.fd, port = a.port;
    napi_value family, address;
    if (!a.has_peer) {
      napi_get_undefined(env, &family);
      address = family;
    } else {
      PeerStrings(a, &family, &address);
    }
    const napi_value argv[4] = {Napi::Number::New(env, cfd), family, address, Napi::Number::New(env, port)};
    if (!batch.Open()) {
      CallFromLoop(env, on_accept_, Value(), 4, argv, async_);
      continue;
    }
    napi_value ignored;
    if (napi_call_function(env, Value(), on_accept_.Value(), 4, argv, &ignored) == napi_pending_exception) {
      // As CallFromLoop: Node's uncaught-exception machinery, outside the scope (the next
      // connection opens another); nothing to report while the environment is torn down.
      napi_value err = nullptr;
      napi_valuetype t = napi_undefined;
      napi_get_and_clear_last_exception(env, &err);
      batch.Close();
      if (err != nullptr && napi_typeof(env, err, &t) == napi_ok && t != napi_undefined) napi_fatal_exception(env, err);
    }
  }
}

void Acceptor::OnReadableBatch() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Int32Array arr = batch_.Value();
  int32_t* slots = arr.Data();
  const size_t cap = std::min(arr.ElementLength() / 2, size_t(kAcceptBatch));
  napi_value peers = nullptr;  // made at the first peer that does not repeat
  size_t n = 0;
  int failed = 0;
  // Per-connection errors count as tries too: at most kAcceptBatch accept4 calls a wake-up.
  for (int tries = 0; tries < kAcceptBatch && n < cap; tries++) {
    Accepted a;
    int err = AcceptOne(a);
    if (err == EAGAIN) break;
    if (err == EINTR) continue;
    if (err != 0) {
      failed = err;
      break;
    }
    if (a.has_peer) {
      napi_value family, address;
      PeerStrings(a, &family, &address);
      if (peers == nullptr) napi_create_array_with_length(env, 2 * cap, &peers);
      napi_set_element(env, peers, uint32_t(2 * n), family);
      napi_set_element(env, peers, uint32_t(2 * n + 1), address);
    }
    slots[2 * n] = a.fd;
    slots[2 * n + 1] = a.port;
    n++;
  }
  if (n > 0) {
    napi_value argv[2] = {Napi::Number::New(env, double(n)), peers != nullptr ? peers : env.Undefined()};
    CallFromLoop(env, on_accept_, Value(), 2, argv, async_);
  }
  if (failed != 0 && !closed_) {  // closed by onAccept: nothing to tell any more
    // EMFILE, ENFILE, ENOBUFS, ENOMEM, or a broken listener: back off, then tell JS.
    Backoff();
    CallFromLoop(env, on_error_, Value(), {Napi::String::New(env, ErrnoNameOf(failed))}, async_);
  }
}

bool Acceptor::SamePeer(const sockaddr_storage& ss) {
  const uint8_t* ip;
  size_t n;
  uint32_t scope = 0;
  if (ss.ss_family == AF_INET) {
    ip = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr);
    n = 4;
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ip = reinterpret_cast<const uint8_t*>(&a->sin6_addr);
    n = 16;
    scope = a->sin6_scope_id;
  } else {
    last_peer_.family = AF_UNSPEC;
    return false;
  }
  LastPeer& l = last_peer_;
  if (l.family == ss.ss_family && l.scope == scope && memcmp(l.ip, ip, n) == 0) return true;
  l.family = ss.ss_family;
  l.scope = scope;
  memcpy(l.ip, ip, n);
  return false;
}

void Acceptor::NoDelay(int cfd) {
  if (nodelay_ == NoDelayFrom::kListener) return;
  if (nodelay_ == NoDelayFrom::kUnchecked) {
    int on = 0;
    socklen_t len = sizeof(on);
    if (getsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on) {
      nodelay_ = NoDelayFrom::kListener;
      return;
    }
    nodelay_ = NoDelayFrom::kEachSocket;
  }
  SetNoDelay(cfd);
}

void Acceptor::Backoff() {
  if (backoff_ || closed_) return;
  if (polling_) uv_poll_stop(poll_);
  polling_ = false;
  backoff_ = new uv_timer_t;
  uv_timer_init(env_->loop, backoff_);
  backoff_->data = this;
  uv_timer_start(backoff_, [](uv_timer_t* t) {
    auto* self = static_cast<Acceptor*>(t->data);
    CloseAndFree(self->backoff_);
    self->backoff_ = nullptr;
    self->StartPolling();
  }, kBackoffMs, 0);
}

Napi::Value Acceptor::Pause(const Napi::CallbackInfo& info) {
  if (!closed_ && !paused_) {
    paused_ = true;
    if (polling_) uv_poll_stop(poll_);
    polling_ = false;
  }
  return info.Env().Undefined();
}

Napi::Value Acceptor::Resume(const Napi::CallbackInfo& info) {
  if (!closed_ && paused_) {
    paused_ = false;
    StartPolling();  // unless a backoff is running; its timer resumes polling
  }
  return info.Env().Undefined();
}

void Acceptor::Release() {
  closed_ = true;
  polling_ = false;
  // uv_close on a poll handle removes the fd from epoll right away, so closing the fd
  // afterwards is safe (libuv forbids closing an fd that is still being polled).
  if (poll_) CloseAndFree(poll_);
  if (backoff_) CloseAndFree(backoff_);
  poll_ = nullptr;
  backoff_ = nullptr;
  close(fd_);
  fd_ = -1;
}

void Acceptor::Abandon() { Release(); }

Napi::Value Acceptor::Close(const Napi::CallbackInfo& info) {
  if (!closed_) {
    env_->Unlink(this);
    Release();
    Unref();
    // Never called again: their closures (which may hold the listener that holds this wrapper)
    // must not stay reachable from a strong reference.
    on_accept_.Reset();
    on_error_.Reset();
    batch_.Reset();
  }
  return info.Env().Undefined();
}

}  // namespace strait
