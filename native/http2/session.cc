#include "http2/session.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "http1/head.h"
#include "io/js_util.h"
#include "io/numbered.h"

namespace strait {
namespace http2 {

static constexpr size_t kChunk = BufferPool::kChunkSize;
static constexpr int kMaxWriteIov = 64 < IOV_MAX ? 64 : IOV_MAX;
// Reads per poll wake-up: one busy connection must not starve the others sharing the loop.
static constexpr int kMaxReads = 16;
// Stream ends held back for the next batch at most; past it they go out with this flush (a
// client that sends nothing more must not keep a growing list of finished streams around).
static constexpr size_t kMaxDeferred = 64;
// Finished streams kept for reuse per thread (their header and body strings keep their buffers):
// an upstream connection that carries a few hundred streams at a time, or a burst of clients.
static constexpr size_t kMaxSpareStreams = 512;
// A kept stream's buffer that grew past this (a large header list, a body nghttp2 had not taken)
// is let go: what a burst leaves behind stays at a few MiB per thread at worst.
static constexpr size_t kMaxSpareStreamBytes = 4 * 1024;
// Id tables and buffer sets of finished sessions kept per thread: the connections a burst of new
// clients sets up at once (as the frame buffers' class above).
static constexpr size_t kMaxSpareSessions = 64;
// A session's buffer that grew past this (a large batch or header list) is not kept.
static constexpr size_t kMaxSpareBytes = 16 * 1024;

// ---- nghttp2's memory: a per-thread free list by size class ----
//
// nghttp2 allocates and frees small blocks all the time (a stream, an outbound item, a header
// field's buffer, per request), and glibc's malloc showed ~9% of a gRPC profile (with
// malloc_consolidate and unlink_chunk from mixing them with large blocks). Blocks up to 4 KiB
// come from power-of-two classes kept on per-thread lists for reuse, and so does each session's
// outbound frame buffer (16 KiB + 10 B, NGHTTP2_FRAMEBUF_CHUNKLEN), from a class of its own:
// taken from and given back to glibc once per connection, it made the free that triggers
// malloc_consolidate. Larger blocks go to malloc. Sessions live and die on their environment's
// thread, so a block is freed on the thread that took it and the lists need no lock.
namespace {

constexpr size_t kHdr = 16;  // keeps the user pointer 16-byte aligned, as malloc's
constexpr int kFrameClass = 8;  // the frame buffer's
constexpr int kClasses = 9;  // 32 B .. 4 KiB including the header, then the frame buffer's
constexpr uint32_t kLarge = 0xff;
// Blocks kept per class: 1024, or 256 KiB of the larger classes; and 64 frame buffers (1.1 MiB),
// the connections a burst of new clients sets up at once. Bounds what a burst leaves behind per
// thread to ~2.6 MiB.
constexpr uint32_t KeepOf(uint32_t c) {
  return c == kFrameClass ? 64u : (256u * 1024u >> (c + 5)) < 1024u ? (256u * 1024u >> (c + 5)) : 1024u;
}

struct FreeLists {
  void* head[kClasses] = {};
  uint32_t count[kClasses] = {};
  bool dead = false;  // thread exit ran the destructor: blocks freed later go straight to free()
  ~FreeLists() {
    dead = true;
    for (int c = 0; c < kClasses; c++) {
      while (head[c]) {
        void* b = head[c];
        head[c] = *static_cast<void**>(b);
        free(b);
      }
    }
  }
};
thread_local FreeLists tl_free;

inline size_t ClassSize(int c) { return c == kFrameClass ? size_t(17) * 1024 : size_t(32) << c; }

inline int ClassOf(size_t total) {
  // The smallest c with 32 << c >= total: from the bit length of total - 1 (total > kHdr).
  const int bits = 64 - __builtin_clzll(static_cast<unsigned long long>(total - 1));
  const int c = bits <= 5 ? 0 : bits - 5;
  if (c < kFrameClass) return c;
  // Only blocks of about the frame buffer's size: a 5 KiB block in it would waste 12 KiB.
  return total > size_t(16) * 1024 && total <= ClassSize(kFrameClass) ? kFrameClass : kClasses;  // kClasses: malloc's
}

// `u` is the creating thread's FreeLists (the session's nghttp2_mem carries it): reaching a
// thread_local from a shared object costs a __tls_get_addr call, ~1% of a gRPC request's
// instructions at ~50 blocks per request.
void* MemMalloc(size_t size, void* u) {
  if (size > SIZE_MAX - kHdr) return nullptr;
  FreeLists& fl = *static_cast<FreeLists*>(u);
  int c = ClassOf(size + kHdr);
  uint8_t* b;
  if (c < kClasses && !fl.dead && fl.head[c]) {
    b = static_cast<uint8_t*>(fl.head[c]);
    fl.head[c] = *reinterpret_cast<void**>(b);
    fl.count[c]--;
    // The next pop reads the new head's link; fetching it now hides the miss that profiles
    // showed on that load (blocks freed a request ago are often out of cache).
    __builtin_prefetch(fl.head[c]);
  } else {
    b = static_cast<uint8_t*>(malloc(c < kClasses ? ClassSize(c) : size + kHdr));
    if (!b) return nullptr;
  }
  *reinterpret_cast<uint32_t*>(b) = c < kClasses ? static_cast<uint32_t>(c) : kLarge;
  return b + kHdr;
}

void MemFree(void* p, void* u) {
  if (!p) return;
  FreeLists& fl = *static_cast<FreeLists*>(u);
  uint8_t* b = static_cast<uint8_t*>(p) - kHdr;
  uint32_t c = *reinterpret_cast<uint32_t*>(b);
  if (c == kLarge || fl.dead || fl.count[c] >= KeepOf(c)) {
    free(b);
    return;
  }
  *reinterpret_cast<void**>(b) = fl.head[c];
  fl.head[c] = b;
  fl.count[c]++;
}

void* MemCalloc(size_t n, size_t size, void* u) {
  if (size && n > SIZE_MAX / size) return nullptr;
  void* p = MemMalloc(n * size, u);
  if (p) memset(p, 0, n * size);
  return p;
}

void* MemRealloc(void* p, size_t size, void* u) {
  if (!p) return MemMalloc(size, u);
  if (size == 0) {
    MemFree(p, u);
    return nullptr;
  }
  if (size > SIZE_MAX - kHdr) return nullptr;
  uint8_t* b = static_cast<uint8_t*>(p) - kHdr;
  uint32_t c = *reinterpret_cast<uint32_t*>(b);
  if (c == kLarge) {
    if (ClassOf(size + kHdr) == kClasses) {
      uint8_t* nb = static_cast<uint8_t*>(realloc(b, size + kHdr));
      return nb ? nb + kHdr : nullptr;
    }
    // Into a class: smaller, or (a block between 4 and 16 KiB) the frame buffer's, larger.
    void* q = MemMalloc(size, u);
    if (!q) return nullptr;
    memcpy(q, p, std::min(size, malloc_usable_size(b) - kHdr));
    free(b);
    return q;
  }
  size_t cap = ClassSize(static_cast<int>(c)) - kHdr;
  if (size <= cap) return p;
  void* q = MemMalloc(size, u);
  if (!q) return nullptr;
  memcpy(q, p, cap);
  MemFree(p, u);
  return q;
}

// nghttp2 copies it into the session, so each session keeps its own thread's lists. A session
// dies on its thread before the thread ends (an environment's cleanup releases its sessions).
nghttp2_mem ThreadMem() { return {&tl_free, MemMalloc, MemFree, MemCalloc, MemRealloc}; }

// nghttp2 copies both into each session it makes: one pair per thread, not two mallocs and two
// frees a connection.
struct SessionSetup {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_option* opt = nullptr;
  ~SessionSetup() {
    if (cbs) nghttp2_session_callbacks_del(cbs);
    if (opt) nghttp2_option_del(opt);
  }
};
thread_local SessionSetup tl_setup;

}  // namespace

// What finished sessions of a thread leave for new ones: streams, id tables and buffer sets. A
// session used to start with empty buffers, its 2 KiB id table inside the object (a block large
// enough that its malloc ran malloc_consolidate) and no spare streams, and to give all of it back
// when it ended: ~20 of the ~45 mallocs a one-request h2c connection made.
struct Spares {
  // The last header blocks that passed the RFC 9113 §8 field checks (CheckBlock): requests (a
  // server's), responses and response trailers (a client's). The checks depend on a block's
  // bytes and the state before it alone, so every session of the thread shares them.
  BlockMemo memo_request, memo_response, memo_trailers;
  std::vector<Session::Stream*> streams;
  std::vector<Session::Stream**> id_tables;
  std::vector<Session::Scratch*> scratch;
  bool dead = false;  // thread exit ran the destructor: what sessions give back later is freed
  ~Spares() {
    dead = true;
    for (Session::Stream* s : streams) delete s;
    for (Session::Stream** t : id_tables) delete[] t;
    for (Session::Scratch* x : scratch) delete x;
    streams.clear();
    id_tables.clear();
    scratch.clear();
  }
};
namespace {
thread_local Spares tl_spares;

// Empties `v` for the next session, letting go of its buffer when it grew large.
template <typename T>
void KeepSmall(T& v) {
  if (v.capacity() * sizeof(v[0]) > kMaxSpareBytes) T().swap(v);
  else v.clear();
}
}  // namespace

// The trampolines: nghttp2 hands back the Session as user_data.
struct Callbacks {
  static int BeginHeaders(nghttp2_session*, const nghttp2_frame* f, void* u) { return static_cast<Session*>(u)->OnBeginHeaders(f); }
  static int Header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl, uint8_t flags, void* u) {
    return static_cast<Session*>(u)->OnHeader(f, n, nl, v, vl, flags);
  }
  static int FrameRecv(nghttp2_session*, const nghttp2_frame* f, void* u) { return static_cast<Session*>(u)->OnFrameRecv(f); }
  static int DataChunk(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* d, size_t len, void* u) {
    return static_cast<Session*>(u)->OnDataChunk(flags, id, d, len);
  }
  static int StreamClose(nghttp2_session*, int32_t id, uint32_t code, void* u) { return static_cast<Session*>(u)->OnStreamClose(id, code); }
  static int FrameSend(nghttp2_session*, const nghttp2_frame* f, void* u) { return static_cast<Session*>(u)->OnFrameSend(f); }
  static int FrameNotSend(nghttp2_session*, const nghttp2_frame* f, int err, void* u) { return static_cast<Session*>(u)->OnFrameNotSend(f, err); }
  static ssize_t Read(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags, nghttp2_data_source* src, void* u) {
    return static_cast<Session*>(u)->ReadData(id, buf, len, flags, static_cast<Session::Stream*>(src->ptr));
  }
};

namespace {
// This thread's sessions by number (io/numbered.h).
thread_local NumberTable<Session> sessions;
}  // namespace

Napi::Function Session::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "H2Session",
                     {InstanceMethod("respond", &Session::Via<&Session::Respond>), InstanceMethod("request", &Session::Via<&Session::Request>),
                      InstanceMethod("requestRuns", &Session::Via<&Session::RequestRuns>), InstanceMethod("respondRuns", &Session::Via<&Session::RespondRuns>),
                      InstanceMethod("data", &Session::Via<&Session::Data>),
                      InstanceMethod("trailers", &Session::Via<&Session::Trailers>), InstanceMethod("rst", &Session::Via<&Session::Rst>),
                      InstanceMethod("consume", &Session::Via<&Session::Consume>),
                      InstanceMethod("close", &Session::Close), InstanceMethod("goaway", &Session::Goaway),
                      InstanceMethod("destroy", &Session::Destroy), InstanceMethod("stats", &Session::Stats),
                      InstanceMethod("sid", &Session::Sid), InstanceMethod("respondSpans", &Session::Via<&Session::RespondSpans>)});
  Napi::Object calls = Napi::Object::New(env);
  auto add = [&](const char* name, napi_callback cb) { SetCall(env, calls, name, cb); };
  add("respond", &Numbered<&Session::Respond>);
  add("respondRuns", &Numbered<&Session::RespondRuns, 8>);
  add("respondHeldArgs", &Session::RespondHeldArgs);
  add("respondSpans", &Numbered<&Session::RespondSpans>);
  add("respondSpansTables", &Numbered<&Session::RespondSpansTables>);
  add("respondH1Head", &Numbered<&Session::RespondH1Head>);
  add("respondH1HeadArgs", &Session::RespondH1HeadArgs);
  add("request", &Numbered<&Session::Request>);
  add("requestRuns", &Numbered<&Session::RequestRuns>);
  add("requestHeld", &Numbered<&Session::RequestHeld>);
  add("requestHeldArgs", &Session::RequestHeldArgs);
  add("data", &Numbered<&Session::Data, 3>);
  add("dataArgs", &Session::DataArgs);
  add("trailers", &Numbered<&Session::Trailers, 5>);
  add("trailersArgs", &Session::TrailersArgs);
  add("rst", &Numbered<&Session::Rst>);
  add("consume", &Numbered<&Session::Consume>);
  ctor.Set("calls", calls);
  return ctor;
}

// Keeps the array a session was given alive while the session uses it. JavaScript gives every
// session the same events array and field table: the environment holds the first one it sees
// once (a reference per session was a malloc and a global handle per connection), and a
// session given another gets its own reference.
template <typename T>
static void HoldArray(Napi::Env env, Napi::Reference<Napi::Value>& shared, T arr, Napi::Reference<T>& own) {
  if (shared.IsEmpty()) {
    shared = Napi::Persistent(Napi::Value(arr));
    return;
  }
  bool same = false;
  if (napi_strict_equals(env, shared.Value(), arr, &same) == napi_ok && same) return;
  own = Napi::Persistent(arr);
}

// An optional typed array option `name` of `type` with `min` elements or more, into `out`; false
// when absent.
template <typename T>
static bool TypedOption(Napi::Env env, Napi::Object o, const char* name, napi_typedarray_type type, size_t min, const char* what, Napi::TypedArrayOf<T>* out) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type || v.As<Napi::TypedArray>().ElementLength() < min)
    throw Napi::TypeError::New(env, std::string("H2Session: ") + name + " must be " + what);
  *out = v.As<Napi::TypedArrayOf<T>>();
  return true;
}

Session::Session(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<Session>(info), env_(GetEnv(info.Env())), async_(info.Env(), "StraitH2Session") {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "H2Session", "fd", 0, INT32_MAX);
  uint32_t max_streams = 0;
  uint32_t window = 0;
  std::string initial;
  // The session owns the fd from the call on, bad options included: the caller never has to
  // guess whether to close it.
  try {
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "H2Session: opts must be an object");
    Napi::Object o = info[1].As<Napi::Object>();
    max_streams = static_cast<uint32_t>(OptNumber(o, "maxConcurrentStreams", "H2Session", 1, INT32_MAX));
    window = static_cast<uint32_t>(OptNumber(o, "initialWindowSize", "H2Session", 1, INT32_MAX));
    max_header_list_size_ = static_cast<uint32_t>(OptNumber(o, "maxHeaderListSize", "H2Session", 64, INT32_MAX));
    max_header_pairs_ = static_cast<uint32_t>(OptNumber(o, "maxHeaderPairs", "H2Session", 1, INT32_MAX));
    high_water_mark_ = static_cast<size_t>(OptNumber(o, "highWaterMark", "H2Session", 1, INT32_MAX));
    stream_high_water_ = static_cast<size_t>(OptNumber(o, "streamHighWaterMark", "H2Session", 1, INT32_MAX));
    idle_timeout_ms_ = static_cast<uint64_t>(OptNumber(o, "idleTimeoutMs", "H2Session", 0, INT32_MAX));
    Napi::Value cv = o.Get("client");
    client_ = cv.IsBoolean() && cv.As<Napi::Boolean>().Value();
    if (!info[2].IsNull() && !info[2].IsUndefined() && !info[2].IsBuffer()) throw Napi::TypeError::New(env, "H2Session: initial must be a Buffer or null");
    on_events_ = Napi::Persistent(ArgFunction(info, 3, "H2Session", "onEvents"));
    Napi::Uint32Array ev;
    if (TypedOption(env, o, "events", napi_uint32_array, 3, "a Uint32Array of 3 slots or more", &ev)) {
      HoldArray(env, env_->h2_events, ev, ev_ref_);
      ev_mem_ = ev.Data();
      ev_cap_ = ev.ElementLength() - ev.ElementLength() % 3;
    }
    Napi::Int32Array ft;
    if (TypedOption(env, o, "fields", napi_int32_array, 1, "an Int32Array of 1 entry or more", &ft)) {
      HoldArray(env, env_->h2_fields, ft, ftab_ref_);
      ftab_mem_ = ft.Data();
      ftab_cap_ = ft.ElementLength();
    }
    if (info[2].IsBuffer()) {
      Napi::Buffer<char> b = info[2].As<Napi::Buffer<char>>();
      initial.assign(b.Data(), b.Length());
    }
  } catch (...) {
    close(fd);
    throw;
  }

  // Release() closes it on any failure below.
  fd_ = fd;
  spares_ = &tl_spares;
  if (!spares_->id_tables.empty()) {
    by_id_ = spares_->id_tables.back();
    spares_->id_tables.pop_back();
  } else {
    by_id_ = new Stream*[kIdSlots]();
  }
  if (!spares_->scratch.empty()) {
    scratch_box_ = spares_->scratch.back();
    spares_->scratch.pop_back();
    SwapScratch(*scratch_box_);
  }
  SessionSetup& setup = tl_setup;
  int rv = 0;
  if (!setup.cbs) rv = nghttp2_session_callbacks_new(&setup.cbs);
  if (rv == 0 && !setup.opt) {
    rv = nghttp2_option_new(&setup.opt);
    if (rv == 0) {
      // Window updates only for bytes JavaScript has taken: a peer cannot make us hold more than
      // one window per stream (Consume gives the rest back).
      nghttp2_option_set_no_auto_window_update(setup.opt, 1);
      // No priority tree of finished streams: a server that ignores priorities needs none.
      nghttp2_option_set_no_closed_streams(setup.opt, 1);
      // RFC 9113 §8's message rules are checked in OnHeader and friends (message_check.h).
      nghttp2_option_set_no_http_messaging(setup.opt, 1);
    }
  }
  nghttp2_session_callbacks* cbs = setup.cbs;
  if (rv == 0) {
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, Callbacks::BeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cbs, Callbacks::Header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, Callbacks::FrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, Callbacks::DataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, Callbacks::StreamClose);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, Callbacks::FrameSend);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, Callbacks::FrameNotSend);
    nghttp2_mem mem = ThreadMem();
    rv = client_ ? nghttp2_session_client_new3(&session_, cbs, this, setup.opt, &mem) : nghttp2_session_server_new3(&session_, cbs, this, setup.opt, &mem);
  }
  if (rv == 0) {
    // A client refuses server push (nothing here would take a pushed stream); max_concurrent_streams
    // then only bounds pushes, so the same entry is harmless.
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window},
                                   {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_header_list_size_},
                                   {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    rv = nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, client_ ? 4 : 3);
  }
  // The connection window is shared by every stream; it is handed back as bytes arrive (one
  // stream's unread window then cannot stall the others), so it only needs to cover a burst.
  if (rv == 0) rv = nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, std::max<int32_t>(1 << 20, static_cast<int32_t>(window)));
  if (rv != 0) {
    finished_ = true;
    Release();
    throw Napi::Error::New(env, std::string("H2Session: nghttp2 set-up failed: ") + nghttp2_strerror(rv));
  }
  // Every fd here is non-blocking already: accept4 and the connector pass SOCK_NONBLOCK, and a
  // dup of a net.Socket's fd shares the file description libuv made non-blocking.
  poller_ = PollerOf(env_, env);
  watch_ = poller_->Open(fd_, this);
  // Watched for reads from the start (what the first UpdateInterest asks): an fd epoll cannot
  // watch is refused here, as uv_poll_init refused it.
  int werr = watch_ < 0 ? -watch_ : poller_->Want(watch_, UV_READABLE);
  if (werr != 0) {
    finished_ = true;
    Release();
    ThrowErrno(env, "H2Session: epoll_ctl", werr);
  }
  events_ = UV_READABLE;
  last_activity_ = uv_now(env_->loop);
  Ref();  // alive while the connection is, whatever JavaScript holds
  env_->Link(this);
  if (!initial.empty()) {
    // Bytes read while the protocol was sniffed: fed from the loop, so that the first batch of
    // events reaches JavaScript through the ordinary path, after the constructor has returned.
    initial_ = std::move(initial);
  }
  ScheduleFlush();
  if (idle_timeout_ms_ > 0) ArmIdle(idle_timeout_ms_);
  // Last: nothing above may throw once the slot is taken (the destructor gives it back, and a
  // constructor that throws has none).
  sid_ = sessions.Take(this, &slot_);
}

inline Session* Session::ByNumber(double sid) { return sessions.Find(sid); }

template <Napi::Value (Session::*M)(const Args&), size_t N>
napi_value Session::Numbered(napi_env env, napi_callback_info cb) {
  return CallNumbered<Session, M, N>(env, cb, &ByNumber, "H2Session.calls", "session");
}

Napi::Value Session::Sid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), sid_); }

Session::~Session() {
  if (!finished_) Abandon();
  GiveScratch();
  delete scratch_box_;
  sessions.Release(slot_, this);
}

void Session::Abandon() {
  if (finished_) return;
  finished_ = true;
  Release();
}

// ---- nghttp2 callbacks (never call JavaScript) ----

Session::Stream* Session::StreamOfMiss(int32_t id) {
  if (!session_) return nullptr;
  // nghttp2's own lookup is a hash probe; every header field and every JavaScript call on a
  // stream asks, so the table in front of it (StreamOf, inline) answers most of them.
  Stream*& slot = by_id_[SlotOf(id)];
  Stream* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, id));
  if (!s) {
    for (Stream* u : unsent_) {
      if (u->id == id) {
        s = u;
        break;
      }
    }
  }
  if (s) slot = s;
  return s;
}

int Session::OnBeginHeaders(const nghttp2_frame* f) {
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  if (client_) {
    // Our streams exist since request(); each block (1xx, final response, trailers) starts afresh.
    if (Stream* s = StreamOf(f->hd.stream_id)) {
      hdr_stream_ = s;
      s->hdr.clear();
      s->never_in.clear();
      s->hdr_bytes = s->hdr_pairs = 0;
    }
    return 0;
  }
  if (f->headers.cat != NGHTTP2_HCAT_REQUEST) {
    // Trailers: counted against the same limits, their content is not passed on.
    if (Stream* s = StreamOf(f->hd.stream_id)) {
      hdr_stream_ = s;
      s->hdr_bytes = s->hdr_pairs = 0;
    }
    return 0;
  }
  Stream* s = NewStream();
  s->id = f->hd.stream_id;
  s->next = streams_;
  if (streams_) streams_->prev = s;
  streams_ = s;
  open_streams_++;
  streams_total_++;
  nghttp2_session_set_stream_user_data(session_, s->id, s);
  hdr_stream_ = s;
  return 0;
}

// The token of a field name (lower-case: nghttp2 refuses others in HTTP/2).
static int32_t TokenOf(const uint8_t* n, size_t len) {
  auto is = [n](const char* lit, size_t l) { return memcmp(n, lit, l) == 0; };
  if (len && n[0] == ':') {
    switch (len) {
      case 5:
        return is(":path", 5) ? kTokPath : kTokPseudo;
      case 7:
        return is(":method", 7) ? kTokMethod : is(":scheme", 7) ? kTokScheme : is(":status", 7) ? kTokStatus : kTokPseudo;
      case 10:
        return is(":authority", 10) ? kTokAuthority : kTokPseudo;
      default:
        return kTokPseudo;
    }
  }
  switch (len) {
    case 2:
      return is("te", 2) ? kTokTe : kTokOther;
    case 4:
      return is("host", 4) ? kTokHost : is("date", 4) ? kTokDate : kTokOther;
    case 6:
      return is("cookie", 6) ? kTokCookie : is("server", 6) ? kTokServer : kTokOther;
    case 7:
      return is("upgrade", 7) ? kTokUpgrade : kTokOther;
    case 10:
      return is("connection", 10) ? kTokConnection : is("keep-alive", 10) ? kTokKeepAlive : kTokOther;
    case 12:
      return is("content-type", 12) ? kTokContentType : is("grpc-timeout", 12) ? kTokGrpcTimeout : is("x-request-id", 12) ? kTokRequestId : kTokOther;
    case 14:
      return is("content-length", 14) ? kTokContentLength : is("http2-settings", 14) ? kTokHttp2Settings : kTokOther;
    case 15:
      return is("x-forwarded-for", 15) ? kTokForwardedFor : kTokOther;
    case 16:
      return is("proxy-connection", 16) ? kTokProxyConnection : kTokOther;
    case 17:
      return is("transfer-encoding", 17) ? kTokTransferEncoding : is("x-forwarded-proto", 17) ? kTokForwardedProto : kTokOther;
    case 21:
      return is("x-envoy-original-path", 21) ? kTokOriginalPath : kTokOther;
    case 23:
      return is("x-forwarded-client-cert", 23) ? kTokClientCert : kTokOther;
    default:
      return kTokOther;
  }
}

int Session::OnHeader(const nghttp2_frame* f, const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags) {
  Stream* s = hdr_stream_;
  if (!s || s->id != f->hd.stream_id) s = StreamOf(f->hd.stream_id);
  if (!s || s->rejected) return 0;
  int32_t token = TokenOf(name, namelen);
  const bool server_trailers = !client_ && f->headers.cat != NGHTTP2_HCAT_REQUEST;
  if (server_trailers) {
    // A request's trailers are not kept (nor passed on): their fields are checked one by one
    // here. Kept blocks are checked whole when they end (CheckBlock).
    FieldVerdict verdict = CheckRequestField(s->msg, token, name, namelen, value, valuelen, true);
    if (verdict == FieldVerdict::kMalformed) Malformed(s);
    if (verdict != FieldVerdict::kKeep) return 0;
  }
  // RFC 9113 §6.5.2 counts 32 bytes of overhead per field.
  s->hdr_bytes += static_cast<uint32_t>(namelen + valuelen + 32);
  s->hdr_pairs++;
  if (s->hdr_bytes > max_header_list_size_ || s->hdr_pairs > max_header_pairs_) {
    // Over the limit: the rest of the block is still decoded (HPACK state must stay in step)
    // but dropped, and the stream is answered 431 when the block ends (OnFrameRecv).
    s->rejected = true;
    s->hdr.release();
    s->never_in.clear();
    return 0;
  }
  if (server_trailers) return 0;
  // Two values JavaScript asks about on every gRPC request, told here: a string compare in
  // JavaScript costs ~35 instructions a character (~45 on a slice of the list).
  if (token == kTokContentType && valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0) token = kTokGrpcContentType;
  else if (token == kTokTe && valuelen == 8 && memcmp(value, "trailers", 8) == 0) token = kTokTeTrailers;
  s->hdr.Append(name, namelen, value, valuelen, token);
  // The peer asked that this value never enter an HPACK table (a credential, say): remembered
  // so that the next hop gets it the same way (RFC 7541 §7.1.3).
  if (flags & NGHTTP2_NV_FLAG_NO_INDEX) {
    s->never_in.append(reinterpret_cast<const char*>(name), namelen);
    s->never_in.push_back('\0');
  }
  return 0;
}

void Session::Malformed(Stream* s) {
  if (s->malformed) return;
  s->malformed = s->rejected = true;
  malformed_total_++;
  s->hdr.clear();
  s->never_in.clear();
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
}

// The fields of the block `s` holds, checked in order (RFC 9113 §8, message_check.h): false if
// the message is malformed; fields to be dropped leave the block.
bool Session::CheckBlock(Stream* s) {
  BlockMemo& memo = client_ ? (s->responded ? spares_->memo_trailers : spares_->memo_response) : spares_->memo_request;
  HeaderBlock& b = s->hdr;
  const size_t n = b.size(), fn = b.fieldEntries();
  if (memo.valid && memo.in.SameFor(s->msg) && memo.list.size() == n && memo.fields.size() == fn && memcmp(memo.list.data(), b.data(), n) == 0 &&
      memcmp(memo.fields.data(), b.fields(), fn * sizeof(int32_t)) == 0) {
    const int64_t received = s->msg.received;
    s->msg = memo.out;
    s->msg.received = received;
    return true;
  }
  const MessageState in = s->msg;
  const char* d = b.data();
  int32_t* f = b.mutableFields();
  bool drops = false;
  for (size_t i = 0, start = 0; i < fn; i += 3) {
    const auto* name = reinterpret_cast<const uint8_t*>(d + start);
    const size_t namelen = size_t(f[i]) - start;
    const auto* value = reinterpret_cast<const uint8_t*>(d + f[i] + 1);
    const size_t valuelen = size_t(f[i + 1] - f[i] - 1);
    // OnHeader's finer tokens, as TokenOf gave them.
    int32_t token = f[i + 2] == kTokGrpcContentType ? kTokContentType : f[i + 2] == kTokTeTrailers ? kTokTe : f[i + 2];
    FieldVerdict v = client_ ? CheckResponseField(s->msg, token, name, namelen, value, valuelen, s->responded)
                             : CheckRequestField(s->msg, token, name, namelen, value, valuelen, false);
    if (v == FieldVerdict::kMalformed) return false;
    if (v == FieldVerdict::kDrop) {
      f[i + 2] = kTokDropped;
      drops = true;
    }
    start = size_t(f[i + 1]) + 1;
  }
  if (drops) {
    DropFields(b);
    return true;  // not kept: a block with drops is rare and would only churn the memo
  }
  if (n <= kMaxMemoBlock) {
    memo.list.assign(d, n);
    memo.fields.assign(f, f + fn);
    memo.in = in;
    memo.out = s->msg;
    memo.valid = true;
  }
  return true;
}

// Rebuilds `b` without the fields CheckBlock marked kTokDropped.
void Session::DropFields(HeaderBlock& b) {
  HeaderBlock kept;
  const char* d = b.data();
  const int32_t* f = b.fields();
  for (size_t i = 0, start = 0; i < b.fieldEntries(); i += 3) {
    if (f[i + 2] != kTokDropped)
      kept.Append(reinterpret_cast<const uint8_t*>(d + start), size_t(f[i]) - start, reinterpret_cast<const uint8_t*>(d + f[i] + 1), size_t(f[i + 1] - f[i] - 1), f[i + 2]);
    start = size_t(f[i + 1]) + 1;
  }
  b.swap(kept);
}

// A header block of `s` is complete: whether its message is well-formed so far (RFC 9113 §8).
bool Session::MessageDone(Stream* s, const nghttp2_frame* f, bool end) {
  if (!client_ && f->headers.cat != NGHTTP2_HCAT_REQUEST) return end && EndReceived(s->msg);  // trailers, checked as they came
  if (!CheckBlock(s)) return false;
  if (client_) {
    if (!s->responded) {
      // The response, or a 1xx before it.
      bool interim;
      if (!ResponseHeadDone(s->msg, &interim)) return false;
    } else if (!end) {
      return false;  // trailers end the stream (§8.1)
    }
  } else if (!RequestHeadDone(s->msg)) {
    return false;
  }
  return !end || EndReceived(s->msg);
}

int Session::OnFrameRecv(const nghttp2_frame* f) {
  switch (f->hd.type) {
    case NGHTTP2_HEADERS: {
      Stream* s = StreamOf(f->hd.stream_id);
      if (!s || s->malformed) return 0;
      bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (!s->rejected && !MessageDone(s, f, end)) {
        Malformed(s);
        return 0;
      }
      if (s->rejected) {
        rejected_total_++;
        if (f->headers.cat == NGHTTP2_HCAT_REQUEST && !s->responded) {
          // Answered here, never shown to JavaScript: 431, as node:http2 answers it (and as
          // HTTP/1 does), then RST_STREAM NO_ERROR so the client stops sending a body.
          s->responded = true;
          s->eof = true;
          static const char kStatus[] = ":status";
          static const char k431[] = "431";
          nghttp2_nv nv = {reinterpret_cast<uint8_t*>(const_cast<char*>(kStatus)), reinterpret_cast<uint8_t*>(const_cast<char*>(k431)),
                           sizeof(kStatus) - 1, sizeof(k431) - 1, NGHTTP2_NV_FLAG_NONE};
          nghttp2_submit_response(session_, s->id, &nv, 1, nullptr);
          if (!end) nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
        } else {
          nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_ENHANCE_YOUR_CALM);
        }
        return 0;
      }
      if (client_) {
        // nghttp2 puts :status first (pseudo-headers precede the rest). Interim 1xx answers are
        // dropped here, as the node:http2 path ignores them; the final one is the response, any
        // later block is the trailers (which always end the stream).
        bool interim = !s->responded && s->hdr.size() > 8 && memcmp(s->hdr.data(), ":status", 8) == 0 && s->hdr.data()[8] == '1';
        if (!interim) {
          PushNeverIndexed(s);
          if (!s->responded) {
            s->responded = true;
            PushReceived(end ? kEvHeadersEnd : kEvHeaders, s, last_head_);
            PushFields(s->hdr);
            // Kept for respondHeldArgs; hdr takes the previous block's memory (the trailers').
            s->req.swap(s->hdr);
          } else {
            PushReceived(kEvTrailers, s, last_trailers_);
            PushFields(s->hdr);
            if (end) PushInt(kEvEnd, s->id, 0);
          }
        }
        s->hdr.clear();
        s->never_in.clear();
      } else if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        PushNeverIndexed(s);
        PushReceived(end ? kEvHeadersEnd : kEvHeaders, s, last_head_);
        PushFields(s->hdr);
        // Kept for requestHeld; hdr takes the previous block's memory.
        s->req.swap(s->hdr);
        s->hdr.clear();
      } else if (end) {
        PushInt(kEvEnd, s->id, 0);
      }
      return 0;
    }
    case NGHTTP2_DATA: {
      Stream* s = StreamOf(f->hd.stream_id);
      if (!s || s->rejected || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
      // A body short of its content-length (RFC 9113 §8.1.1), or no final response before the end.
      if (!EndReceived(s->msg)) Malformed(s);
      else PushInt(kEvEnd, s->id, 0);
      return 0;
    }
    case NGHTTP2_GOAWAY:
      // The id slot carries last_stream_id: nghttp2 closes our streams above it with
      // REFUSED_STREAM (never processed, safe to retry) right after this.
      PushInt(kEvGoaway, f->goaway.last_stream_id, f->goaway.error_code);
      return 0;
    case NGHTTP2_SETTINGS:
      if (client_ && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        PushInt(kEvSettings, 0, nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
      }
      return 0;
    default:
      return 0;
  }
}

int Session::OnDataChunk(uint8_t flags, int32_t id, const uint8_t* data, size_t len) {
  // The connection window comes back at once; each stream's only when JavaScript has taken the
  // bytes (consume()), so a stream whose reader is slow holds at most one window.
  nghttp2_session_consume_connection(session_, len);
  Stream* s = StreamOf(id);
  if (s && !s->rejected && !BodyReceived(s->msg, len)) Malformed(s);  // past its content-length
  if (!s || s->rejected) {
    nghttp2_session_consume_stream(session_, id, len);
    return 0;
  }
  PushData(id, data, len);
  return 0;
}

int Session::OnStreamClose(int32_t id, uint32_t code) {
  Stream* s = StreamOf(id);
  if (!s) return 0;
  for (size_t i = 0; i < unsent_.size(); i++) {
    if (unsent_[i] == s) {
      unsent_.erase(i);
      break;
    }
  }
  nghttp2_session_set_stream_user_data(session_, id, nullptr);
  FreeStream(s);
  PushInt(kEvClose, id, code);
  return 0;
}

int Session::OnFrameNotSend(const nghttp2_frame* f, int) {
  // A request nghttp2 will never send (GOAWAY came first, ids ran out): if it opened no stream
  // (so no close callback follows), it ends here as never processed, which is safe to retry.
  if (!client_ || f->hd.type != NGHTTP2_HEADERS || nghttp2_session_find_stream(session_, f->hd.stream_id)) return 0;
  for (size_t i = 0; i < unsent_.size(); i++) {
    Stream* s = unsent_[i];
    if (s->id != f->hd.stream_id) continue;
    unsent_.erase(i);
    FreeStream(s);
    PushInt(kEvClose, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
    break;
  }
  return 0;
}

int Session::OnFrameSend(const nghttp2_frame* f) {
  if (client_ && f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    // A response to HEAD has no body, one to CONNECT no length: the request's method is kept.
    // Ours put :method first.
    for (size_t i = 0; i < f->headers.nvlen; i++) {
      const nghttp2_nv& nv = f->headers.nva[i];
      if (nv.namelen != 7 || memcmp(nv.name, ":method", 7) != 0) continue;
      if (Stream* s = StreamOf(f->hd.stream_id)) s->msg.SentMethod(nv.value, nv.valuelen);
      break;
    }
  }
  if (client_ && f->hd.type == NGHTTP2_HEADERS && !unsent_.empty()) {
    // Sent: nghttp2 has the stream and its user data from now on.
    for (size_t i = 0; i < unsent_.size(); i++) {
      if (unsent_[i]->id == f->hd.stream_id) {
        unsent_.erase(i);
        break;
      }
    }
  }
  // nghttp2 answers a connection error with GOAWAY by itself: that is how we learn of it.
  if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR) protocol_error_ = true;
  return 0;
}

ssize_t Session::ReadData(int32_t id, uint8_t* buf, size_t length, uint32_t* flags, Stream* hint) {
  // The provider carries its stream (freed only once nghttp2 has dropped the provider with the
  // stream): no lookup per DATA frame.
  Stream* s = hint && hint->id == id ? hint : StreamOf(id);
  if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  size_t n = std::min(s->pending(), length);
  if (n) {
    memcpy(buf, s->out.data() + s->out_off, n);
    s->out_off += n;
    if (s->out_off == s->out.size()) {
      s->out.clear();
      s->out_off = 0;
    } else if (s->out_off >= 64 * 1024 && s->out_off * 2 >= s->out.size()) {
      // A queue that never quite empties (a steady writer, a slow reader) must not grow: drop
      // what was sent once it is at least half of the buffer (the move is at most as large).
      s->out.erase(0, s->out_off);
      s->out_off = 0;
    }
  }
  if (s->pending() == 0) {
    if (s->eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (s->has_trailers) {
        // Submitting trailers from inside the read callback is what nghttp2 documents for this.
        // Their fields were parsed (and checked) when JavaScript gave them (trailers()).
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_submit_trailer(session_, id, s->trailers_nva.data(), s->trailers_nva.size());
      }
    } else if (n == 0) {
      s->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  MaybeDrain(s);
  return static_cast<ssize_t>(n);
}

void Session::MaybeDrain(Stream* s) {
  if (!s->want_drain || s->pending() >= stream_high_water_) return;
  s->want_drain = false;
  PushInt(kEvDrain, s->id, 0);
}

void Session::FreeStream(Stream* s) {
  if (s->prev) s->prev->next = s->next;
  else streams_ = s->next;
  if (s->next) s->next->prev = s->prev;
  open_streams_--;
  Recycle(s);
}

Session::Stream* Session::NewStream() {
  std::vector<Stream*>& spare = spares_->streams;
  if (!spare.empty()) {
    Stream* s = spare.back();
    spare.pop_back();
    return s;
  }
  return new Stream();
}

void Session::Recycle(Stream* s) {
  if (by_id_ && by_id_[SlotOf(s->id)] == s) by_id_[SlotOf(s->id)] = nullptr;
  if (hdr_stream_ == s) hdr_stream_ = nullptr;
  if (spares_->dead || spares_->streams.size() >= kMaxSpareStreams) {
    delete s;
    return;
  }
  // Back to a new stream's state, keeping the buffers unless a large body or header list grew
  // them (the spares outlive this session).
  s->id = 0;
  s->prev = s->next = nullptr;
  constexpr size_t kKeep = kMaxSpareStreamBytes;
  if (s->hdr.capacity() > kKeep) s->hdr.release();
  else s->hdr.clear();
  if (s->req.capacity() > kKeep) s->req.release();
  else s->req.clear();
  if (s->head.capacity() > kKeep) std::string().swap(s->head);
  else s->head.clear();
  s->hdr_bytes = s->hdr_pairs = 0;
  if (s->out.capacity() > kKeep) std::string().swap(s->out);
  else s->out.clear();
  s->out_off = 0;
  if (s->trailers.capacity() > kKeep) std::string().swap(s->trailers);
  else s->trailers.clear();
  s->never_in.clear();
  s->trailers_nva.clear();
  s->responded = s->eof = s->has_trailers = s->deferred = s->want_drain = s->rejected = s->malformed = false;
  s->msg.Reset();
  spares_->streams.push_back(s);
}

void Session::GiveScratch() {
  if (scratch_given_) return;
  scratch_given_ = true;
  if (spares_ == nullptr || spares_->dead || spares_->scratch.size() >= kMaxSpareSessions) return;
  Scratch* x = scratch_box_ ? scratch_box_ : new Scratch();
  scratch_box_ = nullptr;
  unsent_.clear();
  KeepSmall(ev_);
  KeepSmall(ftab_);
  KeepSmall(objs_);
  KeepSmall(data_);
  KeepSmall(data_slots_);
  KeepSmall(consume_slots_);
  KeepSmall(deferred_);
  KeepSmall(nva_);
  KeepSmall(scratch_);
  KeepSmall(never_scratch_);
  KeepSmall(src_scratch_);
  lowered_.gen = 0;
  KeepSmall(lowered_.bytes);
  KeepSmall(lowered_.fields);
  for (FlatMemo& m : memos_) {
    m.valid = false;
    KeepSmall(m.src);
    KeepSmall(m.lowered);
    KeepSmall(m.fields);
  }
  SwapScratch(*x);
  spares_->scratch.push_back(x);
}

void Session::SwapScratch(Scratch& x) {
  unsent_.swap(x.unsent);
  ev_.swap(x.ev);
  ftab_.swap(x.ftab);
  objs_.swap(x.objs);
  data_.swap(x.data);
  data_slots_.swap(x.data_slots);
  consume_slots_.swap(x.consume_slots);
  deferred_.swap(x.deferred);
  nva_.swap(x.nva);
  scratch_.swap(x.scratch);
  never_scratch_.swap(x.never_scratch);
  src_scratch_.swap(x.src_scratch);
  std::swap(lowered_, x.lowered);
  for (size_t i = 0; i < kMemoSites; i++) std::swap(memos_[i], x.memos[i]);
}

// ---- events to JavaScript ----

void Session::OpenBatch() {
  if (batch_open_) return;
  batch_open_ = true;
  // Stream ends noticed while writing (not worth a JavaScript call of their own) go first.
  for (const Deferred& d : deferred_) {
    ev_.push_back(static_cast<uint32_t>(d.kind));
    ev_.push_back(static_cast<uint32_t>(d.id));
    ev_.push_back(d.value);
  }
  deferred_.clear();
}

void Session::PushObj(int kind, int32_t id, napi_value payload) {
  OpenBatch();
  ev_.push_back(static_cast<uint32_t>(kind));
  ev_.push_back(static_cast<uint32_t>(id));
  ev_.push_back(static_cast<uint32_t>(objs_.size()));
  objs_.push_back(payload);
}

void Session::PushFields(const HeaderBlock& b) {
  // Once a record does not fit, no later one is kept: JavaScript pairs records with events by
  // order. ftab_ never outgrows the JavaScript array.
  if (!ftab_mem_ || ftab_full_) return;
  const size_t n = b.fieldEntries();
  if (1 + ftab_.size() + 1 + n > ftab_cap_) {
    ftab_full_ = true;
    return;
  }
  ftab_.push_back(static_cast<int32_t>(n / 3));
  if (n) ftab_.insert(ftab_.end(), b.fields(), b.fields() + n);
  ftab_recs_++;
}

// Lists longer than this are not kept for kKeptList: a long compare that seldom matches.
static constexpr size_t kKeptListMax = 512;

void Session::PushReceived(int kind, Stream* s, std::string& last) {
  const size_t n = s->hdr.listSize();
  if (n != 0 && n == last.size() && memcmp(last.data(), s->hdr.data(), n) == 0) {
    OpenBatch();
    ev_.push_back(static_cast<uint32_t>(kind));
    ev_.push_back(static_cast<uint32_t>(s->id));
    ev_.push_back(kKeptList);
    return;
  }
  napi_value str;
  napi_create_string_latin1(Env(), s->hdr.data(), n, &str);
  PushObj(kind, s->id, str);
  // JavaScript keeps every such string it gets (the last of each kind): these bytes are its.
  if (n <= kKeptListMax) last.assign(s->hdr.data(), n);
  else last.clear();
}

void Session::PushNeverIndexed(Stream* s) {
  if (s->never_in.empty()) return;
  napi_value str;
  // No trailing NUL, as header lists.
  napi_create_string_latin1(Env(), s->never_in.data(), s->never_in.size() - 1, &str);
  PushObj(kEvNeverIndexed, s->id, str);
  s->never_in.clear();
}

void Session::PushData(int32_t id, const uint8_t* data, size_t len) {
  // Copied once into the batch's byte run; JavaScript gets one Buffer for all of a batch's DATA
  // and views into it, instead of a Buffer (two mallocs, a prototype set) per frame.
  OpenBatch();
  data_.append(reinterpret_cast<const char*>(data), len);
  ev_.push_back(kEvData);
  ev_.push_back(static_cast<uint32_t>(id));
  data_slots_.push_back(static_cast<uint32_t>(ev_.size()));
  ev_.push_back(static_cast<uint32_t>(len));
}

void Session::PushInt(int kind, int32_t id, uint32_t v) {
  // A stream that ended while our own frames went out: JavaScript already considers it done
  // (it sent the end or the reset), so the news waits for the next batch instead of costing a
  // call now. Everything else is delivered with the batch it belongs to.
  // Not on a client: a stream may end with our own END_STREAM after its response, and the pool
  // needs that end at once to count the stream's slot free.
  if (flushing_ && !client_ && kind == kEvClose && !batch_open_ && deferred_.size() < kMaxDeferred) {
    deferred_.push_back({kind, id, v});
    return;
  }
  OpenBatch();
  ev_.push_back(static_cast<uint32_t>(kind));
  ev_.push_back(static_cast<uint32_t>(id));
  ev_.push_back(v);
}

// A batch's DATA bytes for JavaScript. A Buffer of their own cost ~3,800 instructions
// (napi_create_buffer_copy: a backing store, an ArrayBuffer, a Uint8Array, its prototype), about
// 1,000 per proxied gRPC call. Batches of up to half a pool are copied into the environment's
// shared pool Buffer instead, one after the other (`*base`: where this one starts), and a full
// pool is replaced by a new one: Node's Buffer.allocUnsafe pool, with its size and the same
// trade-off (a chunk JavaScript keeps keeps its 8 KiB pool alive). A larger batch gets a Buffer
// of its own, which up to kMaxOwnPool becomes the (full) pool: the environment then holds at
// most that much until the next batch. `*gen`: the pool's number (0: none, a larger batch),
// which dataArgs takes back (kDataFromPool) to copy a chunk from it without a view of it.
napi_value Session::DataForJs(napi_env env, const std::string& bytes, uint32_t* base, uint32_t* gen) {
  static constexpr size_t kPoolSize = 8 * 1024;
  static constexpr size_t kMaxOwnPool = 64 * 1024;
  const size_t n = bytes.size();
  strait::Env* e = env_;
  if (n > kMaxOwnPool) {
    napi_value v;
    void* dst = nullptr;
    napi_create_buffer_copy(env, n, bytes.data(), &dst, &v);
    *base = 0;
    *gen = 0;
    return v;
  }
  const bool own = n > kPoolSize / 2;
  if (own || e->data_pool.IsEmpty() || e->data_pool_used + n > e->data_pool_size) {
    Napi::Buffer<uint8_t> b = own ? Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(bytes.data()), n) : Napi::Buffer<uint8_t>::New(env, kPoolSize);
    e->data_pool.Reset(b, 1);
    e->data_pool_mem = b.Data();
    e->data_pool_size = own ? n : kPoolSize;
    e->data_pool_used = own ? n : 0;
    // Numbers stay within int32 (dataArgs reads them so) and skip 0, which means no pool.
    e->data_pool_gen = e->data_pool_gen >= static_cast<uint32_t>(INT32_MAX) ? 1 : e->data_pool_gen + 1;
    *gen = e->data_pool_gen;
    if (own) {
      *base = 0;
      return b;
    }
  }
  memcpy(e->data_pool_mem + e->data_pool_used, bytes.data(), n);
  *base = static_cast<uint32_t>(e->data_pool_used);
  *gen = e->data_pool_gen;
  e->data_pool_used = std::min(e->data_pool_size, (e->data_pool_used + n + 7) & ~static_cast<size_t>(7));
  return e->data_pool.Value();
}

uint32_t* Session::TakeBatch(bool fresh, napi_value out[kArgs], size_t* argc) {
  napi_env env = Env();
  size_t slots = ev_.size();
  uint32_t* slots_mem = ev_mem_;
  napi_create_uint32(env, static_cast<uint32_t>(slots / 3), &out[0]);
  if (!fresh && slots <= ev_cap_) {
    memcpy(ev_mem_, ev_.data(), slots * sizeof(uint32_t));
    napi_get_null(env, &out[3]);
    // The field tables ride with the shared event array only: a new array means JavaScript may
    // be reading the shared ones right now (JavaScript reads the table only when `fresh` is null).
    if (ftab_mem_) {
      if (!ftab_.empty()) memcpy(ftab_mem_ + 1, ftab_.data(), ftab_.size() * sizeof(int32_t));
      ftab_mem_[0] = static_cast<int32_t>(ftab_recs_);
    }
  } else {
    // More events than the shared array holds, or JavaScript may be iterating it right now
    // (destroy() called from a handler): a new array for this batch only.
    void* mem = nullptr;
    napi_value ab;
    napi_create_arraybuffer(env, slots * sizeof(uint32_t), &mem, &ab);
    if (slots) memcpy(mem, ev_.data(), slots * sizeof(uint32_t));
    napi_create_typedarray(env, napi_uint32_array, slots, ab, 0, &out[3]);
    slots_mem = static_cast<uint32_t*>(mem);
  }
  // The strings go as arguments: napi_set_element takes V8's generic property path (~1,100
  // instructions a string, three strings per proxied gRPC call), and JavaScript's rest parameter
  // makes the array in one go. A batch with more strings than kArgStrings (a read holding that
  // many request heads) gets an array.
  size_t n_objs = objs_.size();
  *argc = kFixedArgs;
  if (n_objs > kArgStrings) {
    napi_create_array_with_length(env, n_objs, &out[1]);
    for (size_t i = 0; i < n_objs; i++) napi_set_element(env, out[1], static_cast<uint32_t>(i), objs_[i]);
  } else {
    napi_get_null(env, &out[1]);
    for (size_t i = 0; i < n_objs; i++) out[kFixedArgs + i] = objs_[i];
    *argc = kFixedArgs + n_objs;
  }
  uint32_t base = 0;
  uint32_t gen = 0;
  if (!data_.empty()) {
    out[2] = DataForJs(env, data_, &base, &gen);
  } else {
    napi_get_null(env, &out[2]);
  }
  napi_create_uint32(env, base, &out[4]);
  napi_create_uint32(env, gen, &out[5]);
  ev_.clear();
  ftab_.clear();
  ftab_recs_ = 0;
  ftab_full_ = false;
  objs_.clear();
  data_.clear();
  // A burst (a 1 MiB batch of body bytes) must not stay allocated on an idle connection.
  if (data_.capacity() > 256 * 1024) data_.shrink_to_fit();
  batch_open_ = false;
  return slots_mem;
}

void Session::Emit() {
  if (!batch_open_ || on_events_.IsEmpty()) return;  // after Finish, nobody is listening
  napi_value a[kArgs];
  size_t argc;
  uint32_t* mem = TakeBatch(false, a, &argc);
  consume_slots_.swap(data_slots_);
  data_slots_.clear();
  CallFromLoop(Env(), on_events_, Value(), argc, a, async_);
  // DATA that JavaScript took during the call (its length slot left as it was) gives the stream
  // its window back here, without a consume() call per chunk; a chunk it keeps for later (a
  // paused reader) has the slot zeroed and is consumed when taken. `mem` is alive: the shared
  // array is held by ev_ref_ or the environment (HoldArray), a new one by this scope's handle.
  if (!finished_) {
    for (uint32_t slot : consume_slots_) {
      uint32_t len = mem[slot];
      if (len) nghttp2_session_consume_stream(session_, static_cast<int32_t>(mem[slot - 1]), len);
    }
  }
  consume_slots_.clear();
}

// ---- the loop side ----

void Session::UpdateInterest() {
  if (finished_) return;
  int want = 0;
  // Backpressure: with a full output queue the peer is not read (its requests would only add
  // responses to the queue); TCP flow control then pushes back on it.
  if (!peer_eof_ && out_pending_ < high_water_mark_ && nghttp2_session_want_read(session_)) want |= UV_READABLE;
  if (out_head_) want |= UV_WRITABLE;
  if (want == events_) return;
  events_ = want;
  // The fd was watched before, so this fails only without kernel memory: the session ends in
  // the check phase (not from here, which may be inside a JavaScript call).
  if (poller_->Want(watch_, want) != 0) {
    watch_failed_ = true;
    if (!flush_scheduled_) {
      flush_scheduled_ = true;
      poller_->Defer(watch_);
    }
  }
}

void Session::ScheduleFlush() {
  // Inside a poll callback the flush follows the JavaScript call; elsewhere (an upstream's
  // response arriving) it runs once in this loop turn's check phase, or the next prepare phase,
  // however many calls queued frames: one write for all of them (Poller::Defer says why both).
  if (in_batch_ || flush_scheduled_ || finished_) return;
  flush_scheduled_ = true;
  poller_->Defer(watch_);
}

void Session::OnDeferred() {
  flush_scheduled_ = false;
  if (finished_) return;
  if (watch_failed_) {
    Finish(kEndReset, false);
    return;
  }
  Napi::Object self = Value();  // keeps the object alive through JavaScript calls below
  (void)self;
  in_batch_ = true;
  if (!initial_.empty()) {
    std::string bytes = std::move(initial_);
    initial_.clear();
    Feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    if (finished_) return;
    Emit();
    if (finished_) return;
  }
  in_batch_ = false;
  if (!Flush()) return;
  Emit();
}

void Session::OnPoll(int status, int events) {
  if (finished_) return;
  Napi::Object self = Value();  // a local handle: alive through the JavaScript calls below
  (void)self;
  if (status < 0) {
    // POLLERR (libuv reports it as EBADF and stops the handle): a reset, typically.
    Finish(kEndReset, false);
    return;
  }
  in_batch_ = true;
  if ((events & UV_WRITABLE) && !WriteOut()) return;
  if (events & UV_READABLE) {
    if (!ReadSocket()) return;
    // Held-back stream ends ride on this read's call even when it decoded nothing else.
    if (!deferred_.empty()) OpenBatch();
  }
  Emit();  // at most one JavaScript call for everything this read decoded
  in_batch_ = false;
  if (finished_) return;
  if (!Flush()) return;
  Emit();  // drains freed by the write, if any
}

bool Session::ReadSocket() {
  BufferPool& pool = env_->pool;
  Chunk* c = pool.Take();
  bool ok = true;
  for (int i = 0; i < kMaxReads; i++) {
    ssize_t r = read(fd_, c->data, kChunk);
    if (r > 0) {
      last_activity_ = uv_now(env_->loop);
      Feed(reinterpret_cast<const uint8_t*>(c->data), static_cast<size_t>(r));
      if (finished_) {
        ok = false;
        break;
      }
      // Short read: drained. Stop too when nghttp2 is done reading or the output is full.
      if (static_cast<size_t>(r) < kChunk || !nghttp2_session_want_read(session_) || out_pending_ >= high_water_mark_) break;
      continue;
    }
    if (r == 0) {
      peer_eof_ = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    pool.Give(c);
    Finish(kEndReset, false);  // ECONNRESET, ...
    return false;
  }
  pool.Give(c);
  if (ok && peer_eof_) {
    // The client closed its side: HTTP/2 has no half-close of a connection, so the session ends
    // (streams still open are reset for JavaScript); what was decoded is delivered first.
    Finish(protocol_error_ ? kEndProtocolError : kEndDone, false);
    return false;
  }
  return ok;
}

void Session::Feed(const uint8_t* p, size_t n) {
  ssize_t rv = nghttp2_session_mem_recv(session_, p, n);
  if (rv >= 0) return;
  // Fatal to the session (bad preface, flooding): GOAWAY if it can still be sent, then the end.
  // Connection errors that nghttp2 handles itself come back as a GOAWAY it queued (OnFrameSend).
  protocol_error_ = true;
  nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
}

bool Session::Flush() {
  flushing_ = true;
  while (out_pending_ < high_water_mark_) {
    const uint8_t* p = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &p);
    if (n < 0) {
      flushing_ = false;
      protocol_error_ = true;
      Finish(kEndProtocolError, false);
      return false;
    }
    if (n == 0) break;
    // mem_send's buffer is valid only until the next call: copy into the output chunks.
    size_t left = static_cast<size_t>(n);
    while (left) {
      if (!out_tail_ || out_tail_->len == kChunk) {
        Chunk* c = env_->pool.Take();
        if (out_tail_) out_tail_->next = c;
        else out_head_ = c;
        out_tail_ = c;
      }
      size_t room = std::min(left, kChunk - out_tail_->len);
      memcpy(out_tail_->data + out_tail_->len, p, room);
      out_tail_->len += static_cast<uint32_t>(room);
      p += room;
      left -= room;
      out_pending_ += room;
    }
  }
  flushing_ = false;
  if (!WriteOut()) return false;
  if (out_pending_ == 0) {
    bool done = !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_);
    if (done || (closing_ && open_streams_ == 0)) {
      Finish(protocol_error_ ? kEndProtocolError : kEndDone, false);
      return false;
    }
  }
  UpdateInterest();
  return true;
}

bool Session::WriteOut() {
  while (out_head_) {
    iovec iov[kMaxWriteIov];
    int n = 0;
    size_t total = 0;
    for (Chunk* c = out_head_; c && n < kMaxWriteIov; c = c->next, n++) {
      iov[n].iov_base = c->data + c->off;
      iov[n].iov_len = c->len - c->off;
      total += iov[n].iov_len;
    }
    msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n);
    env_->stats.writev_calls++;
    // MSG_NOSIGNAL: a vanished peer is EPIPE, never SIGPIPE.
    ssize_t w = sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      Finish(kEndReset, false);
      return false;
    }
    last_activity_ = uv_now(env_->loop);
    out_pending_ -= static_cast<size_t>(w);
    size_t left = static_cast<size_t>(w);
    while (left > 0) {
      Chunk* c = out_head_;
      size_t avail = c->len - c->off;
      if (left < avail) {
        c->off += static_cast<uint32_t>(left);
        break;
      }
      left -= avail;
      out_head_ = c->next;
      if (!out_head_) out_tail_ = nullptr;
      env_->pool.Give(c);
    }
    if (static_cast<size_t>(w) < total) break;  // socket buffer full: wait for UV_WRITABLE
  }
  UpdateInterest();
  return true;
}

void Session::ArmIdle(uint64_t ms) {
  if (!idle_timer_) {
    idle_timer_ = new uv_timer_t;
    uv_timer_init(env_->loop, idle_timer_);
    idle_timer_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(idle_timer_));
  }
  uv_timer_start(idle_timer_, [](uv_timer_t* t) { static_cast<Session*>(t->data)->OnIdleTimer(); }, ms, 0);
}

void Session::OnIdleTimer() {
  if (finished_) return;
  // Re-armed lazily, as Pipe does: traffic only stamps last_activity_.
  uint64_t idle = uv_now(env_->loop) - last_activity_;
  if (idle < idle_timeout_ms_) {
    ArmIdle(idle_timeout_ms_ - idle);
    return;
  }
  ArmIdle(idle_timeout_ms_);
  Napi::HandleScope scope(Env());
  Napi::Object self = Value();
  (void)self;
  PushInt(kEvIdle, 0, 0);
  Emit();
}

void Session::Release() {
  // Out of the epoll before the close (the poller's comment says why).
  if (watch_ >= 0) poller_->Close(watch_);
  watch_ = -1;
  if (idle_timer_) CloseAndFree(idle_timer_);
  idle_timer_ = nullptr;
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (session_) nghttp2_session_del(session_);
  session_ = nullptr;
  while (streams_) {
    Stream* s = streams_;
    streams_ = s->next;
    Recycle(s);
  }
  unsent_.clear();  // its streams were on the list too
  open_streams_ = 0;
  hdr_stream_ = nullptr;
  if (by_id_) {
    if (spares_->dead || spares_->id_tables.size() >= kMaxSpareSessions) {
      delete[] by_id_;
    } else {
      std::fill(by_id_, by_id_ + kIdSlots, nullptr);
      spares_->id_tables.push_back(by_id_);
    }
    by_id_ = nullptr;
  }
  while (out_head_) {
    Chunk* c = out_head_;
    out_head_ = c->next;
    env_->pool.Give(c);
  }
  out_tail_ = nullptr;
  out_pending_ = 0;
  initial_.clear();
}

void Session::Finish(SessionEndReason reason, bool from_js) {
  if (finished_) return;
  finished_ = true;
  Release();
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Object self = Value();
  env_->Unlink(this);
  // Whatever this batch decoded, the stream ends noticed earlier, then the end itself: JavaScript
  // resets every stream it still holds when it reads kEvSessionEnd.
  PushInt(kEvSessionEnd, 0, static_cast<uint32_t>(reason));
  data_slots_.clear();  // nothing to give back: the session is gone
  napi_value a[kArgs];
  size_t argc;
  TakeBatch(from_js, a, &argc);
  Unref();
  // The last call: the callback's closure holds the JavaScript connection, which holds this
  // wrapper, so a strong reference kept past the end would keep both alive for ever. The local
  // lets go of it when this returns, exception or not.
  Napi::FunctionReference on_events = std::move(on_events_);
  if (from_js) {
    on_events.MakeCallback(self, argc, a, async_);
  } else {
    CallFromLoop(env, on_events, self, argc, a, async_);
  }
  // The last batch is out: the buffers go to the next session of this thread.
  GiveScratch();
}

// ---- JavaScript → C++ ----

Session::Stream* Session::StreamArg(const Args& info, const char* fn) {
  int32_t id = ArgInt(info, 0, fn, "streamId", 1, INT32_MAX);
  if (finished_) return nullptr;
  return StreamOf(id);
}

// Fields whose value is new on every request, sent as literals never added to the HPACK dynamic
// table (NGHTTP2_NV_FLAG_NO_INDEX). Indexed, each would be inserted by our deflater and the
// peer's inflater only to be evicted unused, and with a 4 KiB table a few dozen of them push out
// the entries that do repeat (user-agent, x-forwarded-proto, :authority, ...), which then go as
// literals again. nghttp2 already keeps :path, content-length, etag, set-cookie and the like out.
// nghttp2 has no flag for plain "without indexing", so these go "never indexed" (RFC 7541
// §6.2.3): later hops keep them out of their tables too, which suits values that never repeat.
// Names arrive lowercased. On a client session one request in kSeedEvery sends them indexed
// (seed_unique_), so that each name has an entry in the upstream's table: the other requests then
// send the name as an index and only the value as a literal (nghttp2 finds a name in its dynamic
// table for a never-indexed field too), where the name would otherwise be Huffman-coded and sent
// every time. Responses seldom carry these fields and keep them all never indexed.
static constexpr uint32_t kSeedEvery = 256;
static bool UniquePerRequest(const char* n, size_t len) {
  switch (len) {
    case 11:
      return memcmp(n, "traceparent", 11) == 0 || memcmp(n, "x-b3-spanid", 11) == 0;
    case 12:
      return memcmp(n, "x-request-id", 12) == 0 || memcmp(n, "grpc-timeout", 12) == 0 || memcmp(n, "x-b3-traceid", 12) == 0;
    case 17:
      return memcmp(n, "x-b3-parentspanid", 17) == 0;
    case 29:
      return memcmp(n, "x-envoy-upstream-service-time", 29) == 0;
    default:
      return false;
  }
}

// Whether `never` ("name\0name...", last NUL optional) names the field `n`. Case-blind: a name
// from a header object (node:http2's sensitiveHeaders list) may come in any case.
static bool NamedIn(const std::string& never, const uint8_t* n, size_t len) {
  size_t i = 0;
  size_t end = never.size();
  while (i < end) {
    size_t e = never.find('\0', i);
    if (e == std::string::npos) e = end;
    if (e - i == len && strncasecmp(never.data() + i, reinterpret_cast<const char*>(n), len) == 0) return true;
    i = e + 1;
  }
  return false;
}

// ParseFlat's scan, sixteen bytes at a time: one pass over the whole list marks every NUL and
// refuses CR and LF, where a scan per name and per value (even eight bytes at a time) paid its
// set-up on every field (~4% of a gRPC request's instructions).
namespace {

// Of d[i, i + 16), bytes at n and past not looked at: bit k of `nul` set when byte i + k is NUL,
// of `upper` when it is an upper-case letter; `crlf` nonzero when any byte is CR or LF.
inline void Scan16(const char* d, size_t i, size_t n, uint32_t* nul, uint32_t* crlf, uint32_t* upper) {
#if defined(__SSE2__)
  __m128i v;
  uint32_t valid = 0xFFFF;
  if (i + 16 <= n) {
    v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i));
  } else {
    // The tail: read no byte past the string; the zeros that pad it are masked off as NULs and
    // are no CR or LF.
    alignas(16) char t[16] = {};
    memcpy(t, d + i, n - i);
    v = _mm_load_si128(reinterpret_cast<const __m128i*>(t));
    valid = (1u << (n - i)) - 1;
  }
  *nul = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128()))) & valid;
  *crlf = static_cast<uint32_t>(_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\n')))));
  // Signed compares: bytes from 0x80 up are negative, so no letter.
  *upper = static_cast<uint32_t>(_mm_movemask_epi8(_mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('A' - 1)), _mm_cmplt_epi8(v, _mm_set1_epi8('Z' + 1)))));
#else
  uint32_t z = 0, c = 0, u = 0;
  size_t end = std::min(n, i + 16);
  for (size_t k = i; k < end; k++) {
    z |= static_cast<uint32_t>(d[k] == '\0') << (k - i);
    c |= d[k] == '\r' || d[k] == '\n';
    u |= static_cast<uint32_t>(d[k] >= 'A' && d[k] <= 'Z') << (k - i);
  }
  *nul = z;
  *crlf = c;
  *upper = u;
#endif
}

// Lower-cases the upper-case letters (`upper`) of a block `b` that belong to names. Names and
// values alternate at the NULs (`nul`), so a byte is in a name when the count of NULs before it,
// from the list's start, is even: the block's prefix parity, flipped when it starts in a value.
inline void LowerNames(char* b, uint32_t nul, uint32_t upper, bool in_value) {
  uint32_t p = nul;
  p ^= p << 1;
  p ^= p << 2;
  p ^= p << 4;
  p ^= p << 8;
  if (in_value) p = ~p;
  for (uint32_t m = upper & ~p & 0xFFFF; m; m &= m - 1) b[__builtin_ctz(m)] = static_cast<char>(b[__builtin_ctz(m)] | 0x20);
}

// Whether d[0, n) holds no NUL, CR or LF.
bool Clean(const char* d, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    uint32_t nul, crlf, upper;
    Scan16(d, i, n, &nul, &crlf, &upper);
    if (nul | crlf) return false;
  }
  return true;
}

}  // namespace

// ParseFlat's fields point into a string that outlives their frame (see session.h).
static constexpr uint8_t kKept = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;

// One field of ParseFlat's list: the name d[start, name_end), the value up to value_end.
inline void Session::PushField(char* d, size_t start, size_t name_end, size_t value_end) {
  nghttp2_nv nv;
  nv.name = reinterpret_cast<uint8_t*>(d + start);
  nv.namelen = name_end - start;
  nv.value = reinterpret_cast<uint8_t*>(d + name_end + 1);
  nv.valuelen = value_end - name_end - 1;
  nv.flags = kKept | (!seed_unique_ && UniquePerRequest(d + start, nv.namelen) ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE);
  nva_.push_back(nv);
}

bool Session::ParseFlat(std::string& s, const std::string* never) {
  nva_.clear();
  seed_unique_ = client_ && (lists_++ & (kSeedEvery - 1)) == 0;
  if (!ParseFlatFrom(s, 0)) return false;
  ApplyNever(never);
  return true;
}

bool Session::ParseFlatFrom(std::string& s, size_t from) {
  return from >= s.size() || ParseFlatIn(&s[0], from, s.size());
}

// Longer lists are not kept: the usual repeated ones are a few pairs.
static constexpr size_t kMaxKeptList = 512;

void Session::PushLowered(const std::vector<LoweredField>& fields, uint8_t* base) {
  for (const LoweredField& x : fields) {
    nghttp2_nv nv;
    nv.name = base + x.name_at;
    nv.namelen = x.name_len;
    nv.value = base + x.value_at;
    nv.valuelen = x.value_len;
    nv.flags = x.flags;
    nva_.push_back(nv);
  }
}

bool Session::ParseFlatKept(FlatMemo& m, char* d, size_t from, size_t n) {
  if (from >= n) return true;
  char* p = d + from;
  const size_t len = n - from;
  if (m.valid && m.seed == seed_unique_ && m.src.size() == len && memcmp(m.src.data(), p, len) == 0) {
    if (!m.lowered.empty()) memcpy(p, m.lowered.data(), len);
    PushLowered(m.fields, reinterpret_cast<uint8_t*>(p));
    env_->stats.h2_lists_reused++;
    return true;
  }
  m.valid = false;
  if (len > kMaxKeptList) return ParseFlatIn(d, from, n);
  m.src.assign(p, len);
  const size_t first = nva_.size();
  if (!ParseFlatIn(d, from, n)) return false;
  if (memcmp(p, m.src.data(), len) != 0) m.lowered.assign(p, len);
  else m.lowered.clear();
  m.fields.clear();
  const uint8_t* b = reinterpret_cast<const uint8_t*>(p);
  for (size_t i = first; i < nva_.size(); i++) {
    const nghttp2_nv& nv = nva_[i];
    m.fields.push_back({static_cast<uint32_t>(nv.name - b), static_cast<uint32_t>(nv.namelen), static_cast<uint32_t>(nv.value - b), static_cast<uint32_t>(nv.valuelen), nv.flags});
  }
  m.seed = seed_unique_;
  m.valid = true;
  return true;
}

bool Session::ParseFlatIn(char* d, size_t from, size_t n) {
  if (from >= n) return true;
  size_t start = from;          // of the current name
  size_t name_end = SIZE_MAX;   // its NUL; SIZE_MAX while the name has not ended
  for (size_t i = from; i < n; i += 16) {
    uint32_t nul, crlf, upper;
    Scan16(d, i, n, &nul, &crlf, &upper);
    // CR or LF would let a value smuggle a header line into an HTTP/1 hop further on; no name
    // holds one either.
    if (crlf) return false;
    // Names go out lower-case (RFC 9113 §8.2.1). nghttp2 would lower-case a copy of each, but it
    // is told not to copy (its copy and pass were ~2,000 instructions per proxied gRPC request);
    // most lists have no upper-case name, and a block without any letter in it costs nothing.
    if (upper) LowerNames(d + i, nul, upper, name_end != SIZE_MAX);
    for (; nul; nul &= nul - 1) {
      const size_t at = i + static_cast<size_t>(__builtin_ctz(nul));
      if (name_end == SIZE_MAX) {
        if (at == start) return false;  // an empty name
        name_end = at;
        continue;
      }
      PushField(d, start, name_end, at);
      start = at + 1;
      name_end = SIZE_MAX;
    }
  }
  if (name_end != SIZE_MAX) {
    PushField(d, start, name_end, n);  // the last value needs no terminator
  } else if (start < n) {
    return false;  // a name with no value
  }
  return true;
}

void Session::ApplyNever(const std::string* never) {
  // Every field of a name the previous hop sent never indexed goes never indexed: a name, not a
  // position, is what survives the proxy's edits, and never indexed is only ever more cautious.
  if (never && !never->empty()) {
    for (nghttp2_nv& nv : nva_) {
      if (NamedIn(*never, nv.name, nv.namelen)) nv.flags = kKept | NGHTTP2_NV_FLAG_NO_INDEX;
    }
  }
}

// The optional never-indexed names argument at info[i] ("name\0name...", latin1) into `out`;
// null when absent (most calls: nothing is read).
static const std::string* NeverArg(const Args& info, size_t i, std::string& out, const char* fn) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": neverIndexed must be a string of names");
  napi_env env = info.Env();
  size_t len = 0;
  napi_get_value_string_latin1(env, info[i], nullptr, 0, &len);
  out.resize(len + 1);
  napi_get_value_string_latin1(env, info[i], &out[0], len + 1, &len);
  out.resize(len);
  return &out;
}

// String arguments are read into a stack buffer first: one N-API call for a string that fits,
// where asking for the length first took two (~14 calls per proxied gRPC request).
static constexpr size_t kStackLatin1 = 1024;

// A latin1 string argument's bytes: `stack` (kStackLatin1 bytes) when they fit, else `heap`;
// null when `v` is no string.
static const char* ReadLatin1(napi_env env, napi_value v, char* stack, std::string& heap, size_t* len) {
  size_t n = 0;
  if (napi_get_value_string_latin1(env, v, stack, kStackLatin1, &n) != napi_ok) return nullptr;
  if (n + 1 < kStackLatin1) {
    *len = n;
    return stack;
  }
  // It may have been cut at the buffer's end: read it whole.
  napi_get_value_string_latin1(env, v, nullptr, 0, &n);
  heap.resize(n + 1);
  napi_get_value_string_latin1(env, v, &heap[0], n + 1, &n);
  heap.resize(n);
  *len = n;
  return heap.data();
}

// Reads a latin1 string argument into `out` (scratch_: one buffer reused for every call).
static bool Latin1Arg(const Args& info, size_t i, std::string& out) {
  char stack[kStackLatin1];
  size_t len = 0;
  const char* p = ReadLatin1(info.Env(), info[i], stack, out, &len);
  if (!p) return false;
  if (p == stack) out.assign(stack, len);
  return true;
}

// A header list argument: a latin1 string, or the first info[len_at] bytes of a Uint8Array.
// The byte form lets JavaScript fill one reused buffer in place of building a string per list.
static bool FlatArg(const Args& info, size_t i, size_t len_at, std::string& out) {
  napi_env env = info.Env();
  napi_value v = info[i];
  bool typed = false;
  if (napi_is_typedarray(env, v, &typed) != napi_ok || !typed) return Latin1Arg(info, i, out);
  napi_typedarray_type t;
  size_t n = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, v, &t, &n, &data, nullptr, nullptr) != napi_ok || t != napi_uint8_array) return false;
  double len;
  if (info.Length() <= len_at || napi_get_value_double(env, info[len_at], &len) != napi_ok) return false;
  if (!(len >= 0 && len <= static_cast<double>(n))) return false;
  out.assign(static_cast<const char*>(data), static_cast<size_t>(len));
  return true;
}

// respond(streamId, "name\0value\0..." | bytes, pairs, endStream[, byteLength[, body[, neverIndexed]]]) -> boolean (false: the stream is gone)
// `body`: the whole response body (endStream false): HEADERS, the body and END_STREAM from one
// call, where a response known to be complete would otherwise take respond + data + data(end).
// `neverIndexed`: "name\0name..." of fields to send as never-indexed literals (what the upstream
// sent so, RFC 7541 §7.1.3), on top of UniquePerRequest's.
Napi::Value Session::Respond(const Args& info) {
  Napi::Env env = info.Env();
  Stream* s = StreamArg(info, "H2Session.respond");
  if (!FlatArg(info, 1, 4, scratch_)) throw Napi::TypeError::New(env, "H2Session.respond: headers must be a string or a Uint8Array with its length");
  int32_t pairs = ArgInt(info, 2, "H2Session.respond", "pairs", 1, INT32_MAX);
  bool end = ArgBool(info, 3);
  Napi::Value body = info[5];
  bool whole = info.Length() > 5 && !body.IsUndefined();
  if (whole && (end || !body.IsTypedArray() || body.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array))
    throw Napi::TypeError::New(env, "H2Session.respond: body must be a Uint8Array, and endStream false with it");
  const std::string* never = NeverArg(info, 6, never_scratch_, "H2Session.respond");
  return SubmitResponse(env, s, pairs, end, whole ? &body : nullptr, never, "H2Session.respond");
}

// Joins src's [start, end) runs (each ending with a NUL, src's last pair having none of its own)
// and `extra` onto `out`: the header lists requestRuns() and respondRuns() are given in parts.
static void JoinRuns(const Args& info, strait::Env* e, size_t src_at, size_t runs_at, size_t extra_at, std::string& src, std::string& out, const char* fn);
static bool AppendLatin1(napi_env env, napi_value v, std::string& out);
static bool AppendKeptExtra(napi_env env, napi_value v, double gen, strait::Env::KeptPairs& kept, std::string& out);

// respondRuns(streamId, src, runs, nRuns, extra, pairs, endStream[, neverIndexed]) -> as respond().
// `runs`: an Int32Array, or null for the runs table (setTable slot 0), as in requestRuns().
// The list respond() takes, joined here from the upstream's list `src` (as this addon gave it)
// cut in [start, end) runs and the pairs the proxy adds in `extra` (h2ResponseRunsOf in
// src/filters/network/http_connection_manager/h2_session.ts; h2ResponseFlatOf is the joined
// reference), rather than from a concatenated string V8 would flatten into one more copy.
Napi::Value Session::RespondRuns(const Args& info) {
  Napi::Env env = info.Env();
  const char* fn = "H2Session.respondRuns";
  Stream* s = StreamArg(info, fn);
  // src and extra are checked by JoinRuns's reads, as in requestRuns().
  if (info.Length() < 7) throw Napi::TypeError::New(env, "H2Session.respondRuns: arguments must be (streamId, src, runs, nRuns, extra, pairs, endStream[, neverIndexed])");
  const int32_t pairs = ArgInt(info, 5, fn, "pairs", 1, INT32_MAX);
  const bool end = ArgBool(info, 6);
  const std::string* never = NeverArg(info, 7, never_scratch_, fn);
  scratch_.clear();
  JoinRuns(info, env_, 1, 2, 4, src_scratch_, scratch_, fn);
  return SubmitResponse(env, s, pairs, end, nullptr, never, fn);
}

// What a call-args slot holds as the number of an extra, when `flagged`: 0 (none) otherwise, or
// when the table has no such slot.
static double ExtraGen(const strait::Env* e, bool flagged, size_t slot) {
  if (!flagged) return 0;
  const strait::Env::Table& t = e->tables[kTableCallArgs];
  return t.len > slot ? static_cast<const double*>(t.data)[slot] : 0;
}

// The registered call-args table (kTableCallArgs, CALL_ARGS in src/native.ts) when it is a
// Float64Array of `need` slots or more; throws a TypeError naming `fn` otherwise.
static const double* CallArgsTable(napi_env env, size_t need, const char* fn) {
  const strait::Env::Table& t = GetEnv(Napi::Env(env))->tables[kTableCallArgs];
  if (t.data == nullptr || t.type != napi_float64_array || t.len < need)
    throw Napi::TypeError::New(env, std::string(fn) + ": no Float64Array of " + std::to_string(need) + " slots or more is registered as the call-args table");
  return static_cast<const double*>(t.data);
}

// The slots of respondHeldArgs' numbers in the registered call-args table (kTableCallArgs, a
// Float64Array: session numbers do not fit an int32), CALL_ARGS in src/native.ts.
enum { kRhSession = 0, kRhStream = 1, kRhUpSession = 2, kRhUpStream = 3, kRhRuns = 4, kRhPairs = 5, kRhEnd = 6, kRhCount = 7, kRhExtraGen = 7 };
// kRhEnd's bit past endStream's: slot 7 is JavaScript's number for `extra`.
static constexpr double kEndExtraGen = 2;
// What respondHeldArgs returns when the upstream stream keeps no response head any more (it
// closed: the whole response came in one read): the caller sends the list in parts instead.
static constexpr int32_t kResponseNotHeld = -1;

// respondHeldArgs(extra[, neverIndexed]) -> 1 sent, 0 the stream is gone or answered (as
// respondRuns' false), kResponseNotHeld. Numbers in the call-args table: [session, streamId,
// upSession, upStream, nRuns, pairs, endStream]; runs in the runs table (setTable slot 0).
// respondRuns for the final response head that the client session numbered upSession keeps for
// its stream upStream: the kept runs are cut from that block (the bytes JavaScript's list has,
// with the field table saying where each field lies) instead of from a string handed back, read
// again and scanned again. nghttp2 checked those fields on the way in; only `extra` is scanned.
napi_value Session::RespondHeldArgs(napi_env env, napi_callback_info cb) {
  const char* fn = "H2Session.respondHeldArgs";
  Args info(env, cb, 0, 2);
  try {
    if (info.Length() < 1) throw Napi::TypeError::New(env, std::string(fn) + ": arguments must be (extra[, neverIndexed])");
    const double* a = CallArgsTable(env, kRhCount, fn);
    int32_t id, up_id, n_runs, pairs;
    if (!IntIn(a[kRhStream], 1, INT32_MAX, &id) || !IntIn(a[kRhUpStream], 1, INT32_MAX, &up_id) || !IntIn(a[kRhRuns], 0, INT32_MAX, &n_runs) || !IntIn(a[kRhPairs], 1, INT32_MAX, &pairs))
      throw Napi::RangeError::New(env, std::string(fn) + ": the call-args table's streamId, upStream and pairs must be positive integers, nRuns an integer not negative");
    Session* down = ByNumber(a[kRhSession]);
    if (!down || down->client_) throw Napi::TypeError::New(env, std::string(fn) + ": no server session has the number given");
    Session* up = ByNumber(a[kRhUpSession]);
    Stream* us = up && up->client_ && !up->finished_ ? up->StreamOf(up_id) : nullptr;
    if (!us || us->req.empty()) return Napi::Number::New(env, kResponseNotHeld);
    const std::string* never = NeverArg(info, 1, down->never_scratch_, fn);
    Stream* s = down->finished_ ? nullptr : down->StreamOf(id);
    if (!s || s->responded) return Napi::Number::New(env, 0);
    const strait::Env::Table& rt = GetEnv(Napi::Env(env))->tables[kTableRuns];
    const int32_t* runs = rt.type == napi_int32_array ? static_cast<const int32_t*>(rt.data) : nullptr;
    if (runs == nullptr || size_t(n_runs) * 2 > rt.len) throw Napi::RangeError::New(env, std::string(fn) + ": nRuns out of range");
    std::string& out = down->scratch_;
    out.clear();
    down->nva_.clear();
    down->AppendHeldRuns(env, us->req, runs, n_runs, out, fn);
    const size_t fixed = down->nva_.size();
    const size_t extra_at = out.size();
    const double end_bits = a[kRhEnd];
    const bool flagged = end_bits == kEndExtraGen || end_bits == kEndExtraGen + 1;
    if (!AppendKeptExtra(env, info[0], ExtraGen(down->env_, flagged, kRhExtraGen), down->env_->h2_extra[1], out)) throw Napi::TypeError::New(env, std::string(fn) + ": extra must be a string");
    s->head.swap(out);  // kept until sent, as in SubmitResponse
    down->seed_unique_ = false;
    down->Rebase(reinterpret_cast<uint8_t*>(&s->head[0]), fixed, 0);
    if (!down->ParseFlatKept(down->memos_[kMemoResponseExtra], &s->head[0], extra_at, s->head.size()) || down->nva_.size() != static_cast<size_t>(pairs)) throw Napi::TypeError::New(env, std::string(fn) + ": invalid header name or value");
    down->ApplyNever(never);
    bool ok = down->SubmitParsed(Napi::Env(env), s, end_bits == 1 || end_bits == kEndExtraGen + 1, nullptr, 0).As<Napi::Boolean>().Value();
    return Napi::Number::New(env, ok ? 1 : 0);
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
    return nullptr;
  }
}

// The rest of respond() and respondRuns() once scratch_ holds the list.
Napi::Value Session::SubmitResponse(Napi::Env env, Stream* s, int32_t pairs, bool end, const Napi::Value* body, const std::string* never, const char* fn) {
  if (!s || s->responded) return Napi::Boolean::New(env, false);
  // The stream keeps the list until nghttp2 has sent it (ParseFlat); scratch_ takes the stream's
  // spare buffer in exchange.
  s->head.swap(scratch_);
  // The pair count catches a NUL inside a name or value, which would shift every later pair.
  if (!ParseFlat(s->head, never) || nva_.size() != static_cast<size_t>(pairs)) throw Napi::TypeError::New(env, std::string(fn) + ": invalid header name or value");
  if (!body) return SubmitParsed(env, s, end, nullptr, 0);
  Napi::Uint8Array b = body->As<Napi::Uint8Array>();
  const char* data = reinterpret_cast<const char*>(b.Data());
  return SubmitParsed(env, s, end, data ? data : "", b.ByteLength());  // empty: still a whole body
}

// The rest of SubmitResponse and respondSpans() once nva_ holds the list.
Napi::Value Session::SubmitParsed(Napi::Env env, Stream* s, bool end, const char* body, size_t body_len) {
  s->responded = true;
  if (body) {
    s->out.append(body, body_len);
    s->eof = true;
  }
  int rv;
  if (end) {
    s->eof = true;
    rv = nghttp2_submit_response(session_, s->id, nva_.data(), nva_.size(), nullptr);
  } else {
    nghttp2_data_provider dp;
    dp.source.ptr = s;
    dp.read_callback = Callbacks::Read;
    rv = nghttp2_submit_response(session_, s->id, nva_.data(), nva_.size(), &dp);
  }
  ScheduleFlush();
  return Napi::Boolean::New(env, rv == 0);
}

// Whether the name `n` (any case) is one UniquePerRequest lists.
static bool UniquePerRequestFolded(const uint8_t* n, size_t len) {
  if (len != 11 && len != 12 && len != 17 && len != 29) return false;
  // They all start with t, x or g: most other names stop here, before the folded copy.
  const uint8_t c = n[0] | 0x20;
  if (c != 't' && c != 'x' && c != 'g') return false;
  char low[29];
  for (size_t i = 0; i < len; i++) low[i] = static_cast<char>(n[i] >= 'A' && n[i] <= 'Z' ? n[i] + 32 : n[i]);
  return UniquePerRequest(low, len);
}

// The whole body a respondSpans-like call may end with: (bodyAt, bodyLen) at argument `at` and
// after it, within `len` bytes of the head's buffer. False (nothing read) when not given.
static bool BodyArgs(const Args& info, size_t at, bool end, size_t len, const char* fn, size_t* body_at, size_t* body_len) {
  if (info.Length() <= at) return false;
  if (end || info.Length() < at + 2) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": the body is (bodyAt, bodyLen) in the head's bytes, and endStream false with it");
  *body_at = static_cast<size_t>(ArgInt(info, at, fn, "bodyAt", 0, static_cast<int64_t>(len)));
  *body_len = static_cast<size_t>(ArgInt(info, at + 1, fn, "bodyLen", 0, static_cast<int64_t>(len - *body_at)));
  return true;
}

// One field of an HTTP/1 head, h[ns, ne) and h[vs, ve), as the next pair of nva_: nghttp2 copies
// and lower-cases it during the submit.
void Session::PushSpan(const uint8_t* h, size_t ns, size_t ne, size_t vs, size_t ve) {
  nghttp2_nv nv;
  nv.name = const_cast<uint8_t*>(h + ns);
  nv.namelen = ne - ns;
  nv.value = const_cast<uint8_t*>(h + vs);
  nv.valuelen = ve - vs;
  nv.flags = UniquePerRequestFolded(nv.name, nv.namelen) ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
  nva_.push_back(nv);
}

// respondSpans(streamId, flat, flatLen, flatPairs, head, spans, nSpans, endStream[, body]) -> as respond().
// flat, head and spans: null for the table registered in their slot (kTableFlat, kTableArena,
// kTableSpans).
// An HTTP/1 upstream's response head forwarded downstream (onH1ResponseHead in
// src/filters/network/http_connection_manager/h2_session.ts): `flat` (bytes, `flatLen` long) holds
// :status and the pairs the proxy adds, and `spans` the kept fields of the head's bytes `head` as
// [nameStart, nameEnd, valueStart, valueEnd] quads. The fields go to nghttp2 straight from
// `head`: nghttp2 copies and lower-cases them during the call. Names are as the HTTP/1 parser
// accepted them (tokens only); values are checked here. Copying them into a flat list in
// JavaScript first, byte by byte, was 8 % of an h2c request's instructions.
Napi::Value Session::RespondSpans(const Args& info) {
  Napi::Env env = info.Env();
  const char* fn = "H2Session.respondSpans";
  Stream* s = StreamArg(info, fn);
  void* flat = nullptr;
  size_t flat_cap = 0;
  void* head = nullptr;
  size_t hl = 0;
  void* spans = nullptr;
  size_t spans_len = 0;
  // null for flat, head or spans: the table registered for it (setTable: the shared writer, the
  // HTTP/1 reader's arena, the shared span list), as a typed array's memory costs a lookup.
  if (info.Length() < 8 || !TableArg(env, env_, kTableFlat, info[1], napi_uint8_array, &flat, &flat_cap) ||
      !TableArg(env, env_, kTableArena, info[4], napi_uint8_array, &head, &hl) || !TableArg(env, env_, kTableSpans, info[5], napi_int32_array, &spans, &spans_len))
    throw Napi::TypeError::New(env, "H2Session.respondSpans: flat and head must be Uint8Arrays and spans an Int32Array (or null for the registered tables)");
  static constexpr SpansArgs kAt = {2, 3, 6, 7, 8};
  return SubmitSpans(info, fn, kAt, s, static_cast<const char*>(flat), flat_cap, static_cast<const uint8_t*>(head), hl, static_cast<const int32_t*>(spans), spans_len);
}

// respondSpansTables(streamId, flatLen, flatPairs, nSpans, endStream[, bodyAt, bodyLen]):
// respondSpans() with the flat list, the head and the spans all in their registered tables, the
// usual case: three arguments fewer to read, each a type check (~150 instructions).
Napi::Value Session::RespondSpansTables(const Args& info) {
  Napi::Env env = info.Env();
  const char* fn = "H2Session.respondSpansTables";
  Stream* s = StreamArg(info, fn);
  const strait::Env::Table& f = env_->tables[kTableFlat];
  const strait::Env::Table& h = env_->tables[kTableArena];
  const strait::Env::Table& q = env_->tables[kTableSpans];
  if (info.Length() < 5 || !f.data || f.type != napi_uint8_array || !h.data || h.type != napi_uint8_array || !q.data || q.type != napi_int32_array)
    throw Napi::TypeError::New(env, "H2Session.respondSpansTables: needs (streamId, flatLen, flatPairs, nSpans, endStream) and the flat, arena and spans tables registered with their types");
  static constexpr SpansArgs kAt = {1, 2, 3, 4, 5};
  return SubmitSpans(info, fn, kAt, s, static_cast<const char*>(f.data), f.len, static_cast<const uint8_t*>(h.data), h.len, static_cast<const int32_t*>(q.data), q.len);
}

Napi::Value Session::SubmitSpans(const Args& info, const char* fn, const SpansArgs& at, Stream* s, const char* flat, size_t flat_cap, const uint8_t* h, size_t hl,
                                 const int32_t* spans, size_t spans_len) {
  Napi::Env env = info.Env();
  const int32_t flat_len = ArgInt(info, at.flat_len, fn, "flatLen", 0, static_cast<int64_t>(flat_cap));
  const int32_t pairs = ArgInt(info, at.pairs, fn, "flatPairs", 1, INT32_MAX);
  const int32_t n = ArgInt(info, at.n_spans, fn, "nSpans", 0, static_cast<int64_t>(spans_len / 4));
  const bool end = ArgBool(info, at.end);
  // The whole body, when given, lies in `head` (an HTTP/1 response read in one piece): offsets
  // instead of a view of its own, which JavaScript would make for every response.
  size_t body_at = 0;
  size_t body_len = 0;
  const bool whole = BodyArgs(info, at.body, end, hl, fn, &body_at, &body_len);
  if (!s || s->responded) return Napi::Boolean::New(env, false);
  s->head.assign(flat, static_cast<size_t>(flat_len));
  if (!ParseFlat(s->head) || nva_.size() != static_cast<size_t>(pairs)) throw Napi::TypeError::New(env, std::string(fn) + ": invalid header name or value");
  const int64_t hl_ = static_cast<int64_t>(hl);
  const int32_t* q = spans;
  for (int32_t k = 0; k < n; k++, q += 4) {
    const int64_t ns = q[0], ne = q[1], vs = q[2], ve = q[3];
    if (!(0 <= ns && ns < ne && ne <= vs && vs <= ve && ve <= hl_)) throw Napi::RangeError::New(env, std::string(fn) + ": a span is outside the head");
    // The spans are JavaScript's (any positions in any bytes), not the parser's, which lets no
    // NUL, CR or LF into a value: none of the three may reach a peer (or an HTTP/1 hop further on).
    const char* v = reinterpret_cast<const char*>(h + vs);
    if (!Clean(v, static_cast<size_t>(ve - vs))) throw Napi::TypeError::New(env, std::string(fn) + ": invalid header name or value");
    PushSpan(h, static_cast<size_t>(ns), static_cast<size_t>(ne), static_cast<size_t>(vs), static_cast<size_t>(ve));
  }
  // A zero-length body keeps a non-null pointer: `whole` still ends the stream after it.
  return SubmitParsed(env, s, end, whole ? (body_len ? reinterpret_cast<const char*>(h + body_at) : "") : nullptr, body_len);
}

// respondH1Head(streamId, flatLen, flatPairs, dropServer, endStream[, bodyAt, bodyLen]) -> as respond().
// respondSpansTables() with the spans worked out here: the HTTP/1 response head is the one the
// head parser reported last (its results in the kTableHeadOut table, http1/head.h's Slot layout),
// parsed where it lies in the reader's arena (kTableArena). The flat list holds :status and the
// pairs the proxy adds; the head's fields follow it less the hop-by-hop ones, http2-settings and,
// with `dropServer`, server. The parser's kHas* flags say whether a name needs looking at at all.
// This was writeH1ResponseSpans (h2_session.ts), a second walk over the fields in JavaScript:
// ~1,300 instructions an h2c request.
Napi::Value Session::RespondH1Head(const Args& info) {
  Napi::Env env = info.Env();
  const char* fn = "H2Session.respondH1Head";
  Stream* s = StreamArg(info, fn);
  if (info.Length() < 5 || !H1HeadTables(env_)) throw Napi::TypeError::New(env, "H2Session.respondH1Head: needs (streamId, flatLen, flatPairs, dropServer, endStream) and the flat, arena and head-out tables registered with their types");
  H1HeadCall c;
  c.flat_len = ArgInt(info, 1, fn, "flatLen", 0, static_cast<int64_t>(env_->tables[kTableFlat].len));
  c.pairs = ArgInt(info, 2, fn, "flatPairs", 1, INT32_MAX);
  c.drop_server = ArgBool(info, 3);
  c.end = ArgBool(info, 4);
  c.whole = BodyArgs(info, 5, c.end, env_->tables[kTableArena].len, fn, &c.body_at, &c.body_len);
  return RespondH1HeadWith(env, s, c, fn);
}

// Whether the tables respondH1Head reads are registered with their types.
bool Session::H1HeadTables(const strait::Env* e) {
  const strait::Env::Table& f = e->tables[kTableFlat];
  const strait::Env::Table& h = e->tables[kTableArena];
  const strait::Env::Table& o = e->tables[kTableHeadOut];
  return f.data && f.type == napi_uint8_array && h.data && h.type == napi_uint8_array && o.data && o.type == napi_int32_array && o.len >= size_t(http1::kFieldsAt);
}

// The slots of respondH1HeadArgs' numbers in the call-args table (bodyAt -1: no whole body).
enum { kRaSession = 0, kRaStream = 1, kRaFlatLen = 2, kRaPairs = 3, kRaDropServer = 4, kRaEnd = 5, kRaBodyAt = 6, kRaBodyLen = 7, kRaCount = 8 };

// respondH1HeadArgs() -> as respondH1Head(). No arguments: the numbers are in the call-args
// table, [session, streamId, flatLen, flatPairs, dropServer, endStream, bodyAt, bodyLen] (bodyAt
// -1 when the body is not given whole), ~300 instructions of argument reads fewer an h2c request.
napi_value Session::RespondH1HeadArgs(napi_env env, napi_callback_info) {
  const char* fn = "H2Session.respondH1HeadArgs";
  try {
    const strait::Env* e = GetEnv(Napi::Env(env));
    const double* a = CallArgsTable(env, kRaCount, fn);
    if (!H1HeadTables(e)) throw Napi::TypeError::New(env, std::string(fn) + ": needs the flat, arena and head-out tables registered with their types");
    const size_t arena = e->tables[kTableArena].len;
    const int32_t flat_cap = static_cast<int32_t>(std::min<size_t>(e->tables[kTableFlat].len, INT32_MAX));
    const int32_t arena_cap = static_cast<int32_t>(std::min<size_t>(arena, INT32_MAX));
    int32_t id, flat_len, pairs, body_at, body_len = 0;
    if (!IntIn(a[kRaStream], 1, INT32_MAX, &id) || !IntIn(a[kRaFlatLen], 0, flat_cap, &flat_len) || !IntIn(a[kRaPairs], 1, INT32_MAX, &pairs) || !IntIn(a[kRaBodyAt], -1, arena_cap, &body_at) ||
        (body_at >= 0 && !IntIn(a[kRaBodyLen], 0, arena_cap - body_at, &body_len)))
      throw Napi::RangeError::New(env, std::string(fn) + ": the call-args table's streamId, flatLen, flatPairs, bodyAt or bodyLen is not an integer in range");
    Session* self = ByNumber(a[kRaSession]);
    if (!self || self->client_) throw Napi::TypeError::New(env, std::string(fn) + ": no server session has the number given");
    H1HeadCall c;
    c.flat_len = flat_len;
    c.pairs = pairs;
    c.drop_server = a[kRaDropServer] != 0;
    c.end = a[kRaEnd] != 0;
    c.whole = body_at >= 0;
    if (c.whole && c.end) throw Napi::TypeError::New(env, std::string(fn) + ": a whole body goes with endStream false");
    c.body_at = c.whole ? static_cast<size_t>(body_at) : 0;
    c.body_len = static_cast<size_t>(body_len);
    return self->RespondH1HeadWith(Napi::Env(env), self->finished_ ? nullptr : self->StreamOf(id), c, fn);
  } catch (const Napi::Error& err) {
    err.ThrowAsJavaScriptException();
    return nullptr;
  }
}

Napi::Value Session::RespondH1HeadWith(Napi::Env env, Stream* s, const H1HeadCall& c, const char* fn) {
  const strait::Env::Table& f = env_->tables[kTableFlat];
  const strait::Env::Table& h = env_->tables[kTableArena];
  const strait::Env::Table& o = env_->tables[kTableHeadOut];
  const int32_t* out = static_cast<const int32_t*>(o.data);
  const size_t count = out[http1::kFieldCount] > 0 ? static_cast<size_t>(out[http1::kFieldCount]) : 0;
  const size_t at = http1::RecordsAt(out);
  if (at > o.len || count > (o.len - at) / size_t(http1::kFieldSlots)) throw Napi::RangeError::New(env, std::string(fn) + ": the head's field count is past the head-out table");
  if (!s || s->responded) return Napi::Boolean::New(env, false);
  const LoweredHead& l = LowerH1Head(env, out, at, count, c.drop_server, fn);
  // The flat list, then the head's fields, in the stream's own string: nghttp2 is told not to
  // copy either (it points into the string until the frame is sent).
  const size_t flat_len = static_cast<size_t>(c.flat_len);
  std::string& hd = s->head;
  hd.assign(static_cast<const char*>(f.data), flat_len);
  hd.append(l.bytes);
  nva_.clear();
  char* d = &hd[0];
  if (!ParseFlatKept(memos_[kMemoH1Flat], d, 0, flat_len) || nva_.size() != static_cast<size_t>(c.pairs)) throw Napi::TypeError::New(env, std::string(fn) + ": invalid header name or value");
  PushLowered(l.fields, reinterpret_cast<uint8_t*>(d + flat_len));
  const uint8_t* hb = static_cast<const uint8_t*>(h.data);
  return SubmitParsed(env, s, c.end, c.whole ? (c.body_len ? reinterpret_cast<const char*>(hb + c.body_at) : "") : nullptr, c.body_len);
}

static constexpr size_t kMaxLoweredBytes = 4096;

const Session::LoweredHead& Session::LowerH1Head(Napi::Env env, const int32_t* out, size_t at, size_t count, bool drop_server, const char* fn) {
  // The stamp numbers the head these records describe (a repeat keeps its first parse's number):
  // the fields made for that number are those of these bytes.
  const strait::Env::Http1Stamp& st = env_->http1_stamp;
  const uint64_t gen = st.out == out && st.records_at == at ? st.gen : 0;
  LoweredHead& l = lowered_;
  const strait::Env::Table& h = env_->tables[kTableArena];
  const int64_t hl = static_cast<int64_t>(h.len);
  if (gen != 0 && l.gen == gen && l.drop_server == drop_server) {
    // The records still have to lie in the arena, as they would for a head copied afresh.
    const int32_t* r = out + at;
    for (size_t k = 0; k < count; k++, r += http1::kFieldSlots) {
      if (!(0 <= r[1] && r[1] < r[2] && r[2] <= r[3] && r[3] <= r[4] && r[4] <= hl)) throw Napi::RangeError::New(env, std::string(fn) + ": a field is outside the arena");
    }
    env_->stats.h2_h1_heads_reused++;
    return l;
  }
  l.gen = 0;
  // A large head is not one the parser answers repeats of (HeadMemo keeps heads up to 512
  // bytes): its copy is not kept for the session's life.
  if (l.bytes.capacity() > kMaxLoweredBytes) std::string().swap(l.bytes);
  l.bytes.clear();
  l.fields.clear();
  const uint8_t* hb = static_cast<const uint8_t*>(h.data);
  constexpr uint32_t kHop = (1u << http1::kHost) | (1u << http1::kTransferEncoding) | (1u << http1::kConnection) | (1u << http1::kKeepAlive) |
                            (1u << http1::kProxyConnection) | (1u << http1::kUpgrade) | (1u << http1::kTe);
  const bool names = (out[http1::kFlags] & http1::kHasHttp2Settings) != 0;
  const int32_t* r = out + at;
  for (size_t k = 0; k < count; k++, r += http1::kFieldSlots) {
    const int64_t ns = r[1], ne = r[2], vs = r[3], ve = r[4];
    if (!(0 <= ns && ns < ne && ne <= vs && vs <= ve && ve <= hl)) throw Napi::RangeError::New(env, std::string(fn) + ": a field is outside the arena");
    const uint32_t kind = static_cast<uint32_t>(r[0]);
    if (kind < 32 && ((1u << kind) & kHop) != 0) continue;
    if (drop_server && kind == http1::kServer) continue;
    const char* name = reinterpret_cast<const char*>(hb + ns);
    const size_t nl = static_cast<size_t>(ne - ns);
    if (names && nl == 14 && strncasecmp(name, "http2-settings", 14) == 0) continue;
    // No value check here, unlike respondSpans' spans (any positions JavaScript gives): these
    // are the parser's own, and it lets no NUL, CR or LF into a value. Names go out lower-case
    // (RFC 9113 §8.2.1); the parser took tokens only, so a letter is all that changes.
    LoweredField x;
    x.name_at = static_cast<uint32_t>(l.bytes.size());
    x.name_len = static_cast<uint32_t>(nl);
    l.bytes.append(name, nl);
    char* low = &l.bytes[x.name_at];
    for (size_t i = 0; i < nl; i++) low[i] = static_cast<char>(low[i] >= 'A' && low[i] <= 'Z' ? low[i] | 0x20 : low[i]);
    x.flags = kKept | (UniquePerRequest(low, nl) ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE);
    x.value_at = static_cast<uint32_t>(l.bytes.size());
    x.value_len = static_cast<uint32_t>(ve - vs);
    l.bytes.append(reinterpret_cast<const char*>(hb + vs), x.value_len);
    l.fields.push_back(x);
  }
  l.gen = gen;
  l.drop_server = drop_server;
  return l;
}

// request(headers "name\0value\0..." | bytes, pairs, endStream[, byteLength[, neverIndexed]]) -> stream id (> 0), or a negative
// nghttp2 error (NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE once ids run out, ...; 0 when finished).
// Client mode only. Past the peer's max_concurrent_streams nghttp2 holds the request until a
// stream ends.
Napi::Value Session::Request(const Args& info) {
  Napi::Env env = info.Env();
  if (!client_) throw Napi::Error::New(env, "H2Session.request: not a client session");
  if (!FlatArg(info, 0, 3, scratch_)) throw Napi::TypeError::New(env, "H2Session.request: headers must be a string or a Uint8Array with its length");
  int32_t pairs = ArgInt(info, 1, "H2Session.request", "pairs", 1, INT32_MAX);
  bool end = ArgBool(info, 2);
  const std::string* never = NeverArg(info, 4, never_scratch_, "H2Session.request");
  return SubmitRequest(env, pairs, end, never, "H2Session.request");
}

// Appends a latin1 string argument to `out`. A sequential or sliced string is copied as it is;
// only a concatenated one is flattened by V8 first.
static bool AppendLatin1(napi_env env, napi_value v, std::string& out) {
  char stack[kStackLatin1];
  std::string heap;  // used only by a string longer than the stack buffer
  size_t len = 0;
  const char* p = ReadLatin1(env, v, stack, heap, &len);
  if (!p) return false;
  out.append(p, len);
  return true;
}

// Appends the added pairs `v`, which JavaScript numbered `gen` (0: no number): the bytes kept
// under that number when there are (the string is not read, ~220 instructions), else the
// string's, kept under `gen` from now on. JavaScript never gives one number to two strings.
static bool AppendKeptExtra(napi_env env, napi_value v, double gen, strait::Env::KeptPairs& kept, std::string& out) {
  if (gen != 0 && kept.gen == gen) {
    out.append(kept.bytes);
    return true;
  }
  kept.gen = 0;
  const size_t at = out.size();
  if (!AppendLatin1(env, v, out)) return false;
  kept.bytes.assign(out, at, std::string::npos);
  kept.gen = gen;
  return true;
}

// requestRuns(method, path, authority, src, runs, nRuns, extra, pairs, endStream[, neverIndexed[, fillId]]) -> as request().
// `runs`: an Int32Array, or null for the runs table (setTable slot 0).
// The list request() takes, put together here from the parts a forwarded HTTP/2 request is made
// of (FlatRequest in src/filters/network/http_connection_manager/upstream_try.ts, whose `flat`
// is the reference): the four pseudo-headers, src's kept [start, end) runs (src being the
// downstream's list as this addon gave it, no NUL after its last value) and the added pairs in
// `extra`. Joined in JavaScript, the list was a concatenated string that V8 flattened into one
// more copy to hand it over: ~0.5 KB of garbage per gRPC request.
static constexpr const char* kRequestRunsUsage =
    "H2Session.requestRuns: arguments must be (method, path, authority, src, runs, nRuns, extra, pairs, endStream[, neverIndexed[, fillId]])";

// requestRuns' and requestHeld's fillId: the list `out` ends with the x-request-id pair whose
// placeholder value gets a fresh id (io/request_id.h).
static constexpr char kRequestIdPair[] = "x-request-id";  // with its NUL, the separator here
static void FillListRequestId(strait::Env* e, std::string& out) {
  if (out.empty() || out.back() != '\0') return;
  auto* b = reinterpret_cast<uint8_t*>(&out[0]);
  FillRequestId(e->request_ids, b, b + out.size() - 1, kRequestIdPair, sizeof kRequestIdPair);
}

Napi::Value Session::RequestRuns(const Args& info) {
  Napi::Env env = info.Env();
  const char* fn = "H2Session.requestRuns";
  if (!client_) throw Napi::Error::New(env, "H2Session.requestRuns: not a client session");
  // Each string argument's type is checked by the read of its bytes (no napi_typeof each: ~64
  // instructions a call, five of them here).
  if (info.Length() < 9) throw Napi::TypeError::New(env, kRequestRunsUsage);
  const int32_t pairs = ArgInt(info, 7, fn, "pairs", 1, INT32_MAX);
  const bool end = ArgBool(info, 8);
  const std::string* never = NeverArg(info, 9, never_scratch_, fn);
  std::string& out = scratch_;
  out.clear();
  static const char kMethod[] = ":method";
  static const char kPath[] = ":path";
  static const char kAuthority[] = ":authority";
  static const char kScheme[] = ":scheme\0http";
  out.append(kMethod, sizeof kMethod);  // with its NUL
  if (!AppendLatin1(env, info[0], out)) throw Napi::TypeError::New(env, kRequestRunsUsage);
  out.push_back('\0');
  out.append(kPath, sizeof kPath);
  if (!AppendLatin1(env, info[1], out)) throw Napi::TypeError::New(env, kRequestRunsUsage);
  out.push_back('\0');
  out.append(kAuthority, sizeof kAuthority);
  if (!AppendLatin1(env, info[2], out)) throw Napi::TypeError::New(env, kRequestRunsUsage);
  out.push_back('\0');
  out.append(kScheme, sizeof kScheme);
  JoinRuns(info, env_, 3, 4, 6, src_scratch_, out, fn);
  if (info.Length() > 10 && ArgBool(info, 10)) FillListRequestId(env_, out);
  return SubmitRequest(env, pairs, end, never, fn);
}

// A field of a list being built into a string that may still move: nva_ gets offsets into it
// where its pointers belong (Session::Rebase adds the base once the list has its final buffer).
static void OffsetField(std::vector<nghttp2_nv>& nva, size_t ns, size_t ne, size_t ve) {
  nghttp2_nv nv;
  nv.name = reinterpret_cast<uint8_t*>(ns);
  nv.namelen = ne - ns;
  nv.value = reinterpret_cast<uint8_t*>(ne + 1);
  nv.valuelen = ve - ne - 1;
  nv.flags = kKept;
  nva.push_back(nv);
}

void Session::AppendHeldRuns(napi_env env, const HeaderBlock& b, const int32_t* runs, int32_t n_runs, std::string& out, const char* fn) {
  const char* hd = b.data();
  const size_t list = b.listSize();
  const int32_t* f = b.fields();
  const size_t nf = b.fieldEntries() / 3;
  size_t k = 0;      // the field at `start`
  size_t start = 0;  // where field k's name starts
  for (int32_t r = 0; r < n_runs; r++) {
    const int32_t a = runs[2 * r], e = runs[2 * r + 1];
    if (a < 0 || e < a || size_t(e) > list) throw Napi::RangeError::New(env, std::string(fn) + ": a run is outside the held list");
    while (k < nf && start < size_t(a)) start = static_cast<size_t>(f[3 * k++ + 1]) + 1;
    if (start != size_t(a)) throw Napi::RangeError::New(env, std::string(fn) + ": a run does not start at a field");
    const size_t shift = out.size() - size_t(a);  // held offset + shift = offset in out
    out.append(hd + a, size_t(e - a));
    if (size_t(e) == list) out.push_back('\0');
    while (k < nf && start < size_t(e)) {
      const size_t ve = static_cast<size_t>(f[3 * k + 1]);
      OffsetField(nva_, start + shift, static_cast<size_t>(f[3 * k]) + shift, ve + shift);
      start = ve + 1;
      k++;
    }
    if (start != size_t(e) && !(size_t(e) == list && start == list + 1)) throw Napi::RangeError::New(env, std::string(fn) + ": a run does not end at a field");
  }
}

void Session::Rebase(uint8_t* base, size_t n, size_t from) {
  for (size_t i = 0; i < n; i++) {
    nghttp2_nv& nv = nva_[i];
    nv.name = base + reinterpret_cast<size_t>(nv.name);
    nv.value = base + reinterpret_cast<size_t>(nv.value);
    if (i >= from && !seed_unique_ && UniquePerRequest(reinterpret_cast<const char*>(nv.name), nv.namelen)) nv.flags = kKept | NGHTTP2_NV_FLAG_NO_INDEX;
  }
}

static constexpr const char* kRequestHeldUsage =
    "H2Session.requestHeld: arguments must be (downSession, downStream, same, method, path, authority, runs, nRuns, extra, pairs, endStream[, neverIndexed[, fillId]])";
// What requestHeld returns when the downstream stream no longer holds its request (its session
// or the stream is gone): the caller sends the list in parts instead. No nghttp2 error is -1.
static constexpr int32_t kNotHeld = -1;

// requestHeld(downSession, downStream, same, method, path, authority, runs, nRuns, extra, pairs,
// endStream[, neverIndexed[, fillId]]) -> as request(), or kNotHeld.
// requestRuns() for a request that came in on a server session of this thread (`downSession`,
// its number): the kept runs are cut from the request block that session keeps for stream
// `downStream` (its bytes are JavaScript's list, and its field table says where each field
// lies) instead of a string handed back, read again and scanned again. nghttp2 checked those
// fields on the way in (names lower-case tokens, no CR, LF or NUL in values), so only `extra`
// is scanned. `same` bits 1, 2 and 4: method, path and authority are the request's own (the
// string given is then not read).
Napi::Value Session::RequestHeld(const Args& info) {
  Napi::Env env = info.Env();
  const char* fn = "H2Session.requestHeld";
  if (!client_) throw Napi::Error::New(env, "H2Session.requestHeld: not a client session");
  if (info.Length() < 11) throw Napi::TypeError::New(env, kRequestHeldUsage);
  double dsid = 0;
  if (napi_get_value_double(env, info[0], &dsid) != napi_ok) throw Napi::TypeError::New(env, kRequestHeldUsage);
  HeldCall c;
  c.down_id = ArgInt(info, 1, fn, "downStream", 1, INT32_MAX);
  c.same = ArgInt(info, 2, fn, "same", 0, 7);
  c.pairs = ArgInt(info, 9, fn, "pairs", 1, INT32_MAX);
  c.end = ArgBool(info, 10);
  c.never = NeverArg(info, 11, never_scratch_, fn);
  if (finished_ || closing_) return Napi::Number::New(env, 0);
  Session* down = ByNumber(dsid);
  c.ds = down && !down->client_ && !down->finished_ ? down->StreamOf(c.down_id) : nullptr;
  if (!c.ds || c.ds->req.empty()) return Napi::Number::New(env, kNotHeld);
  for (int k = 0; k < 3; k++) c.pseudo[k] = info[3 + k];
  if (!RunsOf(env, env_, info[6], &c.runs, &c.runs_len)) throw Napi::TypeError::New(env, std::string(fn) + ": runs must be an Int32Array, or null for the runs table");
  c.n_runs = ArgInt(info, 7, fn, "nRuns", 0, INT32_MAX);
  c.extra = info[8];
  c.fill = info.Length() > 12 && ArgBool(info, 12);
  return RequestHeldWith(env, c, fn);
}

// The slots of requestHeldArgs' numbers in the call-args table (after the session's own number).
enum { kQhSession = 0, kQhDownSession = 1, kQhDownStream = 2, kQhSame = 3, kQhRuns = 4, kQhPairs = 5, kQhEnd = 6, kQhFillId = 7, kQhCount = 8, kQhExtraGen = 8 };
// `same`'s bit past the three pseudo-headers': slot 8 is JavaScript's number for `extra`.
static constexpr int32_t kSameExtraGen = 8;

// requestHeldArgs(method, path, authority, extra[, neverIndexed]) -> as requestHeld(). Numbers in
// the call-args table: [session, downSession, downStream, same, nRuns, pairs, endStream, fillId];
// runs in the runs table. Eight number reads fewer per request a gRPC client sends upstream.
napi_value Session::RequestHeldArgs(napi_env env, napi_callback_info cb) {
  const char* fn = "H2Session.requestHeldArgs";
  Args info(env, cb, 0, 5);
  try {
    const strait::Env* e = GetEnv(Napi::Env(env));
    if (info.Length() < 4) throw Napi::TypeError::New(env, std::string(fn) + ": arguments must be (method, path, authority, extra[, neverIndexed])");
    const double* a = CallArgsTable(env, kQhCount, fn);
    HeldCall c;
    if (!IntIn(a[kQhDownStream], 1, INT32_MAX, &c.down_id) || !IntIn(a[kQhSame], 0, 15, &c.same) || !IntIn(a[kQhRuns], 0, INT32_MAX, &c.n_runs) || !IntIn(a[kQhPairs], 1, INT32_MAX, &c.pairs))
      throw Napi::RangeError::New(env, std::string(fn) + ": the call-args table's downStream and pairs must be positive integers, same in [0, 15], nRuns an integer not negative");
    c.extra_gen = ExtraGen(e, (c.same & kSameExtraGen) != 0, kQhExtraGen);
    Session* self = ByNumber(a[kQhSession]);
    if (!self || !self->client_) throw Napi::TypeError::New(env, std::string(fn) + ": no client session has the number given");
    c.end = a[kQhEnd] != 0;
    c.fill = a[kQhFillId] != 0;
    c.never = NeverArg(info, 4, self->never_scratch_, fn);
    if (self->finished_ || self->closing_) return Napi::Number::New(env, 0);
    Session* down = ByNumber(a[kQhDownSession]);
    c.ds = down && !down->client_ && !down->finished_ ? down->StreamOf(c.down_id) : nullptr;
    if (!c.ds || c.ds->req.empty()) return Napi::Number::New(env, kNotHeld);
    const strait::Env::Table& rt = e->tables[kTableRuns];
    c.runs = rt.type == napi_int32_array ? static_cast<const int32_t*>(rt.data) : nullptr;
    if (c.runs == nullptr) throw Napi::TypeError::New(env, std::string(fn) + ": no Int32Array is registered as the runs table");
    c.runs_len = rt.len;
    for (int k = 0; k < 3; k++) c.pseudo[k] = info[k];
    c.extra = info[3];
    return self->RequestHeldWith(Napi::Env(env), c, fn);
  } catch (const Napi::Error& err) {
    err.ThrowAsJavaScriptException();
    return nullptr;
  }
}

Napi::Value Session::RequestHeldWith(Napi::Env env, const HeldCall& c, const char* fn) {
  if (size_t(c.n_runs) * 2 > c.runs_len) throw Napi::RangeError::New(env, std::string(fn) + ": nRuns out of range");
  const HeaderBlock& b = c.ds->req;
  const char* hd = b.data();
  const int32_t* f = b.fields();
  const size_t nf = b.fieldEntries() / 3;
  std::string& out = scratch_;
  out.clear();
  nva_.clear();
  static const char kScheme[] = ":scheme\0http";
  struct Pseudo {
    const char* name;  // with its NUL
    size_t len;
    int32_t token;
  };
  static const Pseudo kPseudo[3] = {{":method", sizeof ":method", kTokMethod}, {":path", sizeof ":path", kTokPath}, {":authority", sizeof ":authority", kTokAuthority}};
  if ((c.same & 7) == 7) {
    // The request's own three values, the usual case (pseudo-headers lead the block, so the walks
    // are short): sized first and copied into one resize, not eight appends (~60 instructions each).
    const char* pv[3];
    size_t pl[3];
    size_t total = sizeof kScheme;
    for (int k = 0; k < 3; k++) {
      size_t j = 0;
      while (j < nf && f[3 * j + 2] != kPseudo[k].token) j++;
      if (j == nf) return Napi::Number::New(env, kNotHeld);
      const size_t v = static_cast<size_t>(f[3 * j]) + 1;
      pv[k] = hd + v;
      pl[k] = static_cast<size_t>(f[3 * j + 1]) - v;
      total += kPseudo[k].len + pl[k] + 1;
    }
    out.resize(total);
    char* w = &out[0];
    size_t at = 0;
    for (int k = 0; k < 3; k++) {
      memcpy(w + at, kPseudo[k].name, kPseudo[k].len);
      memcpy(w + at + kPseudo[k].len, pv[k], pl[k]);
      const size_t end = at + kPseudo[k].len + pl[k];
      w[end] = '\0';
      OffsetField(nva_, at, at + kPseudo[k].len - 1, end);
      at = end + 1;
    }
    memcpy(w + at, kScheme, sizeof kScheme);  // ":scheme", NUL, "http", NUL
    OffsetField(nva_, at, at + sizeof ":scheme" - 1, at + sizeof kScheme - 1);
  } else {
    for (int k = 0; k < 3; k++) {
      const size_t ns = out.size();
      out.append(kPseudo[k].name, kPseudo[k].len);
      if (c.same & (1 << k)) {
        size_t j = 0;
        while (j < nf && f[3 * j + 2] != kPseudo[k].token) j++;
        if (j == nf) return Napi::Number::New(env, kNotHeld);
        const size_t v = static_cast<size_t>(f[3 * j]) + 1;
        out.append(hd + v, static_cast<size_t>(f[3 * j + 1]) - v);
      } else if (!AppendLatin1(env, c.pseudo[k], out)) {
        throw Napi::TypeError::New(env, std::string(fn) + ": method, path and authority must be strings");
      }
      OffsetField(nva_, ns, ns + kPseudo[k].len - 1, out.size());
      out.push_back('\0');
    }
    const size_t scheme = out.size();
    out.append(kScheme, sizeof kScheme);  // ":scheme", NUL, "http", NUL
    OffsetField(nva_, scheme, scheme + sizeof ":scheme" - 1, out.size() - 1);
  }

  AppendHeldRuns(env, b, c.runs, c.n_runs, out, fn);
  const size_t fixed = nva_.size();
  const size_t extra_at = out.size();
  if (!AppendKeptExtra(env, c.extra, c.extra_gen, env_->h2_extra[0], out)) throw Napi::TypeError::New(env, std::string(fn) + ": extra must be a string");

  Stream* s = NewStream();
  s->head.swap(scratch_);  // kept until sent, as in SubmitRequest
  seed_unique_ = client_ && (lists_++ & (kSeedEvery - 1)) == 0;
  Rebase(reinterpret_cast<uint8_t*>(&s->head[0]), fixed, 4);
  // The request id is filled after the scan, in place (same length, hex digits and dashes): the
  // added pairs are then the same bytes request after request.
  if (!ParseFlatKept(memos_[kMemoRequestExtra], &s->head[0], extra_at, s->head.size()) || nva_.size() != static_cast<size_t>(c.pairs)) {
    Recycle(s);
    throw Napi::TypeError::New(env, std::string(fn) + ": invalid header name or value");
  }
  if (c.fill) FillListRequestId(env_, s->head);
  ApplyNever(c.never);
  return SubmitStream(env, s, c.end);
}

bool HeldRequest(double sid, int32_t stream, HeldRequestView* out) {
  Session* down = Session::ByNumber(sid);
  Session::Stream* ds = down && !down->client_ && !down->finished_ ? down->StreamOf(stream) : nullptr;
  if (!ds || ds->req.empty()) return false;
  const HeaderBlock& b = ds->req;
  out->data = b.data();
  out->list = b.listSize();
  out->fields = b.fields();
  out->entries = b.fieldEntries();
  static const int32_t kTok[3] = {kTokMethod, kTokPath, kTokAuthority};
  for (int k = 0; k < 3; k++) {
    out->pseudo[k] = nullptr;
    out->pseudo_len[k] = 0;
  }
  // Pseudo-headers lead the block: the walk stops at the first regular field.
  const int32_t* f = b.fields();
  size_t start = 0;
  for (size_t j = 0; j < b.fieldEntries() / 3 && start < out->list && out->data[start] == ':'; j++) {
    for (int k = 0; k < 3; k++) {
      if (f[3 * j + 2] != kTok[k]) continue;
      const size_t v = static_cast<size_t>(f[3 * j]) + 1;
      out->pseudo[k] = out->data + v;
      out->pseudo_len[k] = static_cast<size_t>(f[3 * j + 1]) - v;
    }
    start = static_cast<size_t>(f[3 * j + 1]) + 1;
  }
  return true;
}

static void JoinRuns(const Args& info, strait::Env* e, size_t src_at, size_t runs_at, size_t extra_at, std::string& src, std::string& out, const char* fn) {
  napi_env env = info.Env();
  size_t runs_len = 0;
  const int32_t* runs = nullptr;
  if (!RunsOf(env, e, info[runs_at], &runs, &runs_len)) throw Napi::TypeError::New(env, std::string(fn) + ": runs must be an Int32Array, or null for the runs table");
  const int32_t n_runs = ArgInt(info, runs_at + 1, fn, "nRuns", 0, INT32_MAX);
  if (size_t(n_runs) * 2 > runs_len) throw Napi::RangeError::New(env, std::string(fn) + ": nRuns out of range");
  char stack[kStackLatin1];
  size_t src_len = 0;
  const char* sp = ReadLatin1(env, info[src_at], stack, src, &src_len);
  if (!sp) throw Napi::TypeError::New(env, std::string(fn) + ": src must be a string");
  for (int32_t k = 0; k < n_runs; k++) {
    const int32_t a = runs[2 * k], b = runs[2 * k + 1];
    if (a < 0 || b < a || size_t(b) > src_len) throw Napi::RangeError::New(env, std::string(fn) + ": a run is outside src");
    out.append(sp + a, size_t(b - a));
    if (size_t(b) == src_len) out.push_back('\0');
  }
  if (!AppendLatin1(env, info[extra_at], out)) throw Napi::TypeError::New(env, std::string(fn) + ": extra must be a string");
}

// The rest of request() and requestRuns() once scratch_ holds the list.
Napi::Value Session::SubmitRequest(Napi::Env env, int32_t pairs, bool end, const std::string* never, const char* fn) {
  if (finished_ || closing_) return Napi::Number::New(env, 0);
  Stream* s = NewStream();
  s->head.swap(scratch_);  // kept until sent, as in SubmitResponse
  if (!ParseFlat(s->head, never) || nva_.size() != static_cast<size_t>(pairs)) {
    Recycle(s);
    throw Napi::TypeError::New(env, std::string(fn) + ": invalid header name or value");
  }
  return SubmitStream(env, s, end);
}

Napi::Value Session::SubmitStream(Napi::Env env, Stream* s, bool end) {
  s->eof = end;
  int32_t id;
  if (end) {
    id = nghttp2_submit_request(session_, nullptr, nva_.data(), nva_.size(), nullptr, s);
  } else {
    nghttp2_data_provider dp;
    dp.source.ptr = s;
    dp.read_callback = Callbacks::Read;
    id = nghttp2_submit_request(session_, nullptr, nva_.data(), nva_.size(), &dp, s);
  }
  if (id < 0) {
    Recycle(s);
    return Napi::Number::New(env, id);
  }
  s->id = id;
  unsent_.push_back(s);
  by_id_[SlotOf(id)] = s;  // JavaScript's next call (its body) asks before nghttp2 knows the stream
  s->next = streams_;
  if (streams_) streams_->prev = s;
  streams_ = s;
  open_streams_++;
  streams_total_++;
  ScheduleFlush();
  return Napi::Number::New(env, id);
}

// data(streamId, Buffer | null, endStream) -> boolean: false once the stream holds
// streamHighWaterMark bytes or more (then a kEvDrain event follows when it falls below).
Napi::Value Session::Data(const Args& info) {
  Stream* s = StreamArg(info, "H2Session.data");
  if (!s || s->eof) return Napi::Boolean::New(info.Env(), true);  // gone: the bytes have nowhere to go
  return DataWith(info.Env(), s, info[1], ArgBool(info, 2), "H2Session.data");
}

// The call-args slots of dataArgs and trailersArgs: the session and stream, then the call's own;
// dataArgs' bytes from a data pool (kDataFromPool) after them.
enum { kCaSession = 0, kCaStream = 1, kCaThird = 2, kCaPoolGen = 3, kCaPoolOff = 4, kCaPoolLen = 5 };
// dataArgs' kCaThird bit past endStream's: the chunk is not an argument but the bytes at
// kCaPoolOff of the data pool numbered kCaPoolGen (the number a batch named), kCaPoolLen long.
static constexpr uint32_t kDataFromPool = 2;
// What dataArgs returns for bytes of a pool that is not the environment's any more: the caller
// passes them as a Buffer instead.
static constexpr int32_t kDataNotInPool = -1;

// The session CALL_ARGS names (slot kCaSession) and its stream (slot kCaStream), null when the
// stream is gone or the session finished; throws for numbers out of range or no such session.
Session::Stream* Session::CallArgsStream(napi_env env, const double* a, const char* fn, Session** self) {
  int32_t id;
  if (!IntIn(a[kCaStream], 1, INT32_MAX, &id)) throw Napi::RangeError::New(env, std::string(fn) + ": the call-args table's streamId must be a positive integer");
  Session* o = ByNumber(a[kCaSession]);
  if (!o) throw Napi::TypeError::New(env, std::string(fn) + ": no session has the number given");
  *self = o;
  return o->finished_ ? nullptr : o->StreamOf(id);
}

// dataArgs(chunk) -> as data(). Numbers in the call-args table: [session, streamId, endStream],
// endStream + kDataFromPool: dataArgs() -> as data() with the pool bytes the slots after name,
// or kDataNotInPool.
napi_value Session::DataArgs(napi_env env, napi_callback_info cb) {
  const char* fn = "H2Session.dataArgs";
  Args info(env, cb, 0, 1);
  try {
    const double* a = CallArgsTable(env, 3, fn);
    Session* self = nullptr;
    Stream* s = CallArgsStream(env, a, fn, &self);
    const double third = a[kCaThird];
    if (third == kDataFromPool || third == kDataFromPool + 1) {
      int32_t gen, off, len;
      if (!IntIn(a[kCaPoolGen], 0, INT32_MAX, &gen) || !IntIn(a[kCaPoolOff], 0, INT32_MAX, &off) || !IntIn(a[kCaPoolLen], 0, INT32_MAX, &len))
        throw Napi::RangeError::New(env, std::string(fn) + ": the call-args table's pool number, offset and length must be integers not negative");
      if (!s || s->eof) return Napi::Boolean::New(env, true);
      const strait::Env* e = self->env_;
      if (gen == 0 || static_cast<uint32_t>(gen) != e->data_pool_gen || size_t(off) + size_t(len) > e->data_pool_used) return Napi::Number::New(env, kDataNotInPool);
      s->out.append(reinterpret_cast<const char*>(e->data_pool_mem) + off, len);
      return self->DataQueued(Napi::Env(env), s, third == kDataFromPool + 1);
    }
    if (!s || s->eof) return Napi::Boolean::New(env, true);
    return self->DataWith(Napi::Env(env), s, info[0], third != 0, fn);
  } catch (const Napi::Error& err) {
    err.ThrowAsJavaScriptException();
    return nullptr;
  }
}

Napi::Value Session::DataWith(Napi::Env env, Stream* s, Napi::Value chunk, bool end, const char* fn) {
  // One napi_get_typedarray_info: IsBuffer, IsTypedArray and a Uint8Array's constructor made three.
  napi_typedarray_type type;
  size_t len = 0;
  void* p = nullptr;
  if (napi_get_typedarray_info(env, chunk, &type, &len, &p, nullptr, nullptr) == napi_ok) {
    if (type != napi_uint8_array) throw Napi::TypeError::New(env, std::string(fn) + ": chunk must be a Buffer or null");
    if (len) s->out.append(static_cast<const char*>(p), len);
  } else if (!chunk.IsNull() && !chunk.IsUndefined()) {
    throw Napi::TypeError::New(env, std::string(fn) + ": chunk must be a Buffer or null");
  }
  return DataQueued(env, s, end);
}

// The rest of data() once the chunk is in s->out.
Napi::Value Session::DataQueued(Napi::Env env, Stream* s, bool end) {
  if (end) s->eof = true;
  if (s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(session_, s->id);
  }
  ScheduleFlush();
  if (s->pending() >= stream_high_water_) {
    s->want_drain = true;
    return Napi::Boolean::New(env, false);
  }
  return Napi::Boolean::New(env, true);
}

// trailers(streamId, "name\0value\0..." | bytes, pairs[, byteLength[, neverIndexed]]): ends the body with these trailers
// (0 pairs = none); `neverIndexed` as respond()'s. Parsed here, once: ReadData submits the fields.
Napi::Value Session::Trailers(const Args& info) {
  Napi::Env env = info.Env();
  Stream* s = StreamArg(info, "H2Session.trailers");
  int32_t pairs = ArgInt(info, 2, "H2Session.trailers", "pairs", 0, INT32_MAX);
  const std::string* never = NeverArg(info, 4, never_scratch_, "H2Session.trailers");
  if (!s || s->eof) return env.Undefined();
  if (!FlatArg(info, 1, 3, s->trailers)) {
    s->trailers.clear();
    throw Napi::TypeError::New(env, "H2Session.trailers: trailers must be a string or a Uint8Array with its length");
  }
  return TrailersWith(env, s, pairs, never, "H2Session.trailers");
}

// trailersArgs(trailers "name\0value\0..."[, neverIndexed]) -> as trailers(), the list a string.
// Numbers in the call-args table: [session, streamId, pairs].
napi_value Session::TrailersArgs(napi_env env, napi_callback_info cb) {
  const char* fn = "H2Session.trailersArgs";
  Args info(env, cb, 0, 2);
  try {
    const double* a = CallArgsTable(env, 3, fn);
    Session* self = nullptr;
    Stream* s = CallArgsStream(env, a, fn, &self);
    int32_t pairs;
    if (!IntIn(a[kCaThird], 0, INT32_MAX, &pairs)) throw Napi::RangeError::New(env, std::string(fn) + ": the call-args table's pairs must be an integer not negative");
    const std::string* never = NeverArg(info, 1, self->never_scratch_, fn);
    if (!s || s->eof) return Napi::Env(env).Undefined();
    if (!Latin1Arg(info, 0, s->trailers)) {
      s->trailers.clear();
      throw Napi::TypeError::New(env, std::string(fn) + ": trailers must be a string");
    }
    return self->TrailersWith(Napi::Env(env), s, pairs, never, fn);
  } catch (const Napi::Error& err) {
    err.ThrowAsJavaScriptException();
    return nullptr;
  }
}

// The rest of trailers() once s->trailers holds the list.
Napi::Value Session::TrailersWith(Napi::Env env, Stream* s, int32_t pairs, const std::string* never, const char* fn) {
  // ParseFlat, with the list kept: a gRPC status's trailers repeat.
  nva_.clear();
  seed_unique_ = client_ && (lists_++ & (kSeedEvery - 1)) == 0;
  if (!ParseFlatKept(memos_[kMemoTrailers], &s->trailers[0], 0, s->trailers.size()) || nva_.size() != static_cast<size_t>(pairs)) {
    s->trailers.clear();
    throw Napi::TypeError::New(env, std::string(fn) + ": invalid header name or value");
  }
  ApplyNever(never);
  // Kept for the submission (ReadData): its fields point into s->trailers, which stays as it
  // is until then, so the list is not parsed a second time.
  s->trailers_nva.assign(nva_.begin(), nva_.end());
  s->has_trailers = pairs > 0;
  s->eof = true;
  if (s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(session_, s->id);
  }
  ScheduleFlush();
  return env.Undefined();
}

Napi::Value Session::Rst(const Args& info) {
  int32_t id = ArgInt(info, 0, "H2Session.rst", "streamId", 1, INT32_MAX);
  uint32_t code = static_cast<uint32_t>(ArgInt(info, 1, "H2Session.rst", "code", 0, INT32_MAX));
  if (finished_) return info.Env().Undefined();
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code);
  ScheduleFlush();
  return info.Env().Undefined();
}

// consume(streamId, bytes): JavaScript has taken these bytes: the peer may send as many more.
Napi::Value Session::Consume(const Args& info) {
  int32_t id = ArgInt(info, 0, "H2Session.consume", "streamId", 1, INT32_MAX);
  int32_t n = ArgInt(info, 1, "H2Session.consume", "bytes", 0, INT32_MAX);
  if (finished_ || !StreamOf(id)) return info.Env().Undefined();
  nghttp2_session_consume_stream(session_, id, static_cast<size_t>(n));
  ScheduleFlush();
  return info.Env().Undefined();
}

// close(): graceful. GOAWAY naming the last stream we took; the session ends when those end.
Napi::Value Session::Close(const Napi::CallbackInfo& info) {
  if (finished_ || closing_) return info.Env().Undefined();
  closing_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR, nullptr, 0);
  ScheduleFlush();
  return info.Env().Undefined();
}

// goaway(code): GOAWAY with this code, and the end once it is written.
Napi::Value Session::Goaway(const Napi::CallbackInfo& info) {
  uint32_t code = static_cast<uint32_t>(ArgInt(info, 0, "H2Session.goaway", "code", 0, INT32_MAX));
  if (finished_) return info.Env().Undefined();
  nghttp2_session_terminate_session(session_, code);
  ScheduleFlush();
  return info.Env().Undefined();
}

// destroy(): ends now; the session-end event runs before destroy() returns.
Napi::Value Session::Destroy(const Napi::CallbackInfo& info) {
  Finish(kEndLocal, true);
  return info.Env().Undefined();
}

Napi::Value Session::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  size_t queued = 0;
  for (Stream* s = streams_; s; s = s->next) queued += s->pending();
  o.Set("openStreams", static_cast<double>(open_streams_));
  o.Set("streamsTotal", static_cast<double>(streams_total_));
  o.Set("outputBytes", static_cast<double>(out_pending_));
  o.Set("queuedBodyBytes", static_cast<double>(queued));
  o.Set("rejectedHeaders", static_cast<double>(rejected_total_));
  o.Set("malformedMessages", static_cast<double>(malformed_total_));
  return o;
}

}  // namespace http2
}  // namespace strait
