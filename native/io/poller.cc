#include "io/poller.h"

#include <errno.h>
#include <unistd.h>

namespace strait {

static constexpr int kEventsPerWake = 256;

static uint64_t KeyOf(int32_t id, uint32_t gen) { return (uint64_t(gen) << 32) | uint32_t(id); }

Poller::Poller(Env* env, napi_env napi) : env_(env), napi_(napi) {
  events_ = new epoll_event[kEventsPerWake];
  env_->Link(this);
  check_ = new uv_check_t;
  uv_check_init(env_->loop, check_);
  check_->data = this;
  prepare_ = new uv_prepare_t;
  uv_prepare_init(env_->loop, prepare_);
  prepare_->data = this;
  idle_ = new uv_idle_t;
  uv_idle_init(env_->loop, idle_);
  Start();
}

int Poller::Start() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return errno;  // EMFILE, say: the next Open() tries again
  poll_ = new uv_poll_t;
  int r = uv_poll_init(env_->loop, poll_, epfd_);
  if (r != 0) {
    delete poll_;  // never initialised, so no uv_close
    poll_ = nullptr;
    close(epfd_);
    epfd_ = -1;
    return -r;
  }
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* h, int, int) { static_cast<Poller*>(h->data)->OnWake(); });
  // Referenced only while a socket is watched, as a uv_poll per socket kept the loop alive.
  uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return 0;
}

Poller::~Poller() {
  Release();
  delete[] events_;
}

void Poller::Release() {
  if (released_) return;
  released_ = true;
  env_->Unlink(this);
  if (poll_) CloseAndFree(poll_);
  poll_ = nullptr;
  if (check_) CloseAndFree(check_);
  check_ = nullptr;
  if (prepare_) CloseAndFree(prepare_);
  prepare_ = nullptr;
  if (idle_) CloseAndFree(idle_);
  idle_ = nullptr;
  due_.clear();
  if (epfd_ >= 0) close(epfd_);
  epfd_ = -1;
  for (Entry& e : entries_) e.events = 0;
  watched_ = 0;
}

int32_t Poller::Open(int fd, PollTarget* target) {
  if (released_) return -EBADF;
  if (epfd_ < 0) {
    int err = Start();
    if (err != 0) return -err;
  }
  int32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = int32_t(entries_.size());
    entries_.emplace_back();
  }
  Entry& e = entries_[id];
  e.target = target;
  e.fd = fd;
  e.gen++;
  e.events = 0;
  return id;
}

int Poller::Want(int32_t id, int events) {
  if (id < 0 || size_t(id) >= entries_.size() || epfd_ < 0) return 0;
  Entry& e = entries_[id];
  if (e.target == nullptr) return 0;
  uint32_t want = ((events & UV_READABLE) ? uint32_t(EPOLLIN) : 0) | ((events & UV_WRITABLE) ? uint32_t(EPOLLOUT) : 0);
  if (want == e.events) return 0;
  // Not watched rather than watched for nothing: epoll reports EPOLLHUP and EPOLLERR whatever
  // the mask, and level-triggered that would wake every turn.
  if (want == 0) {
    Unwatch(e);
    return 0;
  }
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = KeyOf(id, e.gen);
  if (epoll_ctl(epfd_, e.events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, e.fd, &ev) != 0) return errno;
  if (e.events == 0 && watched_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  e.events = want;
  return 0;
}

void Poller::Unwatch(Entry& e) {
  if (e.events == 0) return;
  if (epfd_ >= 0) epoll_ctl(epfd_, EPOLL_CTL_DEL, e.fd, nullptr);
  e.events = 0;
  if (--watched_ == 0 && poll_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
}

void Poller::Close(int32_t id) {
  if (id < 0 || size_t(id) >= entries_.size()) return;
  Entry& e = entries_[id];
  if (e.target == nullptr) return;  // idempotent
  Unwatch(e);
  e.target = nullptr;
  e.fd = -1;
  if (waking_) freed_in_wake_.push_back(id);
  else free_.push_back(id);
}

void Poller::OnWake() {
  if (released_) return;
  int n;
  do {
    n = epoll_wait(epfd_, events_, kEventsPerWake, 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return;
  Napi::HandleScope scope(napi_);
  waking_ = true;
  for (int i = 0; i < n && !released_; i++) {
    uint64_t key = events_[i].data.u64;
    int32_t id = int32_t(uint32_t(key));
    if (id < 0 || size_t(id) >= entries_.size()) continue;
    Entry& e = entries_[id];
    // Closed (or closed and taken again) since epoll_wait returned: not this watch's event.
    if (e.target == nullptr || e.gen != uint32_t(key >> 32) || e.events == 0) continue;
    uint32_t ev = events_[i].events;
    PollTarget* t = e.target;
    if (ev & EPOLLERR) {
      // As libuv's uv_poll: the error ends the watch, and the target hears of it once.
      Unwatch(e);
      t->OnPollEvents(UV_EBADF, 0);
      continue;
    }
    uint32_t wanted = e.events;
    // A hang-up is for both directions asked for: the read sees EOF, the write the error.
    if (ev & EPOLLHUP) ev |= wanted;
    int out = ((ev & wanted & EPOLLIN) ? UV_READABLE : 0) | ((ev & wanted & EPOLLOUT) ? UV_WRITABLE : 0);
    if (out != 0) t->OnPollEvents(0, out);
  }
  waking_ = false;
  if (!freed_in_wake_.empty()) {
    free_.insert(free_.end(), freed_in_wake_.begin(), freed_in_wake_.end());
    freed_in_wake_.clear();
  }
}

void Poller::Defer(int32_t id) {
  if (released_ || id < 0 || size_t(id) >= entries_.size() || entries_[id].target == nullptr) return;
  due_.push_back(KeyOf(id, entries_[id].gen));
  if (deferring_) return;
  deferring_ = true;
  uv_check_start(check_, [](uv_check_t* h) { static_cast<Poller*>(h->data)->RunDeferred(); });
  uv_prepare_start(prepare_, [](uv_prepare_t* h) { static_cast<Poller*>(h->data)->RunDeferred(); });
  uv_idle_start(idle_, [](uv_idle_t*) {});
}

void Poller::RunDeferred() {
  uv_check_stop(check_);
  uv_prepare_stop(prepare_);
  uv_idle_stop(idle_);
  deferring_ = false;
  // What the calls below defer goes to due_ and the next phase, as a handle started during the
  // check phase waited for the prepare phase.
  running_.swap(due_);
  Napi::HandleScope scope(napi_);
  for (size_t i = 0; i < running_.size() && !released_; i++) {
    uint64_t key = running_[i];
    int32_t id = int32_t(uint32_t(key));
    // entries_ may grow during a call (a session opened from JavaScript): index it afresh.
    if (size_t(id) >= entries_.size()) continue;
    Entry& e = entries_[id];
    // Closed (or closed and taken again) since the Defer(): not that watch's call.
    if (e.target == nullptr || e.gen != uint32_t(key >> 32)) continue;
    e.target->OnDeferred();
  }
  running_.clear();
}

Poller* PollerOf(Env* env, napi_env napi) {
  if (!env->poller) env->poller = new Poller(env, napi);
  return env->poller;
}

}  // namespace strait
