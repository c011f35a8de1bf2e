#include "io/batch_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>

#include "io/js_util.h"

namespace strait {

// The most one read() asks for: Node's own read size, and what one HTTP/1 head or a body chunk
// needs. One read per socket per turn: JavaScript sees each read before the next, so a paused
// connection (a full response queue) never has more than one read beyond its limit, as with
// Node's stream reads; more waiting is read on the next turn (the poll is level-triggered).
static constexpr size_t kReadSize = 64 * 1024;
static constexpr int kReadsPerEvent = 1;

Napi::Function BatchReader::Init(Napi::Env env) {
  return DefineClass(env, "BatchReader",
                     {InstanceMethod("add", &BatchReader::Add), InstanceMethod("pause", &BatchReader::Pause),
                      InstanceMethod("resume", &BatchReader::Resume), InstanceMethod("remove", &BatchReader::Remove),
                      InstanceMethod("detach", &BatchReader::Detach), InstanceMethod("watchWrite", &BatchReader::WatchWrite),
                      InstanceMethod("flush", &BatchReader::Flush)});
}

BatchReader::BatchReader(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<BatchReader>(info), env_(GetEnv(info.Env())), async_(info.Env(), "StraitBatchReader") {
  Napi::Env env = info.Env();
  if (!info[0].IsBuffer()) throw Napi::TypeError::New(env, "BatchReader: arena must be a Buffer");
  auto arena = info[0].As<Napi::Buffer<uint8_t>>();
  if (arena.Length() < kReadSize || arena.Length() > size_t(INT32_MAX))
    throw Napi::RangeError::New(env, "BatchReader: arena must hold 64 KiB to 2 GiB");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, "BatchReader: out must be an Int32Array");
  auto out = info[1].As<Napi::Int32Array>();
  if (out.ElementLength() < 3) throw Napi::RangeError::New(env, "BatchReader: out must hold at least one entry (3 ints)");
  on_batch_ = Napi::Persistent(ArgFunction(info, 2, "BatchReader", "onBatch"));
  // The references keep the memory alive (and in place: Buffers and typed arrays never move
  // their backing store) for as long as C++ writes into it.
  arena_ref_ = Napi::Persistent(arena);
  out_ref_ = Napi::Persistent(out);
  arena_ = arena.Data();
  arena_len_ = arena.Length();
  out_ = out.Data();
  out_cap_ = out.ElementLength() / 3;
  check_ = new uv_check_t;
  uv_check_init(env_->loop, check_);
  check_->data = this;
  // Runs right after the poll phase of every turn, so the reads of one turn leave together.
  // Unreferenced: the polls keep the loop alive while a socket is open, the check need not.
  uv_check_start(check_, [](uv_check_t* h) { static_cast<BatchReader*>(h->data)->Deliver(false); });
  uv_unref(reinterpret_cast<uv_handle_t*>(check_));
  env_->Link(this);
}

BatchReader::~BatchReader() {
  if (!released_) Release();
  for (Slot* s : slots_) delete s;
}

void BatchReader::Abandon() { Release(); }

void BatchReader::Release() {
  if (released_) return;
  released_ = true;
  env_->Unlink(this);
  for (Slot* s : slots_) {
    if (s->poll) CloseAndFree(s->poll);
    s->poll = nullptr;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
  }
  if (check_) CloseAndFree(check_);
  check_ = nullptr;
  count_ = 0;
}

BatchReader::Slot* BatchReader::SlotArg(const Napi::CallbackInfo& info, const char* fn) {
  int32_t id = ArgInt(info, 0, fn, "slot", 0, INT32_MAX);
  if (size_t(id) >= slots_.size() || slots_[id]->fd < 0) throw Napi::RangeError::New(info.Env(), std::string(fn) + ": no such slot");
  return slots_[id];
}

Napi::Value BatchReader::Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "BatchReader.add", "fd", 0, INT32_MAX);
  bool own = info.Length() > 1 && info[1].ToBoolean();
  if (released_) throw Napi::Error::New(env, "BatchReader.add: reader released");
  // A net.Socket's slot reads its own descriptor for the same socket: Node's handle keeps the
  // original (and its epoll registration); libuv refuses a second watcher on one fd number.
  int dfd = own ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dfd < 0) ThrowErrno(env, "BatchReader.add: dup", errno);
  uint32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = uint32_t(slots_.size());
    slots_.push_back(new Slot());
  }
  Slot* s = slots_[id];
  *s = Slot();
  s->reader = this;
  s->id = id;
  s->poll = new uv_poll_t;
  // Also makes the file description non-blocking (shared with Node's fd, which already is).
  int r = uv_poll_init(env_->loop, s->poll, dfd);
  if (r != 0) {
    delete s->poll;
    s->poll = nullptr;
    if (!own) close(dfd);  // an owned fd stays the caller's when add() throws
    free_.push_back(id);
    ThrowErrno(env, "BatchReader.add: uv_poll_init", -r);
  }
  s->poll->data = s;
  s->fd = dfd;
  Update(id);
  return Napi::Number::New(env, id);
}

Napi::Value BatchReader::Pause(const Napi::CallbackInfo& info) {
  Slot* s = SlotArg(info, "BatchReader.pause");
  s->paused = true;
  Update(s->id);
  return info.Env().Undefined();
}

Napi::Value BatchReader::Resume(const Napi::CallbackInfo& info) {
  Slot* s = SlotArg(info, "BatchReader.resume");
  s->paused = false;
  Update(s->id);
  return info.Env().Undefined();
}

Napi::Value BatchReader::Remove(const Napi::CallbackInfo& info) {
  Drop(ArgInt(info, 0, "BatchReader.remove", "slot", 0, INT32_MAX), false);
  return info.Env().Undefined();
}

Napi::Value BatchReader::Detach(const Napi::CallbackInfo& info) {
  Drop(ArgInt(info, 0, "BatchReader.detach", "slot", 0, INT32_MAX), true);
  return info.Env().Undefined();
}

Napi::Value BatchReader::WatchWrite(const Napi::CallbackInfo& info) {
  Slot* s = SlotArg(info, "BatchReader.watchWrite");
  s->write_wanted = true;
  Update(s->id);
  return info.Env().Undefined();
}

void BatchReader::Drop(int32_t id, bool keep_fd) {
  if (size_t(id) >= slots_.size() || slots_[id]->fd < 0) return;  // idempotent
  Slot* s = slots_[id];
  // uv_close stops the poll at once (libuv forgets the fd before this returns), so the fd may
  // be handed to another watcher right after a detach.
  if (s->poll) CloseAndFree(s->poll);
  s->poll = nullptr;
  if (!keep_fd) close(s->fd);
  s->fd = -1;
  // Entries of this slot not yet handed out (or being handed out) must not reach whoever
  // takes the slot number next.
  for (size_t i = 0; i < count_; i++)
    if (out_[3 * i] == id) out_[3 * i] = -1;
  free_.push_back(uint32_t(id));
}

Napi::Value BatchReader::Flush(const Napi::CallbackInfo& info) {
  Deliver(true);
  return info.Env().Undefined();
}

void BatchReader::Update(uint32_t id) {
  Slot* s = slots_[id];
  if (!s->poll) return;
  int want = (!s->done && !s->paused ? UV_READABLE : 0) | (s->write_wanted ? UV_WRITABLE : 0);
  if (want == s->polling) return;
  s->polling = want;
  if (want == 0) {
    uv_poll_stop(s->poll);
    return;
  }
  uv_poll_start(s->poll, want, [](uv_poll_t* h, int status, int events) {
    Slot* sl = static_cast<Slot*>(h->data);
    sl->reader->OnEvent(sl->id, status, events);
  });
}

void BatchReader::Push(uint32_t id, int32_t off, int32_t len) {
  int32_t* e = out_ + 3 * count_++;
  e[0] = int32_t(id);
  e[1] = off;
  e[2] = len;
}

void BatchReader::OnEvent(uint32_t id, int status, int events) {
  Slot* s = slots_[id];
  // POLLERR: libuv has stopped the handle. Reading reports the socket's error (or the bytes
  // that came before it); the poll restarts below if the slot is still live. A writer waiting
  // is told too: its next send reports the error.
  if (status < 0) s->polling = 0;
  if (s->write_wanted && (status < 0 || (events & UV_WRITABLE))) {
    if (count_ == out_cap_) Deliver(false);
    if (released_ || s->fd < 0) return;
    // One entry per watchWrite(): the owner asks again if its queue is still not empty.
    s->write_wanted = false;
    Push(id, 0, kWritable);
  }
  if (status >= 0 && !(events & UV_READABLE)) {
    if (!released_ && s->fd >= 0) Update(id);
    return;
  }
  for (int n = 0; n < kReadsPerEvent; n++) {
    if (s->fd < 0 || s->done || s->paused) break;
    if (arena_len_ - arena_used_ < kReadSize || count_ == out_cap_) {
      // No room left for a full read: hand over what this turn has so far, but only before
      // this socket's first read (later ones wait for the next turn, the poll is level-triggered).
      if (n > 0) break;
      Deliver(false);
      if (released_ || s->fd < 0 || s->done || s->paused) break;
    }
    ssize_t r = read(s->fd, arena_ + arena_used_, kReadSize);
    if (r > 0) {
      Push(id, int32_t(arena_used_), int32_t(r));
      arena_used_ += size_t(r);
      if (size_t(r) < kReadSize) break;  // drained: skip the read that would say EAGAIN
      continue;
    }
    if (r < 0 && errno == EINTR) {
      n--;
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // EOF (0) or a hard error (-errno): delivered in order after the bytes before it.
    Push(id, 0, r == 0 ? 0 : -errno);
    s->done = true;
    break;
  }
  if (!released_ && s->fd >= 0) Update(id);
}

void BatchReader::Deliver(bool from_js) {
  if (count_ == 0 || delivering_ || released_) return;
  delivering_ = true;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Value n = Napi::Number::New(env, double(count_));
  if (from_js) {
    try {
      on_batch_.Call(Value(), {n});
    } catch (...) {
      count_ = 0;
      arena_used_ = 0;
      delivering_ = false;
      throw;
    }
  } else {
    // One MakeCallback for the whole turn: the microtask / nextTick checkpoint runs once.
    CallFromLoop(env, on_batch_, Value(), {n}, async_);
  }
  count_ = 0;
  arena_used_ = 0;
  delivering_ = false;
}

}  // namespace strait
