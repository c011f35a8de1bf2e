#include "io/pipe.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io/env.h"
#include "io/socket_util.h"

namespace strait {

// iovecs per writev; 16 x 64 KiB covers the default 1 MiB high-water mark in one call.
static constexpr int kMaxIov = 64;

Napi::Function Pipe::Init(Napi::Env env) {
  return DefineClass(env, "Pipe",
                     {InstanceMethod("close", &Pipe::Close), InstanceAccessor("bytesAtoB", &Pipe::BytesAtoB, nullptr),
                      InstanceAccessor("bytesBtoA", &Pipe::BytesBtoA, nullptr)});
}

Pipe::Pipe(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Pipe>(info), async_(info.Env(), "StraitPipe") {
  Napi::Env env = info.Env();
  a_.fd = info[0].As<Napi::Number>().Int32Value();
  b_.fd = info[1].As<Napi::Number>().Int32Value();
  Napi::Object opts = info[2].As<Napi::Object>();
  idle_timeout_ms_ = static_cast<uint64_t>(opts.Get("idleTimeoutMs").As<Napi::Number>().Int64Value());
  int64_t hwm = opts.Get("highWaterMark").As<Napi::Number>().Int64Value();
  // At least one chunk, or nothing could ever be read.
  high_water_mark_ = hwm < static_cast<int64_t>(BufferPool::kChunkSize) ? BufferPool::kChunkSize : static_cast<size_t>(hwm);
  on_close_ = Napi::Persistent(info[3].As<Napi::Function>());
  a_to_b_.src = &a_;
  a_to_b_.dst = &b_;
  b_to_a_.src = &b_;
  b_to_a_.dst = &a_;

  strait::Env* e = GetEnv(env);
  for (Side* s : {&a_, &b_}) {
    s->poll = new uv_poll_t;
    int r = uv_poll_init(e->loop, s->poll, s->fd);
    if (r != 0) {
      delete s->poll;
      s->poll = nullptr;
      close(a_.fd);
      close(b_.fd);
      if (a_.poll) CloseAndFree(a_.poll);
      a_.poll = nullptr;
      finished_ = true;
      ThrowErrno(env, "uv_poll_init", -r);
    }
    s->poll->data = this;
  }
  e->stats.pipes_active++;
  last_activity_ = uv_now(e->loop);
  Ref();  // alive while data flows, whatever JavaScript holds
  UpdateInterest(&a_);
  UpdateInterest(&b_);
  if (idle_timeout_ms_ > 0) ArmIdle(idle_timeout_ms_);
}

Pipe::~Pipe() {
  // Finish() has run unless the environment is being torn down; then just release.
  if (!finished_) {
    finished_ = true;
    for (Side* s : {&a_, &b_}) {
      if (s->poll) CloseAndFree(s->poll);
      if (s->fd >= 0) close(s->fd);
    }
    if (idle_timer_) CloseAndFree(idle_timer_);
  }
}

void Pipe::UpdateInterest(Side* s) {
  if (finished_) return;
  Direction* out = s == &a_ ? &a_to_b_ : &b_to_a_;  // bytes read from s
  Direction* in = s == &a_ ? &b_to_a_ : &a_to_b_;   // bytes written to s
  int want = 0;
  if (!out->src_eof && out->pending_bytes < high_water_mark_) want |= UV_READABLE;
  if (!in->pending.empty()) want |= UV_WRITABLE;
  if (want == s->events) return;
  s->events = want;
  if (want == 0) {
    uv_poll_stop(s->poll);
    return;
  }
  uv_poll_start(s->poll, want, [](uv_poll_t* h, int status, int events) {
    Pipe* p = static_cast<Pipe*>(h->data);
    p->OnEvent(h == p->a_.poll ? &p->a_ : &p->b_, status, events);
  });
}

void Pipe::OnEvent(Side* side, int status, int events) {
  if (finished_) return;
  if (status < 0) {
    Finish(side == &a_ ? kResetA : kResetB);
    return;
  }
  Direction* out = side == &a_ ? &a_to_b_ : &b_to_a_;
  Direction* in = side == &a_ ? &b_to_a_ : &a_to_b_;
  if ((events & UV_WRITABLE) && !Flush(in)) return;
  if ((events & UV_READABLE) && !Read(out)) return;
  UpdateInterest(&a_);
  UpdateInterest(&b_);
}

bool Pipe::Read(Direction* d) {
  strait::Env* e = GetEnv(Env());
  BufferPool& pool = e->pool;
  while (!d->src_eof && d->pending_bytes < high_water_mark_) {
    if (d->pending.empty() || d->pending.back().len == BufferPool::kChunkSize) {
      d->pending.push_back({pool.Take(), 0, 0});
    }
    Chunk& c = d->pending.back();
    size_t room = BufferPool::kChunkSize - c.len;
    e->stats.read_calls++;
    ssize_t n = read(d->src->fd, c.data + c.len, room);
    if (n > 0) {
      c.len += static_cast<size_t>(n);
      d->pending_bytes += static_cast<size_t>(n);
      last_activity_ = uv_now(e->loop);
      // A short read means the socket is drained; skip the read that would say EAGAIN.
      if (static_cast<size_t>(n) < room) break;
      continue;
    }
    if (n == 0) {
      d->src_eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    Finish(d->src == &a_ ? kResetA : kResetB);
    return false;
  }
  // Drop an empty tail chunk so an idle pipe holds no memory.
  if (!d->pending.empty() && d->pending.back().len == d->pending.back().off) {
    pool.Give(d->pending.back().data);
    d->pending.pop_back();
  }
  return Flush(d);
}

bool Pipe::Flush(Direction* d) {
  strait::Env* e = GetEnv(Env());
  while (!d->pending.empty()) {
    iovec iov[kMaxIov];
    int n = 0;
    for (auto it = d->pending.begin(); it != d->pending.end() && n < kMaxIov; ++it, ++n) {
      iov[n].iov_base = it->data + it->off;
      iov[n].iov_len = it->len - it->off;
    }
    e->stats.writev_calls++;
    ssize_t w = writev(d->dst->fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;  // wait for UV_WRITABLE
      Finish(d->dst == &a_ ? kResetA : kResetB);
      return false;
    }
    d->bytes += static_cast<uint64_t>(w);
    d->pending_bytes -= static_cast<size_t>(w);
    last_activity_ = uv_now(e->loop);
    size_t left = static_cast<size_t>(w);
    while (left > 0) {
      Chunk& c = d->pending.front();
      size_t avail = c.len - c.off;
      if (left < avail) {
        c.off += left;
        break;
      }
      left -= avail;
      e->pool.Give(c.data);
      d->pending.pop_front();
    }
  }
  // Everything the source sent has been delivered: pass its EOF on as our FIN.
  if (d->src_eof && !d->dst_shut) {
    d->dst_shut = true;
    shutdown(d->dst->fd, SHUT_WR);
    if (a_to_b_.dst_shut && b_to_a_.dst_shut) {
      Finish(kDone);
      return false;
    }
  }
  return true;
}

void Pipe::ArmIdle(uint64_t ms) {
  if (!idle_timer_) {
    idle_timer_ = new uv_timer_t;
    uv_timer_init(GetEnv(Env())->loop, idle_timer_);
    idle_timer_->data = this;
    // The timer alone must not keep the process alive.
    uv_unref(reinterpret_cast<uv_handle_t*>(idle_timer_));
  }
  uv_timer_start(idle_timer_, [](uv_timer_t* t) { static_cast<Pipe*>(t->data)->OnIdleTimer(); }, ms, 0);
}

void Pipe::OnIdleTimer() {
  if (finished_) return;
  // Re-armed lazily: activity only stamps a time, the timer checks it when it fires.
  uint64_t idle = uv_now(GetEnv(Env())->loop) - last_activity_;
  if (idle >= idle_timeout_ms_) Finish(kIdleTimeout);
  else ArmIdle(idle_timeout_ms_ - idle);
}

void Pipe::Finish(PipeCloseReason reason) {
  if (finished_) return;
  finished_ = true;
  strait::Env* e = GetEnv(Env());
  for (Side* s : {&a_, &b_}) {
    if (s->poll) CloseAndFree(s->poll);
    s->poll = nullptr;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
  }
  if (idle_timer_) CloseAndFree(idle_timer_);
  idle_timer_ = nullptr;
  for (Direction* d : {&a_to_b_, &b_to_a_}) {
    for (Chunk& c : d->pending) e->pool.Give(c.data);
    d->pending.clear();
    d->pending_bytes = 0;
  }
  e->stats.pipes_active--;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  on_close_.MakeCallback(Value(),
                         {Napi::Number::New(env, reason), Napi::Number::New(env, static_cast<double>(a_to_b_.bytes)),
                          Napi::Number::New(env, static_cast<double>(b_to_a_.bytes))},
                         async_);
  Unref();
}

Napi::Value Pipe::Close(const Napi::CallbackInfo& info) {
  Finish(kLocal);
  return info.Env().Undefined();
}

Napi::Value Pipe::BytesAtoB(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(a_to_b_.bytes)); }
Napi::Value Pipe::BytesBtoA(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(b_to_a_.bytes)); }

}  // namespace strait
