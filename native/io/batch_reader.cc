#include "io/batch_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>

#include "io/js_util.h"
#include "io/numbered.h"

namespace strait {

// The most one read() asks for: Node's own read size, and what one HTTP/1 head or a body chunk
// needs. One read per socket per turn: JavaScript sees each read before the next, so a paused
// connection (a full response queue) never has more than one read beyond its limit, as with
// Node's stream reads; more waiting is read on the next turn (the poll is level-triggered).
static constexpr size_t kReadSize = 64 * 1024;
static constexpr int kReadsPerEvent = 1;
// Events taken from the reader's epoll per wake-up; more wait for the next (level-triggered).
static constexpr int kEventsPerWake = 256;

// epoll data: the slot and its generation, so an event of a slot since freed (and maybe taken
// by another socket) in the same wake-up is told apart and dropped.
static uint64_t EventKey(uint32_t id, uint32_t gen) { return (uint64_t(gen) << 32) | id; }

namespace {
// This thread's readers by number (io/numbered.h).
thread_local NumberTable<BatchReader> readers;
}  // namespace

Napi::Function BatchReader::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "BatchReader",
                     {InstanceMethod("add", &BatchReader::Via<&BatchReader::Add>), InstanceMethod("pause", &BatchReader::Via<&BatchReader::Pause>),
                      InstanceMethod("resume", &BatchReader::Via<&BatchReader::Resume>), InstanceMethod("remove", &BatchReader::Via<&BatchReader::Remove>),
                      InstanceMethod("detach", &BatchReader::Via<&BatchReader::Detach>), InstanceMethod("watchWrite", &BatchReader::Via<&BatchReader::WatchWrite>),
                      InstanceMethod("flush", &BatchReader::Flush), InstanceMethod("staleEvents", &BatchReader::StaleEvents),
                      InstanceMethod("rid", &BatchReader::Rid)});
  Napi::Object calls = Napi::Object::New(env);
  auto add = [&](const char* name, napi_callback cb) { SetCall(env, calls, name, cb); };
  add("add", &Numbered<&BatchReader::Add, 2>);
  add("pause", &Numbered<&BatchReader::Pause, 1>);
  add("resume", &Numbered<&BatchReader::Resume, 1>);
  add("remove", &Numbered<&BatchReader::Remove, 2>);
  add("detach", &Numbered<&BatchReader::Detach, 1>);
  add("watchWrite", &Numbered<&BatchReader::WatchWrite, 1>);
  ctor.Set("calls", calls);
  return ctor;
}

BatchReader* BatchReader::ByNumber(double rid) { return readers.Find(rid); }

template <Napi::Value (BatchReader::*M)(const Args&), size_t N>
napi_value BatchReader::Numbered(napi_env env, napi_callback_info cb) {
  return CallNumbered<BatchReader, M, N>(env, cb, &ByNumber, "BatchReader.calls", "reader");
}

Napi::Value BatchReader::Rid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rid_); }

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
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array || info[3].As<Napi::TypedArray>().ElementLength() < 3)
      throw Napi::TypeError::New(env, "BatchReader: removals must be an Int32Array of 3 slots or more");
    auto rm = info[3].As<Napi::Int32Array>();
    removals_ref_ = Napi::Persistent(rm);
    removals_ = rm.Data();
    removals_cap_ = rm.ElementLength() - 2;
    removals_[0] = removals_[1] = 0;
  }
  // The sockets are watched by an epoll of the reader's own, which Node's loop polls as one fd:
  // adding a socket is one epoll_ctl, where a uv_poll per socket costs four system calls to
  // start (libuv's probe ADD and DEL, FIONBIO, a DEL) and two to stop.
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) ThrowErrno(env, "BatchReader: epoll_create1", errno);
  events_ = new epoll_event[kEventsPerWake];
  ep_poll_ = new uv_poll_t;
  int r = uv_poll_init(env_->loop, ep_poll_, epfd_);
  if (r != 0) {
    delete ep_poll_;
    ep_poll_ = nullptr;
    close(epfd_);
    epfd_ = -1;
    ThrowErrno(env, "BatchReader: uv_poll_init", -r);
  }
  ep_poll_->data = this;
  uv_poll_start(ep_poll_, UV_READABLE, [](uv_poll_t* h, int, int) { static_cast<BatchReader*>(h->data)->OnWake(); });
  // Referenced only while a socket is watched, as a poll per socket kept the loop alive.
  uv_unref(reinterpret_cast<uv_handle_t*>(ep_poll_));
  check_ = new uv_check_t;
  uv_check_init(env_->loop, check_);
  check_->data = this;
  // Runs right after the poll phase of every turn, so the reads of one turn leave together.
  // Unreferenced: the polls keep the loop alive while a socket is open, the check need not.
  uv_check_start(check_, [](uv_check_t* h) { static_cast<BatchReader*>(h->data)->Deliver(false); });
  uv_unref(reinterpret_cast<uv_handle_t*>(check_));
  env_->Link(this);
  // Last: nothing above may throw once the slot is taken (the destructor gives it back).
  rid_ = readers.Take(this, &table_slot_);
}

BatchReader::~BatchReader() {
  readers.Release(table_slot_, this);
  if (!released_) Release();
  for (Slot* s : slots_) delete s;
  delete[] events_;
}

void BatchReader::Abandon() { Release(); }

void BatchReader::Release() {
  if (released_) return;
  released_ = true;
  env_->Unlink(this);
  for (Slot* s : slots_) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    s->events = 0;
  }
  watched_ = 0;
  if (ep_poll_) CloseAndFree(ep_poll_);
  ep_poll_ = nullptr;
  if (epfd_ >= 0) close(epfd_);
  epfd_ = -1;
  if (check_) CloseAndFree(check_);
  check_ = nullptr;
  count_ = 0;
  if (++batch_seq_ == 0) batch_seq_ = 1;
}

BatchReader::Slot* BatchReader::SlotArg(const Args& info, const char* fn) {
  int32_t id = ArgInt(info, 0, fn, "slot", 0, INT32_MAX);
  if (size_t(id) >= slots_.size() || slots_[id]->fd < 0) throw Napi::RangeError::New(info.Env(), std::string(fn) + ": no such slot");
  return slots_[id];
}

Napi::Value BatchReader::Add(const Args& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "BatchReader.add", "fd", 0, INT32_MAX);
  bool own = info.Length() > 1 && ArgBool(info, 1);
  if (released_) throw Napi::Error::New(env, "BatchReader.add: reader released");
  // A net.Socket's slot reads its own descriptor for the same socket, which remove() closes:
  // Node's handle keeps the original for writes, shutdown and close.
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
  uint32_t gen = s->gen + 1;
  *s = Slot();
  s->id = id;
  s->gen = gen;
  // Non-blocking already: accept4 and socket() here pass SOCK_NONBLOCK, and a dup shares the
  // file description of Node's fd, which libuv made non-blocking.
  s->fd = dfd;
  s->owned = own;
  int err = Update(id);
  if (err != 0) {
    s->fd = -1;
    if (!own) close(dfd);  // an owned fd stays the caller's when add() throws
    free_.push_back(id);
    ThrowErrno(env, "BatchReader.add: epoll_ctl", err);
  }
  return Napi::Number::New(env, id);
}

Napi::Value BatchReader::Pause(const Args& info) {
  Slot* s = SlotArg(info, "BatchReader.pause");
  s->paused = true;
  Update(s->id);
  return info.Env().Undefined();
}

Napi::Value BatchReader::Resume(const Args& info) {
  Slot* s = SlotArg(info, "BatchReader.resume");
  s->paused = false;
  Update(s->id);
  return info.Env().Undefined();
}

Napi::Value BatchReader::Remove(const Args& info) {
  Drop(ArgInt(info, 0, "BatchReader.remove", "slot", 0, INT32_MAX), false, info.Length() > 1 && ArgBool(info, 1));
  return info.Env().Undefined();
}

Napi::Value BatchReader::StaleEvents(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), stale_events_); }

Napi::Value BatchReader::Detach(const Args& info) {
  Drop(ArgInt(info, 0, "BatchReader.detach", "slot", 0, INT32_MAX), true);
  return info.Env().Undefined();
}

Napi::Value BatchReader::WatchWrite(const Args& info) {
  Slot* s = SlotArg(info, "BatchReader.watchWrite");
  s->write_wanted = true;
  Update(s->id);
  return info.Env().Undefined();
}

void BatchReader::Drop(int32_t id, bool keep_fd, bool exclusive) {
  if (size_t(id) >= slots_.size() || slots_[id]->fd < 0) return;  // idempotent
  Slot* s = slots_[id];
  // Out of the epoll before the close: a registration lives as long as its file description,
  // which another descriptor (Node's, a hot restart's dup) may keep open. An fd of its own that
  // no other descriptor shares leaves the epoll with its close, as nginx lets it (NGX_CLOSE_EVENT):
  // one epoll_ctl less per connection (a connection per request paid it on every request).
  if (s->events != 0) {
    if (!keep_fd && exclusive && s->owned) Forget(s);
    else Unwatch(s);
  }
  if (!keep_fd) close(s->fd);
  s->fd = -1;
  // Entries of this slot not yet handed out (or being handed out) must not reach whoever
  // takes the slot number next. From the first of them until all are found: a scan of the
  // whole batch was ~350 instructions a connection closed while a large batch was handed out.
  if (s->batch_seq == batch_seq_) {
    uint32_t left = s->batch_n;
    for (size_t i = s->batch_first; i < count_ && left > 0; i++)
      if (out_[3 * i] == id) {
        out_[3 * i] = -1;
        left--;
      }
  }
  s->batch_seq = 0;
  free_.push_back(uint32_t(id));
}

void BatchReader::DrainRemovals() {
  if (!removals_) return;
  removals_[0] = 0;
  // The count as JavaScript left it, bounded by the array whatever it says.
  const size_t k = std::min(size_t(std::max(removals_[1], 0)), removals_cap_);
  removals_[1] = 0;
  for (size_t i = 0; i < k; i++) {
    const int32_t v = removals_[2 + i];
    if (v >= 0) Drop(v >> 1, false, (v & 1) != 0);
  }
}

Napi::Value BatchReader::Flush(const Napi::CallbackInfo& info) {
  Deliver(true);
  return info.Env().Undefined();
}

void BatchReader::Unwatch(Slot* s) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, s->fd, nullptr);
  Forget(s);
}

void BatchReader::Forget(Slot* s) {
  s->events = 0;
  if (--watched_ == 0 && ep_poll_) uv_unref(reinterpret_cast<uv_handle_t*>(ep_poll_));
}

int BatchReader::Update(uint32_t id) {
  Slot* s = slots_[id];
  if (s->fd < 0 || epfd_ < 0) return 0;
  uint32_t want = (!s->done && !s->paused ? uint32_t(EPOLLIN) : 0) | (s->write_wanted ? uint32_t(EPOLLOUT) : 0);
  if (want == s->events) return 0;
  // Not watched at all rather than watched for nothing: epoll reports EPOLLHUP and EPOLLERR
  // whatever the mask, and level-triggered that would wake every turn.
  if (want == 0) {
    Unwatch(s);
    return 0;
  }
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = EventKey(id, s->gen);
  if (epoll_ctl(epfd_, s->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, s->fd, &ev) != 0) return errno;
  if (s->events == 0 && watched_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(ep_poll_));
  s->events = want;
  return 0;
}

void BatchReader::OnWake() {
  if (released_) return;
  int n;
  do {
    n = epoll_wait(epfd_, events_, kEventsPerWake, 0);
  } while (n < 0 && errno == EINTR);
  for (int i = 0; i < n && !released_; i++) {
    uint64_t key = events_[i].data.u64;
    uint32_t id = uint32_t(key);
    if (id >= slots_.size()) continue;
    Slot* s = slots_[id];
    if (s->fd < 0 || s->gen != uint32_t(key >> 32)) {
      stale_events_++;
      continue;
    }
    uint32_t e = events_[i].events;
    // A hang-up or an error is for both: the read sees EOF or the error, the writer's next send.
    bool bad = (e & (EPOLLERR | EPOLLHUP)) != 0;
    OnEvent(id, bad || (e & EPOLLIN), bad || (e & EPOLLOUT));
  }
}

void BatchReader::Push(Slot* s, int32_t off, int32_t len) {
  if (s->batch_seq != batch_seq_) {
    s->batch_seq = batch_seq_;
    s->batch_first = uint32_t(count_);
    s->batch_n = 0;
  }
  s->batch_n++;
  int32_t* e = out_ + 3 * count_++;
  e[0] = int32_t(s->id);
  e[1] = off;
  e[2] = len;
}

void BatchReader::OnEvent(uint32_t id, bool readable, bool writable) {
  Slot* s = slots_[id];
  if (s->write_wanted && writable) {
    if (count_ == out_cap_) Deliver(false);
    if (released_ || s->fd < 0) return;
    // One entry per watchWrite(): the owner asks again if its queue is still not empty.
    s->write_wanted = false;
    Push(s, 0, kWritable);
  }
  if (!readable) {
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
      Push(s, int32_t(arena_used_), int32_t(r));
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
    Push(s, 0, r == 0 ? 0 : -errno);
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
  if (removals_) removals_[0] = 1;
  if (from_js) {
    try {
      on_batch_.Call(Value(), {n});
    } catch (...) {
      DrainRemovals();
      count_ = 0;
      if (++batch_seq_ == 0) batch_seq_ = 1;
      arena_used_ = 0;
      delivering_ = false;
      throw;
    }
  } else {
    // One MakeCallback for the whole turn: the microtask / nextTick checkpoint runs once.
    CallFromLoop(env, on_batch_, Value(), {n}, async_);
  }
  DrainRemovals();
  count_ = 0;
  if (++batch_seq_ == 0) batch_seq_ = 1;
  arena_used_ = 0;
  delivering_ = false;
}

}  // namespace strait
