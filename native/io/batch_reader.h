// Reads many sockets inside Node's loop and hands JavaScript every read of one loop turn in a
// single call: the reads land one after another in a shared arena Buffer, and a descriptor
// array says (slot, offset, length) for each. Replaces one stream callback per read (Node's
// onStreamRead, a MakeCallback with its microtask/nextTick checkpoint, a Buffer per read) on
// the HTTP/1 data path. Only reads: writes stay with the socket's owner (send(2) or Node).
//
// The sockets are registered with an epoll of the reader's own, which Node's loop polls as one
// fd: a socket costs one epoll_ctl to add and one to remove.
//
// A slot added for a net.Socket reads its own dup() of the socket's fd, so Node's handle keeps
// the original for writes, shutdown and close; the dup keeps the connection open until
// remove() (the owner calls it when its socket closes). A slot added with `own` reads the fd
// itself and closes it on remove(): its owner has no Node handle (a DirectSocket,
// src/io/direct_socket.ts), and asks the slot to report writability as well.
#pragma once
#include <napi.h>
#include <sys/epoll.h>
#include <uv.h>

#include <vector>

#include "io/env.h"
#include "io/js_util.h"

namespace strait {

// new BatchReader(arena: Buffer, out: Int32Array, onBatch(count)). out holds 3 ints per entry:
// slot, offset into arena, length (> 0 bytes, 0 EOF, kWritable the socket takes writes again,
// other < 0 -errno; the slot stops reading after EOF or an error). Methods: add(fd, own) -> slot,
// pause(slot), resume(slot), remove(slot), detach(slot) (as remove, the fd stays open),
// watchWrite(slot) (one kWritable entry when the socket can take bytes), flush(), rid().
// BatchReader.calls holds add, pause, resume, remove, detach and watchWrite as functions that
// take the reader's number (rid()) first: a prototype method finds its object through
// napi_unwrap, a property lookup in V8's runtime on every call.
static constexpr int32_t kWritable = INT32_MIN;

class BatchReader : public Napi::ObjectWrap<BatchReader>, public LiveObject {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit BatchReader(const Napi::CallbackInfo& info);
  ~BatchReader() override;
  void Abandon() override;

 private:
  struct Slot {
    uint32_t id = 0;
    uint32_t gen = 0;  // bumped each time the slot is taken (epoll data carries it)
    int fd = -1;  // our dup, or the owner's fd; -1: free
    uint32_t events = 0;  // the EPOLLIN / EPOLLOUT mask it is registered with; 0: not registered
    bool paused = false;
    bool write_wanted = false;  // one kWritable entry wanted (cleared when it is pushed)
    bool done = false;  // EOF or error delivered: never read again
    bool owned = false;  // the owner's fd itself (add with `own`), not a dup made here
    // This slot's entries in the batch numbered batch_seq: where the first is in out_ and how
    // many, so that Drop clears them without a scan of the whole batch. One OnEvent pushes them
    // one after another; a second wake-up before the batch is handed out (libuv polls again when
    // its event array was full) may add more further on.
    uint32_t batch_seq = 0;
    uint32_t batch_first = 0;
    uint32_t batch_n = 0;
  };

  Napi::Value Add(const Args& info);
  Napi::Value Pause(const Args& info);
  Napi::Value Resume(const Args& info);
  Napi::Value Remove(const Args& info);
  Napi::Value Detach(const Args& info);
  Napi::Value WatchWrite(const Args& info);
  // The same method through the prototype.
  template <Napi::Value (BatchReader::*M)(const Args&)>
  Napi::Value Via(const Napi::CallbackInfo& info) {
    return (this->*M)(Args(info));
  }
  // The method for BatchReader.calls: the reader named by the first argument (its rid()).
  template <Napi::Value (BatchReader::*M)(const Args&), size_t N>
  static napi_value Numbered(napi_env env, napi_callback_info cb);
  static BatchReader* ByNumber(double rid);
  Napi::Value Rid(const Napi::CallbackInfo& info);
  // Stops the slot's poll and frees its number; closes the fd unless `keep_fd`. `exclusive`:
  // the owner says no other descriptor shares the fd's file description (see Remove).
  void Drop(int32_t id, bool keep_fd, bool exclusive = false);
  // Events for a slot freed since they were queued, or one taken by another socket (tests: a
  // registration left behind by a close keeps reporting).
  Napi::Value StaleEvents(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);

  Slot* SlotArg(const Args& info, const char* fn);
  // Registers the slot's wanted events with the epoll; 0 or the errno of epoll_ctl.
  int Update(uint32_t id);
  // Takes a registered slot out of the epoll (the loop is let go when none is left).
  void Unwatch(Slot* s);
  // Unwatch's bookkeeping alone, for a registration the fd's close removes.
  void Forget(Slot* s);
  void OnWake();
  void OnEvent(uint32_t id, bool readable, bool writable);
  void Push(Slot* s, int32_t off, int32_t len);
  // Hands the pending entries to JavaScript; `from_js`: inside a JS call (flush()).
  void Deliver(bool from_js);
  void Release();

  strait::Env* env_;
  std::vector<Slot*> slots_;  // pointers stay put while the vector grows (uv data points at them)
  std::vector<uint32_t> free_;
  std::vector<uint32_t> freed_in_batch_;  // reused only after the batch: stale entries must not match a new owner
  uint8_t* arena_ = nullptr;
  size_t arena_len_ = 0;
  size_t arena_used_ = 0;
  int32_t* out_ = nullptr;
  size_t out_cap_ = 0;  // entries
  size_t count_ = 0;
  // The number of the batch being filled (never 0): bumped whenever count_ goes back to 0.
  uint32_t batch_seq_ = 1;
  bool delivering_ = false;
  // removals (the constructor's fourth argument): [0] 1 while a batch is handed out (its ticks
  // included), [1] how many slots JavaScript left there to be removed at the batch's end,
  // [2...] those, each slot * 2 + exclusive. A connection closed while a batch is handed out (its
  // last response sent, the peer's FIN read) is removed with the batch's other closes here
  // instead of by a call of its own (~250 instructions a connection).
  int32_t* removals_ = nullptr;
  size_t removals_cap_ = 0;
  Napi::Reference<Napi::Int32Array> removals_ref_;
  void DrainRemovals();
  bool released_ = false;
  uv_check_t* check_ = nullptr;
  int epfd_ = -1;
  uv_poll_t* ep_poll_ = nullptr;  // Node's loop watching epfd_
  epoll_event* events_ = nullptr;
  size_t watched_ = 0;  // slots registered with epfd_: the loop stays alive while any is
  double stale_events_ = 0;
  Napi::Reference<Napi::Buffer<uint8_t>> arena_ref_;
  Napi::Reference<Napi::Int32Array> out_ref_;
  Napi::FunctionReference on_batch_;
  Napi::AsyncContext async_;
  // This reader's slot in the thread's table of readers, and the number calls name it by: the
  // slot, and the slot's generation above bit 20 (a number never names a later reader).
  uint32_t table_slot_ = 0;
  double rid_ = 0;
};

}  // namespace strait
