// A downstream HTTP/2 server session (h2c) run by nghttp2 in C++ on an fd the session owns:
// uv_poll, reads through a pooled chunk, nghttp2_session_mem_recv, output gathered into pooled
// chunks and written with one sendmsg per flush. JavaScript hears from it once per read batch
// (everything decoded in that batch in one array) and talks back with a few plain methods.
//
// nghttp2 comes from the system headers (libnghttp2-dev) but at run time the symbols resolve to
// the copy inside the node binary, which exports them (Node 20 ships nghttp2 1.5x-1.6x). Only
// the stable public C API is used (session/mem_recv/mem_send/submit_*), unchanged across
// 1.4x-1.6x, so building against Debian's 1.52 and running on Node's 1.61 is fine.
#pragma once
#include <napi.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "io/buffer_pool.h"
#include "io/env.h"
#include "io/js_util.h"
#include "io/poller.h"
#include "http2/message_check.h"

namespace strait {
namespace http2 {

// Event kinds of a batch, 3 uint32 slots each: [kind, streamId, payload], written into the
// session's Uint32Array (opts.events) and handed over as onEvents(count, objects, data, fresh).
// Strings travel in `objects` (payload: their index), DATA bytes in one Buffer per batch (`data`,
// payload: the chunk's length, chunks in event order): no JavaScript value per event. Mirrors
// H2Event in src/protocols/http2/native_session.ts.
enum EventKind {
  kEvHeaders = 1,     // payload: index in objects of "name\0value\0..." (latin1), request headers
  kEvHeadersEnd = 2,  // same, and the HEADERS frame carried END_STREAM
  kEvData = 3,        // payload: byte length; the bytes are the next ones of the batch's data Buffer.
                      // JavaScript zeroes it to keep the bytes unconsumed (it calls consume() later)
  kEvEnd = 4,         // the request side ended (DATA or trailers with END_STREAM)
  kEvClose = 5,       // the stream is gone; payload: error code (0 = NO_ERROR)
  kEvDrain = 6,       // the stream's queued response bytes fell below the mark again
  kEvGoaway = 7,      // the peer sent GOAWAY; payload: error code
  kEvIdle = 8,        // no byte moved either way for idleTimeoutMs
  kEvSessionEnd = 9,  // last event ever; payload: SessionEndReason
  // Client mode only.
  kEvTrailers = 10,  // payload: index in objects of the response trailers' "name\0value\0..." (kEvEnd follows)
  kEvSettings = 11,  // the peer's SETTINGS arrived; payload: its max_concurrent_streams
  // Both modes, only for a block that had any: the names of the fields the peer sent as HPACK
  // "never indexed" literals, "name\0name..." (payload: index in objects), right before the
  // kEvHeaders/kEvHeadersEnd/kEvTrailers event of that block. RFC 7541 §7.1.3: a proxy must send
  // them on never indexed too, so JavaScript hands them back with the next hop's list.
  kEvNeverIndexed = 12,
};

// The payload of a kEvHeaders/kEvHeadersEnd/kEvTrailers event whose block has the same bytes as
// the last one of its kind this session handed over (a client's response head or trailers, a
// server's request head): JavaScript takes the string it got then instead of a new one
// (KEPT_LIST in src/protocols/http2/native_session.ts).
constexpr uint32_t kKeptList = 0xffffffffu;

// The names JavaScript's passes over a header list look for (FieldToken in
// src/protocols/http2/native_session.ts mirrors these). Each field of a block delivered to
// JavaScript comes with its token and the offsets of its two NULs (the field table): telling a
// name by comparing it in JavaScript costs ~35 instructions a character (V8 checks both strings'
// representation at each), and finding the NULs ~100 per indexOf.
enum FieldToken : int32_t {
  kTokOther = 0,
  kTokMethod = 1,
  kTokPath = 2,
  kTokAuthority = 3,
  kTokScheme = 4,
  kTokStatus = 5,
  kTokPseudo = 6,  // any other name starting with ':'
  kTokHost = 7,
  kTokContentType = 8,
  kTokGrpcTimeout = 9,
  kTokTe = 10,
  kTokCookie = 11,
  kTokUpgrade = 12,
  kTokConnection = 13,
  kTokKeepAlive = 14,
  kTokRequestId = 15,
  kTokContentLength = 16,
  kTokHttp2Settings = 17,
  kTokForwardedFor = 18,
  kTokProxyConnection = 19,
  kTokTransferEncoding = 20,
  kTokForwardedProto = 21,
  kTokOriginalPath = 22,  // x-envoy-original-path
  kTokClientCert = 23,    // x-forwarded-client-cert
  kTokDate = 24,
  kTokServer = 25,
  kTokGrpcContentType = 26,  // content-type whose value starts with application/grpc
  kTokTeTrailers = 27,       // te: trailers (the only te HTTP/2 allows)
  kTokDropped = 28,          // a field CheckBlock leaves out (never seen outside it)
};

// A header block being received, "name\0value\0..." for JavaScript. Its fields arrive one at a
// time (~15 per request, each way): std::string's append and push_back made four calls and four
// capacity checks of each, ~130 instructions a field; this makes one check and two copies.
class HeaderBlock {
 public:
  HeaderBlock() = default;
  HeaderBlock(const HeaderBlock&) = delete;
  HeaderBlock& operator=(const HeaderBlock&) = delete;
  ~HeaderBlock() {
    free(p_);
    free(f_);
  }
  const char* data() const { return p_ ? p_ : ""; }
  void swap(HeaderBlock& o) {
    std::swap(p_, o.p_);
    std::swap(f_, o.f_);
    std::swap(n_, o.n_);
    std::swap(cap_, o.cap_);
    std::swap(fn_, o.fn_);
    std::swap(fcap_, o.fcap_);
  }
  size_t size() const { return n_; }
  size_t capacity() const { return cap_; }
  bool empty() const { return n_ == 0; }
  void clear() { n_ = fn_ = 0; }
  // Gives the memory back (a block over the limits is dropped).
  void release() {
    free(p_);
    free(f_);
    p_ = nullptr;
    f_ = nullptr;
    n_ = cap_ = fn_ = fcap_ = 0;
  }
  // The list without its last NUL, as JavaScript takes it.
  size_t listSize() const { return n_ ? n_ - 1 : 0; }
  // The field table: three entries per field (Append).
  const int32_t* fields() const { return f_; }
  int32_t* mutableFields() { return f_; }
  size_t fieldEntries() const { return fn_; }
  // Appends a field and its row of the field table: the offsets of the NULs after its name and
  // after its value (for the last field, the list's length as JavaScript has it), its token.
  // In line: once OnHeader grew the trailers' checks, the compiler called it (~25 instructions
  // a field).
  __attribute__((always_inline)) void Append(const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen, int32_t token) {
    if (fn_ + 3 > fcap_) GrowFields();
    int32_t* f = f_ + fn_;
    f[0] = static_cast<int32_t>(n_ + namelen);
    f[1] = static_cast<int32_t>(n_ + namelen + 1 + valuelen);
    f[2] = token;
    fn_ += 3;
    const size_t need = n_ + namelen + valuelen + 2;
    if (need > cap_) Grow(need);
    char* d = p_ + n_;
    Copy(d, name, namelen);
    d[namelen] = '\0';
    Copy(d + namelen + 1, value, valuelen);
    d[namelen + 1 + valuelen] = '\0';
    n_ = need;
  }

 private:
  // Names and most values are under 17 bytes: two overlapping word copies in line, where
  // memcpy through the PLT cost ~25 instructions a call, two calls a field.
  static void Copy(char* d, const uint8_t* s, size_t n) {
    uint64_t a, b;
    uint32_t c, e;
    if (n > 16) {
      memcpy(d, s, n);
    } else if (n >= 8) {
      memcpy(&a, s, 8);
      memcpy(&b, s + n - 8, 8);
      memcpy(d, &a, 8);
      memcpy(d + n - 8, &b, 8);
    } else if (n >= 4) {
      memcpy(&c, s, 4);
      memcpy(&e, s + n - 4, 4);
      memcpy(d, &c, 4);
      memcpy(d + n - 4, &e, 4);
    } else {
      for (size_t i = 0; i < n; i++) d[i] = static_cast<char>(s[i]);
    }
  }
  void Grow(size_t need) {
    size_t cap = cap_ ? cap_ * 2 : 512;
    if (cap < need) cap = need;
    char* p = static_cast<char*>(realloc(p_, cap));
    if (!p) throw std::bad_alloc();
    p_ = p;
    cap_ = cap;
  }
  void GrowFields() {
    size_t cap = fcap_ ? fcap_ * 2 : 48;
    auto* f = static_cast<int32_t*>(realloc(f_, cap * sizeof(int32_t)));
    if (!f) throw std::bad_alloc();
    f_ = f;
    fcap_ = cap;
  }
  char* p_ = nullptr;
  size_t n_ = 0;
  size_t cap_ = 0;
  int32_t* f_ = nullptr;
  size_t fn_ = 0;
  size_t fcap_ = 0;
};

// Mirrors H2SessionEnd in src/protocols/http2/native_session.ts.
enum SessionEndReason { kEndDone = 0, kEndProtocolError = 1, kEndReset = 2, kEndLocal = 3 };

struct HeldRequestView;

// A FIFO of pointers with erase anywhere, cheap at the front: a vector and the index of its
// first live entry.
template <typename T>
class PtrQueue {
 public:
  size_t size() const { return v_.size() - head_; }
  bool empty() const { return v_.size() == head_; }
  T* operator[](size_t i) const { return v_[head_ + i]; }
  T* const* begin() const { return v_.data() + head_; }
  T* const* end() const { return v_.data() + v_.size(); }
  void push_back(T* p) { v_.push_back(p); }
  void erase(size_t i) {
    if (i == 0) {
      if (++head_ == v_.size()) clear();
      return;
    }
    v_.erase(v_.begin() + static_cast<ptrdiff_t>(head_ + i));
  }
  void clear() {
    v_.clear();
    head_ = 0;
  }
  void swap(PtrQueue& o) {
    v_.swap(o.v_);
    std::swap(head_, o.head_);
  }
  size_t capacity() const { return v_.capacity(); }

 private:
  std::vector<T*> v_;
  size_t head_ = 0;
};

class Session : public Napi::ObjectWrap<Session>, public LiveObject, public PollTarget {
 public:
  static Napi::Function Init(Napi::Env env);
  // new Session(fd, opts, initialBytes | null, onEvents(count, objects, data, fresh))
  explicit Session(const Napi::CallbackInfo& info);
  ~Session() override;
  void Abandon() override;

  struct Stream {
    int32_t id = 0;
    Stream* prev = nullptr;
    Stream* next = nullptr;
    HeaderBlock hdr;     // the header block being received
    // The block JavaScript got that the next hop's list is cut from, kept until the stream ends,
    // so that the call forwarding it copies these bytes and their field table instead of being
    // handed them back as a string and scanning them again. Server: the request (requestHeld of
    // a client session); client: the final response head (respondHeldArgs of a server session).
    HeaderBlock req;
    std::string head;    // the request or response head submitted, which nghttp2 points into until it is sent
    std::string never_in;  // "name\0..." of its fields sent never indexed; empty for most blocks
    uint32_t hdr_bytes = 0;  // RFC 9113 size (name + value + 32 per field)
    uint32_t hdr_pairs = 0;
    std::string out;     // response bytes JavaScript gave that nghttp2 has not taken yet
    size_t out_off = 0;
    std::string trailers;  // "name\0value\0..." sent after the body; empty = none
    std::vector<nghttp2_nv> trailers_nva;  // the fields of `trailers` (pointing into it), never-indexed ones marked
    bool responded = false;  // server: JavaScript responded; client: the final response arrived
    bool eof = false;       // JavaScript ended the body
    bool has_trailers = false;
    bool deferred = false;  // the data provider returned DEFERRED: resume on more bytes
    bool want_drain = false;
    bool rejected = false;  // its header block went over a limit: reset, never delivered
    bool malformed = false;  // a received message broke RFC 9113 §8: reset with PROTOCOL_ERROR
    MessageState msg;        // what was received of it so far, for those rules (message_check.h)
    size_t pending() const { return out.size() - out_off; }
  };
  using StreamQueue = PtrQueue<Stream>;

 private:
  // JavaScript → C++.
  Napi::Value Respond(const Args& info);
  Napi::Value RespondRuns(const Args& info);
  Napi::Value RespondSpans(const Args& info);
  Napi::Value RespondSpansTables(const Args& info);
  Napi::Value RespondH1Head(const Args& info);
  // respondH1Head's numbers once read, from arguments or from the call-args table.
  struct H1HeadCall {
    int32_t flat_len = 0, pairs = 0;
    bool drop_server = false, end = false, whole = false;
    size_t body_at = 0, body_len = 0;
  };
  static bool H1HeadTables(const strait::Env* e);
  Napi::Value RespondH1HeadWith(Napi::Env env, Stream* s, const H1HeadCall& c, const char* fn);
  // respondH1HeadArgs(): respondH1Head with its numbers in the call-args table.
  static napi_value RespondH1HeadArgs(napi_env env, napi_callback_info cb);
  void PushSpan(const uint8_t* h, size_t ns, size_t ne, size_t vs, size_t ve);
  // The fields respondH1Head forwards of the head the kTableHeadOut table holds, ready for
  // nghttp2: names lower-cased, a field's name then its value in `bytes`, where `fields` says.
  // nghttp2 copied and lower-cased every field of every response (~450 instructions an h2c
  // request); an upstream's responses repeat their head, so the copy made for the head the parse
  // stamp numbers `gen` (Env::http1_stamp; 0: none) serves its repeats, with the same drop_server.
  struct LoweredField {
    uint32_t name_at, name_len, value_at, value_len;
    uint8_t flags;
  };
  struct LoweredHead {
    uint64_t gen = 0;
    bool drop_server = false;
    std::string bytes;
    std::vector<LoweredField> fields;
  };
  // Appends `fields` to nva_, their offsets from `base`.
  void PushLowered(const std::vector<LoweredField>& fields, uint8_t* base);
  // lowered_ for the head in the tables, made unless it holds that head already; throws a
  // RangeError naming `fn` for a field outside the arena.
  const LoweredHead& LowerH1Head(Napi::Env env, const int32_t* out, size_t at, size_t count, bool drop_server, const char* fn);
  // Where respondSpans' and respondSpansTables' number arguments are (body: bodyAt, then bodyLen).
  struct SpansArgs {
    size_t flat_len, pairs, n_spans, end, body;
  };
  // Their rest, once the flat list, the head and the spans are found.
  Napi::Value SubmitSpans(const Args& info, const char* fn, const SpansArgs& at, Stream* s, const char* flat, size_t flat_cap, const uint8_t* head, size_t head_len,
                          const int32_t* spans, size_t spans_len);
  Napi::Value Request(const Args& info);
  Napi::Value RequestRuns(const Args& info);
  Napi::Value RequestHeld(const Args& info);
  // requestHeld's inputs once read, from arguments or from the call-args table.
  struct HeldCall {
    Stream* ds = nullptr;  // the downstream stream that holds the request
    int32_t down_id = 0, same = 0, pairs = 0, n_runs = 0;
    bool end = false, fill = false;
    const std::string* never = nullptr;
    const int32_t* runs = nullptr;
    size_t runs_len = 0;
    Napi::Value pseudo[3];  // method, path, authority (read only when not the request's own)
    Napi::Value extra;
    double extra_gen = 0;  // JavaScript's number for `extra` (requestHeldArgs), 0: none
  };
  Napi::Value RequestHeldWith(Napi::Env env, const HeldCall& c, const char* fn);
  // requestHeldArgs(method, path, authority, extra[, neverIndexed]): requestHeld with its numbers
  // in the call-args table.
  static napi_value RequestHeldArgs(napi_env env, napi_callback_info cb);
  // The fields of `b` in the [start, end) runs (offsets in its list as JavaScript has it), appended
  // to `out` and to nva_ with offsets into `out` for pointers (Rebase makes them pointers once
  // `out` has its final buffer); throws a RangeError naming `fn` for a run that is off the fields.
  void AppendHeldRuns(napi_env env, const HeaderBlock& b, const int32_t* runs, int32_t n_runs, std::string& out, const char* fn);
  // nva_[0, n)'s offsets into `base`'s string made pointers; from `from` on, the fields
  // UniquePerRequest names go never indexed (unless this list seeds them).
  void Rebase(uint8_t* base, size_t n, size_t from);
  // respondHeldArgs(extra[, neverIndexed]): respondRuns for a response head a client session of
  // this thread keeps for its stream (Stream::req), numbers in the call-args table.
  static napi_value RespondHeldArgs(napi_env env, napi_callback_info cb);
  friend bool HeldRequest(double sid, int32_t stream, HeldRequestView* out);
  // The session of this thread JavaScript numbers `sid` (its sid()), or null.
  static Session* ByNumber(double sid);
  Napi::Value SubmitResponse(Napi::Env env, Stream* s, int32_t pairs, bool end, const Napi::Value* body, const std::string* never, const char* fn);
  Napi::Value SubmitParsed(Napi::Env env, Stream* s, bool end, const char* body, size_t body_len);  // body null: none
  Napi::Value SubmitRequest(Napi::Env env, int32_t pairs, bool end, const std::string* never, const char* fn);
  // The rest of SubmitRequest once `s` holds the list and nva_ its fields.
  Napi::Value SubmitStream(Napi::Env env, Stream* s, bool end);
  Napi::Value Data(const Args& info);
  Napi::Value DataWith(Napi::Env env, Stream* s, Napi::Value chunk, bool end, const char* fn);
  Napi::Value DataQueued(Napi::Env env, Stream* s, bool end);
  Napi::Value Trailers(const Args& info);
  Napi::Value TrailersWith(Napi::Env env, Stream* s, int32_t pairs, const std::string* never, const char* fn);
  // dataArgs(chunk) and trailersArgs(trailers[, neverIndexed]): data() and trailers() (a string
  // list) with their numbers in the call-args table, [session, streamId, endStream | pairs].
  static napi_value DataArgs(napi_env env, napi_callback_info cb);
  static napi_value TrailersArgs(napi_env env, napi_callback_info cb);
  static Stream* CallArgsStream(napi_env env, const double* a, const char* fn, Session** self);
  Napi::Value Rst(const Args& info);
  Napi::Value Consume(const Args& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Goaway(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);

  // H2Session.calls: the calls made per request as functions shared by every session, each
  // taking the session's number (sid()) first. An instance method finds its C++ object through
  // napi_unwrap, a private-symbol lookup in V8's runtime (~600 instructions a call); functions
  // bound to each session, which this replaced, made each call site see as many targets as
  // there are connections, so V8 took its generic path into the addon for every call
  // (Builtin_HandleApiCall, ~250 instructions more than the direct call TurboFan emits for a
  // site that always calls one function).
  // `N`: the arguments M reads at most (after the session number); fewer slots to fill per call.
  template <Napi::Value (Session::*M)(const Args&), size_t N = Args::kMax>
  static napi_value Numbered(napi_env env, napi_callback_info cb);
  Napi::Value Sid(const Napi::CallbackInfo& info);
  // The same methods on the prototype.
  template <Napi::Value (Session::*M)(const Args&)>
  Napi::Value Via(const Napi::CallbackInfo& info) {
    return (this->*M)(Args(info));
  }
  // This session's slot in the thread's table of sessions (Numbered), and the number JavaScript
  // names it by: the slot, and the slot's generation above bit 20, so a number never names a
  // later session that reused the slot.
  uint32_t slot_ = 0;
  double sid_ = 0;

  // nghttp2 callbacks (static trampolines in session.cc call these).
  int OnBeginHeaders(const nghttp2_frame* f);
  int OnHeader(const nghttp2_frame* f, const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags);
  int OnFrameRecv(const nghttp2_frame* f);
  int OnDataChunk(uint8_t flags, int32_t id, const uint8_t* data, size_t len);
  int OnStreamClose(int32_t id, uint32_t code);
  int OnFrameSend(const nghttp2_frame* f);
  int OnFrameNotSend(const nghttp2_frame* f, int error);
  ssize_t ReadData(int32_t id, uint8_t* buf, size_t length, uint32_t* flags, Stream* hint);
  friend struct Callbacks;
  friend struct Spares;

  // The poller's events for the socket (PollTarget).
  void OnPollEvents(int status, int events) override { OnPoll(status, events); }
  void OnPoll(int status, int events);
  // Each returns false once the session has finished.
  bool ReadSocket();
  void Feed(const uint8_t* p, size_t n);
  bool Flush();
  bool WriteOut();
  void UpdateInterest();
  void ScheduleFlush();
  // Runs the scheduled flush (Poller::Defer): from the check or the prepare phase, whichever
  // comes first.
  void OnDeferred() override;
  void ArmIdle(uint64_t ms);
  void OnIdleTimer();
  // Events: the Push* add to the open batch (strings inside the current HandleScope); Emit hands
  // the batch to JavaScript in one call.
  void PushObj(int kind, int32_t id, napi_value payload);
  // A delivered block's field table, for the HEADERS, HEADERS_END or TRAILERS event just pushed.
  void PushFields(const HeaderBlock& b);
  void PushInt(int kind, int32_t id, uint32_t v);
  void PushData(int32_t id, const uint8_t* data, size_t len);
  // Opens the batch if none is, starting it with the held-back stream ends.
  void OpenBatch();
  void Emit();
  // Moves the open batch into onEvents' arguments: kFixedArgs (count, strings array or null, DATA
  // bytes, fresh slots or null, where the DATA starts in the bytes, the number of the data pool
  // they are in or 0), then the batch's strings when there are at most kArgStrings of them (else
  // the second argument is an array of them). `fresh`: into a new Uint32Array, never the shared
  // one (a batch made while JavaScript may still be reading the shared one). Sets *argc; returns
  // where the slots went (read back after the call: see Emit).
  static constexpr size_t kArgStrings = 1019;
  static constexpr size_t kFixedArgs = 6;
  static constexpr size_t kArgs = kFixedArgs + kArgStrings;
  uint32_t* TakeBatch(bool fresh, napi_value out[kArgs], size_t* argc);
  napi_value DataForJs(napi_env env, const std::string& bytes, uint32_t* base, uint32_t* gen);
  void Finish(SessionEndReason reason, bool from_js);
  void Release();
  // A hit in by_id_ answered inline (a gRPC request asks ~18 times); a miss goes out of line.
  Stream* StreamOf(int32_t id) {
    if (session_ != nullptr) {
      Stream* s = by_id_[SlotOf(id)];
      if (s != nullptr && s->id == id) return s;
    }
    return StreamOfMiss(id);
  }
  Stream* StreamOfMiss(int32_t id);
  Stream* StreamArg(const Args& info, const char* fn);
  // Parses "name\0value\0..." into nva_, names lowercased in place in `s`; false when malformed.
  // Fields named in `never` ("name\0name...", from a kEvNeverIndexed event) go never indexed.
  // nghttp2 is told not to copy the fields (NGHTTP2_NV_FLAG_NO_COPY_*): `s` must stay as it is
  // until the frame that carries them is sent or dropped, so it is a stream's own string
  // (Stream::head, Stream::trailers), which lives until the stream closes.
  bool ParseFlat(std::string& s, const std::string* never = nullptr);
  // ParseFlat's scan of s[from, end) appended to nva_ (no never-indexed pass).
  bool ParseFlatFrom(std::string& s, size_t from);
  // The same scan of d[from, n).
  bool ParseFlatIn(char* d, size_t from, size_t n);
  // A list a caller parsed last (FlatMemo): where the fields were and how its names were
  // lower-cased, so that the same bytes again are not scanned. Per call site, as each repeats
  // its own list (the pairs a proxy adds to a response or request, a gRPC status's trailers).
  struct FlatMemo {
    std::string src;      // the list as given
    std::string lowered;  // as the scan left it when it lower-cased a name, else empty
    std::vector<LoweredField> fields;  // offsets from the list's start
    bool seed = false;    // seed_unique_ at the time (the fields' flags depend on it)
    bool valid = false;
  };
  // respondH1Head's flat list, trailers, requestHeld's and respondHeld's added pairs.
  enum MemoSite { kMemoH1Flat, kMemoTrailers, kMemoRequestExtra, kMemoResponseExtra, kMemoSites };
  // ParseFlatIn(d, from, n) answered from `m` when d[from, n) is m's list, else scanned and kept.
  bool ParseFlatKept(FlatMemo& m, char* d, size_t from, size_t n);
  // Marks the fields of nva_ named in `never` never indexed.
  void ApplyNever(const std::string* never);
  void PushField(char* d, size_t start, size_t name_end, size_t value_end);
  // Emits the block's never-indexed names (kEvNeverIndexed), if any, and forgets them.
  void PushNeverIndexed(Stream* s);
  // Pushes a head or trailers event for `s`'s block, kKeptList when its bytes are `last`'s, else
  // a new string, whose bytes `last` then keeps.
  void PushReceived(int kind, Stream* s, std::string& last);
  // The bytes of the last head (a client's response head, a server's request head) and the last
  // trailers (client) handed over as strings, empty when JavaScript keeps none that kKeptList
  // may name. An upstream answers most requests with the same head (within a second of its date)
  // and the same trailers (a gRPC status 0), and a client repeats its request head where nothing
  // in it is per request; a compare then takes the place of a new string, and its garbage.
  std::string last_head_;
  std::string last_trailers_;
  void FreeStream(Stream* s);
  Stream* NewStream();
  void Recycle(Stream* s);
  void MaybeDrain(Stream* s);
  // A received message broke RFC 9113 §8: the stream is reset (PROTOCOL_ERROR) and nothing more
  // of it reaches JavaScript, as nghttp2 did when it checked (message_check.h).
  void Malformed(Stream* s);
  bool MessageDone(Stream* s, const nghttp2_frame* f, bool end);
  bool CheckBlock(Stream* s);
  static void DropFields(HeaderBlock& b);
  // Blocks up to this size are remembered as checked (BlockMemo).
  static constexpr size_t kMaxMemoBlock = 4096;
  bool Done();

  strait::Env* env_;
  int fd_ = -1;
  // The socket's watch in the environment's poller (io/poller.h), -1 when none.
  Poller* poller_ = nullptr;
  int32_t watch_ = -1;
  int events_ = 0;
  bool watch_failed_ = false;  // a change of the watch failed: the session ends (OnDeferred)
  bool flush_scheduled_ = false;
  uv_timer_t* idle_timer_ = nullptr;
  uint64_t idle_timeout_ms_ = 0;
  uint64_t last_activity_ = 0;
  nghttp2_session* session_ = nullptr;
  // Output: bytes mem_send produced, not yet written to the socket.
  Chunk* out_head_ = nullptr;
  Chunk* out_tail_ = nullptr;
  size_t out_pending_ = 0;
  size_t high_water_mark_ = 0;
  size_t stream_high_water_ = 0;
  uint32_t max_header_list_size_ = 0;
  uint32_t max_header_pairs_ = 0;
  // Client: request lists built (ParseFlat, requestHeld), and whether the one being built sends the
  // UniquePerRequest fields indexed (one in kSeedEvery, session.cc).
  uint32_t lists_ = 0;
  bool seed_unique_ = false;
  Stream* streams_ = nullptr;
  // StreamOf's answers by stream id, direct-mapped: ids of one side advance by two, so the
  // streams open at once rarely share a slot. A slot is cleared when its stream is recycled.
  static constexpr uint32_t kIdSlots = 256;
  static uint32_t SlotOf(int32_t id) { return (static_cast<uint32_t>(id) >> 1) & (kIdSlots - 1); }
  Stream** by_id_ = nullptr;  // kIdSlots entries, from the thread's spares (session.cc)
  // The stream whose header block is being received (OnBeginHeaders): OnHeader, called for
  // each of its fields, asks StreamOf only when the frame is another stream's.
  Stream* hdr_stream_ = nullptr;
  uint32_t open_streams_ = 0;
  bool finished_ = false;
  // Client mode (opts.client): the upstream side of a connection we opened. Streams are ours
  // (request()), the peer's HEADERS are responses and trailers, pushes are refused.
  bool client_ = false;
  // Client streams submitted whose HEADERS nghttp2 has not sent yet: it knows no stream (nor its
  // user data) until then, so lookups fall back to this short list. HEADERS go out in the order
  // they were submitted, so the one sent is nearly always the first, which this queue
  // drops by moving its start (a vector's erase moved every later entry: ~120 instructions a
  // request with 64 requests in flight). Not a std::deque: that allocates twice when made, so
  // once per connection.
  StreamQueue unsent_;
  bool closing_ = false;  // graceful close: GOAWAY sent, ends when the last stream does
  bool in_batch_ = false;  // inside OnPoll: the flush follows the JavaScript call anyway
  bool protocol_error_ = false;
  bool flushing_ = false;  // inside Flush's mem_send loop
  bool peer_eof_ = false;
  // The open batch: event slots, the strings (handles valid only inside the HandleScope of the
  // libuv callback that made them) and the DATA bytes.
  bool batch_open_ = false;
  std::vector<uint32_t> ev_;
  // The batch's field tables, one record per header block event in event order: its field count,
  // then Append's three entries per field, as many records as the JavaScript array `fields`
  // holds (shared by every session; entry 0: how many records it holds). TakeBatch copies them
  // there when the events go in the shared array too; JavaScript reads it only then.
  std::vector<int32_t> ftab_;
  Napi::Reference<Napi::Int32Array> ftab_ref_;
  int32_t* ftab_mem_ = nullptr;
  size_t ftab_cap_ = 0;
  size_t ftab_recs_ = 0;
  bool ftab_full_ = false;
  std::vector<napi_value> objs_;
  std::string data_;
  // Slot indexes of the DATA lengths in the open batch, and of the batch being delivered.
  std::vector<uint32_t> data_slots_;
  std::vector<uint32_t> consume_slots_;
  // opts.events: where a batch's slots are copied for JavaScript (null: a new array per batch).
  Napi::Reference<Napi::Uint32Array> ev_ref_;
  uint32_t* ev_mem_ = nullptr;
  size_t ev_cap_ = 0;  // in slots
  struct Deferred {
    int kind;
    int32_t id;
    uint32_t value;
  };
  std::vector<Deferred> deferred_;
  std::string initial_;  // bytes read while sniffing, fed on the first loop turn
  uint64_t rejected_total_ = 0;
  uint64_t malformed_total_ = 0;
  std::vector<nghttp2_nv> nva_;
  std::string scratch_;
  std::string never_scratch_;  // a respond()/request() call's never-indexed names
  std::string src_scratch_;    // requestRuns()/respondRuns(): the list their runs are cut from
  LoweredHead lowered_;        // respondH1Head's (LowerH1Head)
  // The lists ParseFlatKept keeps, one per call site (MemoSite).
  FlatMemo memos_[kMemoSites];
  uint64_t streams_total_ = 0;
  // The growable buffers above, kept from one session to the next on a thread (session.cc,
  // Spares): a new connection's batches, header lists and lookups otherwise grew each of them
  // from nothing, some twenty allocations a connection.
  struct Scratch {
    StreamQueue unsent;
    std::vector<uint32_t> ev;
    std::vector<int32_t> ftab;
    std::vector<napi_value> objs;
    std::string data;
    std::vector<uint32_t> data_slots;
    std::vector<uint32_t> consume_slots;
    std::vector<Deferred> deferred;
    std::vector<nghttp2_nv> nva;
    std::string scratch;
    std::string never_scratch;
    std::string src_scratch;
    LoweredHead lowered;
    FlatMemo memos[kMemoSites];
  };
  // Swaps the buffers with `x`'s: taken from the spares at construction, given back by
  // GiveScratch once the session's last batch is out (the end of Finish, or the destructor).
  void SwapScratch(Scratch& x);
  void GiveScratch();
  bool scratch_given_ = false;
  // What this session took from the spares (the spares' empty buffers, then its own at Release).
  Scratch* scratch_box_ = nullptr;
  struct Spares* spares_ = nullptr;  // the thread's (a thread_local reached once, not per stream)
  Napi::FunctionReference on_events_;
  Napi::AsyncContext async_;
};

// The request a server session of this thread (`sid`, its sid()) holds for its stream `stream`
// (requestHeld's block): the list's bytes as JavaScript got them (NUL-terminated, `list` long
// without the last NUL), its field table (three entries a field), and the values of :method,
// :path and :authority within it. False when that stream holds none (any more).
struct HeldRequestView {
  const char* data;
  size_t list;
  const int32_t* fields;
  size_t entries;
  const char* pseudo[3];  // :method, :path, :authority values (null: absent)
  size_t pseudo_len[3];
};
bool HeldRequest(double sid, int32_t stream, HeldRequestView* out);

}  // namespace http2
}  // namespace strait
