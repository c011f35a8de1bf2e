// An epoll set of the addon's own for native objects that own a socket (the HTTP/2 sessions),
// which Node's loop polls as one fd. A uv_poll per socket costs nine system calls over a
// connection's life: libuv probes the fd with an epoll ADD and DEL and sets FIONBIO at init,
// every uv_poll_start does a DEL before its ADD or MOD, and the close a DEL or two. Here watching
// costs one epoll_ctl, a change of interest one, and the end one (a DEL before the close: the
// file description may outlive our fd, and its registration with it).
//
// Events reach the target as libuv's poll callback would: an error as status < 0 (the target
// stops being watched), a hang-up as readable and writable for what it asked.
#pragma once
#include <sys/epoll.h>
#include <uv.h>

#include <cstdint>
#include <vector>

#include "io/env.h"

namespace strait {

// Both calls come with a HandleScope open (one for the whole wake or deferred run: Node
// allocates each scope on the heap).
class PollTarget {
 public:
  virtual ~PollTarget() = default;
  // status 0 and UV_READABLE/UV_WRITABLE in `events`, or status < 0 (an error on the socket).
  virtual void OnPollEvents(int status, int events) = 0;
  // The call Poller::Defer asked for.
  virtual void OnDeferred() {}
};

class Poller : public LiveObject {
 public:
  Poller(Env* env, napi_env napi);
  ~Poller() override;
  void Abandon() override { Release(); }

  // A watch for `fd`, not registered until Want() asks for events; -errno when the poller
  // has no epoll set (one that could not be made is tried again here).
  int32_t Open(int fd, PollTarget* target);
  // Watches for `events` (UV_READABLE | UV_WRITABLE; 0 = not at all); 0 or an errno.
  int Want(int32_t id, int events);
  // Ends the watch (before its fd is closed); its events still queued in this wake are dropped,
  // and so is a Defer() not yet run.
  void Close(int32_t id);
  // Calls the watch's OnDeferred() once, in this loop turn's check phase or the next prepare
  // phase, whichever comes first (a session's flush after the JavaScript calls that queued
  // frames: one write for all of them). One set of loop handles serves every target; a set per
  // session cost three allocations, three inits and three uv_close per connection.
  void Defer(int32_t id);

 private:
  struct Entry {
    PollTarget* target = nullptr;
    int fd = -1;
    uint32_t gen = 0;  // bumped each time the entry is taken (epoll data carries it)
    uint32_t events = 0;  // EPOLLIN/EPOLLOUT registered; 0: not registered
  };
  // Makes the epoll set and its uv_poll; 0 or an errno.
  int Start();
  void OnWake();
  void Unwatch(Entry& e);
  void Release();
  void RunDeferred();

  Env* env_;
  napi_env napi_;
  int epfd_ = -1;
  uv_poll_t* poll_ = nullptr;
  epoll_event* events_ = nullptr;
  std::vector<Entry> entries_;
  std::vector<int32_t> free_;
  // Closed during a wake: reused only after it (with the generation in the epoll data, a queued
  // event of the old watch can never reach a new one either way).
  std::vector<int32_t> freed_in_wake_;
  bool waking_ = false;
  uint32_t watched_ = 0;
  bool released_ = false;
  // Defer(): the watches due (KeyOf: id and generation), and the handles that run them.
  // libuv runs only the check handles active when the check phase began, so a Defer() made in
  // the check phase (an HTTP/1 upstream's response delivered there) is also run by the prepare
  // phase, before the next poll; the idle handle keeps that poll from blocking meanwhile.
  std::vector<uint64_t> due_;
  std::vector<uint64_t> running_;
  bool deferring_ = false;
  uv_check_t* check_ = nullptr;
  uv_prepare_t* prepare_ = nullptr;
  uv_idle_t* idle_ = nullptr;
};

// The environment's poller, made on first use.
Poller* PollerOf(Env* env, napi_env napi);

}  // namespace strait
