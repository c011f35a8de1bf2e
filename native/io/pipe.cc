#include "io/pipe.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "io/js_util.h"

namespace strait {

// iovecs per gathered write. 64 x 64 KiB = 4 MiB covers the usual 1 MiB high-water mark in one
// call; a larger queue takes a second call in the same flush. Must not exceed IOV_MAX (1024 on
// Linux) or writev/sendmsg fail with EINVAL.
static constexpr int kMaxWriteIov = 64 < IOV_MAX ? 64 : IOV_MAX;
// Fresh chunks per readv at most (1 MiB). Reads start with one chunk and double while they
// come back full, so a trickle of small messages never takes more than one chunk.
static constexpr int kMaxReadChunks = 16;
static constexpr size_t kChunk = BufferPool::kChunkSize;

Napi::Function Pipe::Init(Napi::Env env) {
  return DefineClass(env, "Pipe",
                     {InstanceMethod("close", &Pipe::Close), InstanceAccessor("bytesAtoB", &Pipe::BytesAtoB, nullptr),
                      InstanceAccessor("bytesBtoA", &Pipe::BytesBtoA, nullptr)});
}

Pipe::Pipe(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<Pipe>(info), env_(GetEnv(info.Env())), async_(info.Env(), "StraitPipe") {
  Napi::Env env = info.Env();
  int fd_a = ArgInt(info, 0, "Pipe", "fdA", 0, INT32_MAX);
  int fd_b = ArgInt(info, 1, "Pipe", "fdB", 0, INT32_MAX);
  if (fd_a == fd_b) throw Napi::RangeError::New(env, "Pipe: fdA and fdB must differ");
  if (!info[2].IsObject()) throw Napi::TypeError::New(env, "Pipe: opts must be an object");
  Napi::Object opts = info[2].As<Napi::Object>();
  idle_timeout_ms_ = static_cast<uint64_t>(OptNumber(opts, "idleTimeoutMs", "Pipe", 0, INT32_MAX));
  // Any positive mark works (reads are cut to fit it exactly); 1 MiB is the usual setting.
  high_water_mark_ = static_cast<size_t>(OptNumber(opts, "highWaterMark", "Pipe", 1, INT32_MAX));
  on_close_ = Napi::Persistent(ArgFunction(info, 3, "Pipe", "onClose"));

  a_.pipe = b_.pipe = this;
  a_.fd = fd_a;
  b_.fd = fd_b;
  a_to_b_.src = &a_;
  a_to_b_.dst = &b_;
  b_to_a_.src = &b_;
  b_to_a_.dst = &a_;
  a_.out = b_.in = &a_to_b_;
  b_.out = a_.in = &b_to_a_;

  // From here on the pipe owns both fds: on failure it closes them, as it would on any end.
  for (Side* s : {&a_, &b_}) {
    s->poll = new uv_poll_t;
    // uv_poll_init also puts the fd in non-blocking mode, whoever created it. It fails with
    // EEXIST when another poll handle (an unfinished connect, an acceptor) still watches it.
    int r = uv_poll_init(env_->loop, s->poll, s->fd);
    if (r != 0) {
      delete s->poll;  // never initialised, so no uv_close
      s->poll = nullptr;
      finished_ = true;
      Release(true);
      ThrowErrno(env, "Pipe: uv_poll_init", -r);
    }
    s->poll->data = s;
  }
  env_->stats.pipes_active++;
  last_activity_ = uv_now(env_->loop);
  Ref();  // alive while data flows, whatever JavaScript holds
  env_->Link(this);
  UpdateInterest(&a_);
  UpdateInterest(&b_);
  if (idle_timeout_ms_ > 0) ArmIdle(idle_timeout_ms_);
}

Pipe::~Pipe() {
  // Open here only when the environment is torn down without the cleanup hook having run;
  // never call JavaScript from a finalizer.
  if (!finished_) Abandon();
}

void Pipe::Abandon() {
  if (finished_) return;
  finished_ = true;
  env_->stats.pipes_active--;
  Release(true);
}

void Pipe::UpdateInterest(Side* s) {
  if (finished_) return;
  int want = 0;
  // Backpressure: a direction holding highWaterMark bytes stops reading its source until the
  // destination takes some; TCP flow control then pushes back on the sender.
  if (!s->out->src_eof && s->out->pending < high_water_mark_) want |= UV_READABLE;
  if (s->in->head) want |= UV_WRITABLE;
  // Each uv_poll_start/stop is an epoll_ctl syscall: only touch the poll when the mask changes.
  if (want == s->events) return;
  s->events = want;
  if (want == 0) {
    uv_poll_stop(s->poll);
    return;
  }
  uv_poll_start(s->poll, want, [](uv_poll_t* h, int status, int events) {
    Side* side = static_cast<Side*>(h->data);
    side->pipe->OnEvent(side, status, events);
  });
}

void Pipe::OnEvent(Side* side, int status, int events) {
  if (finished_) return;
  if (status < 0) {
    // libuv turns POLLERR into UV_EBADF and stops the handle: the socket holds an error
    // (a reset, typically). Tear down both sides.
    Finish(ResetOf(side), false);
    return;
  }
  // Write first: draining the queue into this side makes room for the other side to read.
  if ((events & UV_WRITABLE) && !Flush(side->in)) return;
  if ((events & UV_READABLE) && !Read(side->out)) return;
  UpdateInterest(&a_);
  UpdateInterest(&b_);
}

bool Pipe::Read(Direction* d) {
  BufferPool& pool = env_->pool;
  int want_chunks = 1;
  while (!d->src_eof && d->pending < high_water_mark_) {
    // Never ask for more than the mark allows: the bound on buffered bytes is exact.
    size_t budget = high_water_mark_ - d->pending;
    iovec iov[kMaxReadChunks + 1];
    Chunk* fresh[kMaxReadChunks];
    int n = 0;
    int nfresh = 0;
    size_t asked = 0;
    // Top up a partly filled tail first (it exists only while the destination is slow).
    Chunk* tail = d->tail && d->tail->len < kChunk ? d->tail : nullptr;
    if (tail) {
      size_t room = std::min(kChunk - tail->len, budget);
      iov[n++] = {tail->data + tail->len, room};
      asked += room;
    }
    while (nfresh < want_chunks && asked < budget) {
      Chunk* c = pool.Take();
      fresh[nfresh++] = c;
      size_t room = std::min(kChunk, budget - asked);
      iov[n++] = {c->data, room};
      asked += room;
    }
    env_->stats.read_calls++;
    ssize_t r = n == 1 ? read(d->src->fd, iov[0].iov_base, iov[0].iov_len) : readv(d->src->fd, iov, n);
    int err = r < 0 ? errno : 0;
    // Hand the bytes to the chunks in iovec order; chunks left empty go straight back.
    size_t left = r > 0 ? static_cast<size_t>(r) : 0;
    int i = 0;
    if (tail) {
      size_t take = std::min(left, iov[0].iov_len);
      tail->len += static_cast<uint32_t>(take);
      left -= take;
      i = 1;
    }
    for (int k = 0; k < nfresh; k++, i++) {
      Chunk* c = fresh[k];
      size_t take = std::min(left, iov[i].iov_len);
      if (take == 0) {
        pool.Give(c);
        continue;
      }
      c->len = static_cast<uint32_t>(take);
      left -= take;
      if (d->tail) d->tail->next = c;
      else d->head = c;
      d->tail = c;
    }
    if (r > 0) {
      d->pending += static_cast<size_t>(r);
      last_activity_ = uv_now(env_->loop);
      // A short read means the socket is drained: skip the read that would only say EAGAIN.
      if (static_cast<size_t>(r) < asked) break;
      if (want_chunks < kMaxReadChunks) want_chunks *= 2;
      continue;
    }
    if (r == 0) {
      d->src_eof = true;
      break;
    }
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) break;
    Finish(ResetOf(d->src), false);  // ECONNRESET, ETIMEDOUT (keepalive), ...
    return false;
  }
  return Flush(d);
}

bool Pipe::Flush(Direction* d) {
  while (d->head) {
    iovec iov[kMaxWriteIov];
    int n = 0;
    size_t total = 0;
    for (Chunk* c = d->head; c && n < kMaxWriteIov; c = c->next, n++) {
      iov[n].iov_base = c->data + c->off;
      iov[n].iov_len = c->len - c->off;
      total += iov[n].iov_len;
    }
    // sendmsg is writev with flags: MSG_NOSIGNAL turns a write to a vanished peer into EPIPE
    // instead of SIGPIPE, which would kill a host process that does not ignore it (Node does,
    // embedders need not).
    msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n);
    env_->stats.writev_calls++;
    ssize_t w = sendmsg(d->dst->fd, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;  // UpdateInterest polls for UV_WRITABLE
      Finish(ResetOf(d->dst), false);  // EPIPE, ECONNRESET, ...
      return false;
    }
    d->bytes += static_cast<uint64_t>(w);
    d->pending -= static_cast<size_t>(w);
    last_activity_ = uv_now(env_->loop);
    size_t left = static_cast<size_t>(w);
    while (left > 0) {
      Chunk* c = d->head;
      size_t avail = c->len - c->off;
      if (left < avail) {
        c->off += static_cast<uint32_t>(left);
        break;
      }
      left -= avail;
      d->head = c->next;
      if (!d->head) d->tail = nullptr;
      env_->pool.Give(c);  // written out: the chunk goes back at once
    }
    // A short write means the socket buffer is full: wait for UV_WRITABLE rather than make a
    // call that would only return EAGAIN.
    if (static_cast<size_t>(w) < total) return true;
  }
  // Every byte the source sent before its EOF is delivered: pass the EOF on as our FIN.
  if (d->src_eof && !d->dst_shut) {
    d->dst_shut = true;
    // An error here (ENOTCONN after a reset) surfaces on the next read or write of that side.
    shutdown(d->dst->fd, SHUT_WR);
    if (a_to_b_.dst_shut && b_to_a_.dst_shut) {
      Finish(kDone, false);
      return false;
    }
  }
  return true;
}

void Pipe::ArmIdle(uint64_t ms) {
  if (!idle_timer_) {
    idle_timer_ = new uv_timer_t;
    uv_timer_init(env_->loop, idle_timer_);
    idle_timer_->data = this;
    // The poll handles keep the loop alive while the pipe is open; the timer need not.
    uv_unref(reinterpret_cast<uv_handle_t*>(idle_timer_));
  }
  uv_timer_start(idle_timer_, [](uv_timer_t* t) { static_cast<Pipe*>(t->data)->OnIdleTimer(); }, ms, 0);
}

void Pipe::OnIdleTimer() {
  if (finished_) return;
  // Re-armed lazily: traffic only stamps last_activity_ (no timer call per read), and the
  // timer, when it fires, sleeps again for whatever is left of the timeout.
  uint64_t idle = uv_now(env_->loop) - last_activity_;
  if (idle >= idle_timeout_ms_) Finish(kIdleTimeout, false);
  else ArmIdle(idle_timeout_ms_ - idle);
}

void Pipe::Release(bool abortive) {
  for (Side* s : {&a_, &b_}) {
    // Poll first, fd second: libuv must stop watching an fd before it is closed (and its
    // number possibly reused); uv_close removes it from epoll immediately.
    if (s->poll) CloseAndFree(s->poll);
    s->poll = nullptr;
    if (s->fd >= 0) {
      if (abortive) {
        // SO_LINGER with a zero timeout makes close() send RST: the peer learns the stream
        // was cut short rather than reading a clean EOF it could mistake for a full response.
        linger lg = {1, 0};
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      }
      close(s->fd);
    }
    s->fd = -1;
  }
  if (idle_timer_) CloseAndFree(idle_timer_);
  idle_timer_ = nullptr;
  for (Direction* d : {&a_to_b_, &b_to_a_}) {
    while (d->head) {
      Chunk* c = d->head;
      d->head = c->next;
      env_->pool.Give(c);
    }
    d->tail = nullptr;
    d->pending = 0;
  }
}

void Pipe::Finish(PipeCloseReason reason, bool from_js) {
  if (finished_) return;
  finished_ = true;
  env_->stats.pipes_active--;
  // FIN for a clean end and for an idle timeout (nothing is in flight); RST otherwise.
  Release(reason != kDone && reason != kIdleTimeout);
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Object self = Value();  // a local handle keeps the object alive past Unref
  env_->Unlink(this);
  Unref();  // JavaScript may drop it now; nothing in C++ refers to it any more
  Napi::Value args[] = {Napi::Number::New(env, reason), Napi::Number::New(env, static_cast<double>(a_to_b_.bytes)),
                        Napi::Number::New(env, static_cast<double>(b_to_a_.bytes))};
  // The only call: the callback is let go of when this returns, since its closure may hold the
  // JavaScript side that holds this wrapper (a cycle through a strong reference is never freed).
  Napi::FunctionReference on_close = std::move(on_close_);
  if (from_js) {
    // Inside close(): an exception from onClose propagates to close()'s caller.
    on_close.MakeCallback(self, {args[0], args[1], args[2]}, async_);
  } else {
    CallFromLoop(env, on_close, self, {args[0], args[1], args[2]}, async_);
  }
}

Napi::Value Pipe::Close(const Napi::CallbackInfo& info) {
  Finish(kLocal, true);
  return info.Env().Undefined();
}

Napi::Value Pipe::BytesAtoB(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(a_to_b_.bytes)); }
Napi::Value Pipe::BytesBtoA(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(b_to_a_.bytes)); }

}  // namespace strait
