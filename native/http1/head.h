// HTTP/1.1 message-head parsing (RFC 9112) for the proxy's data path: one call per head that
// validates every byte and reports offsets into the caller's buffer. The same rules as
// src/protocols/http1/decoder.ts (the TypeScript fallback), kept byte-for-byte equivalent by a
// parity test: whitespace before a colon, obs-fold, bare CR, Content-Length with
// Transfer-Encoding, conflicting Content-Lengths and a non-final `chunked` are rejected.
#pragma once
#include <cstddef>
#include <cstdint>

namespace strait {
namespace http1 {

// Result slot values below 1 (a head ends at an offset > 0).
constexpr int32_t kNeedMore = 0;
constexpr int32_t kMalformed = -1;
constexpr int32_t kTooLarge = -2;

// Header kinds recognised while scanning (HeaderKind in src/protocols/http1/types.ts).
enum Kind : int32_t { kOther, kHost, kContentLength, kTransferEncoding, kConnection, kKeepAlive, kProxyConnection, kUpgrade, kExpect, kTe, kServer };

// Slots of the `out` Int32Array (HEAD_SLOT in src/protocols/http1/native_head.ts).
enum Slot : int32_t {
  kResult,       // offset just past the blank line, or kNeedMore / kMalformed / kTooLarge
  kMinor,        // 0 or 1
  kLineA,        // request: method start; response: status code
  kLineB,        // request: method end
  kLineC,        // request: target start
  kLineD,        // request: target end
  kFlags,        // kFlag* bits
  kClHi,         // Content-Length as two 32-bit halves; both -1 when absent
  kClLo,
  kHostStart,    // the (single) Host value; both -1 when absent
  kHostEnd,
  kFieldCount,   // headers; their 5-slot records follow from kFieldsAt
  kCopied,       // 1 when the head was copied into the caller's `copyTo` (offsets point there), else 0
  // A bound parser's request heads (ParseBoundWith): a number for the Host value's bytes and one
  // for the target's, the same as the previous head's when the bytes are, so that JavaScript
  // reuses the string it made then; 0 when not known (every other parse).
  kHostGen,
  kTargetGen,
  // Set by the caller before a parse: the slot where the field records go (and stay, for the
  // head writers' table reads). 0 (or below kFieldsAt): kFieldsAt. JavaScript moves it along a
  // large `out` so that each head keeps its records where the parser wrote them.
  kRecordsAt,
  kFieldsAt = 16,
};
constexpr int32_t kFieldSlots = 5;  // kind, name start, name end, value start, value end

// Where the field records of a parse into `out` start (kRecordsAt, at least kFieldsAt).
inline size_t RecordsAt(const int32_t* out) { return out[kRecordsAt] > kFieldsAt ? size_t(out[kRecordsAt]) : size_t(kFieldsAt); }

enum Flag : int32_t {
  kChunked = 1,
  kClose = 2,
  kKeepAliveFlag = 4,
  kUpgradeToken = 8,
  kHasUpgrade = 16,
  kExpectContinue = 32,
  // Responses only: fields a proxy adds or drops when it forwards the head to HTTP/2
  // (H2Session.respondH1Head), so that neither side has to look at the names again.
  kHasDate = 64,
  kHasServer = 128,
  kHasRequestId = 256,  // requests too
  kHasHttp2Settings = 512,
  // Requests only: fields the proxy replaces or appends to when it forwards the head
  // (encodeUpstreamHead in http1_session.ts), which would each cost a scan of the names there.
  kHasForwardedProto = 1024,
  kHasForwardedFor = 2048,
  kHasClientCert = 4096,
};

// Requests only: the method, when it is one of these, as a number in kFlags from bit
// kMethodShift (0: another method), so that JavaScript takes a constant string for it instead of
// comparing the bytes with each method name (~200 instructions a request head).
constexpr int32_t kMethodShift = 24;
enum Method : int32_t { kMethodOther, kMethodGet, kMethodPut, kMethodPost, kMethodHead, kMethodPatch, kMethodDelete, kMethodOptions, kMethodConnect, kMethodTrace };
// The number of the method m[0, n) (case-sensitive, as methods are), kMethodOther for any other.
// HTTP/2's message checks (native/http2/message_check.cc) ask it too.
int32_t MethodOf(const uint8_t* m, size_t n);

struct Limits {
  size_t max_head_bytes;
  size_t max_headers;
};

// Parses buf[off, end) as a request (or response) head; `out` has room for RecordsAt(out) +
// kFieldSlots * max_headers slots.
void ParseRequest(const uint8_t* buf, size_t off, size_t end, const Limits& limits, int32_t* out);
void ParseResponse(const uint8_t* buf, size_t off, size_t end, const Limits& limits, int32_t* out);

// Moves the offset slots among kMinor..kFieldCount of a parse's results by `d` (the head moved):
// a request's line offsets (a response's kLineA is its status) and the Host value's, which a
// response may have too (-1 when absent). Field records are not touched.
inline void MoveSlots(bool request, int32_t* slots, int32_t d) {
  if (request) {
    slots[kLineA] += d;
    slots[kLineB] += d;
    slots[kLineC] += d;
    slots[kLineD] += d;
  }
  if (slots[kHostStart] >= 0) {
    slots[kHostStart] += d;
    slots[kHostEnd] += d;
  }
}

// The last head of one kind (requests or responses) a parser parsed, with what the parse gave.
// A parse depends on nothing but the head's bytes and the limits, so a head with the same bytes
// gets the same answer, its offsets moved: a keep-alive client repeats its request head, and an
// upstream answering one URL its response head (but for Date, once a second). A full parse of
// such a response is ~1,000 instructions; a repeat costs a compare and a copy of the records.
struct HeadMemo {
  static constexpr size_t kMaxBytes = 512;
  static constexpr size_t kMaxFields = 24;
  size_t len = 0;  // the head's bytes, blank line included; 0: nothing kept
  uint64_t gen = 0;  // the caller's number for these bytes (ParseWithMemo's `gen` when kept)
  uint8_t bytes[kMaxBytes];
  // kMinor through kFieldCount as the parse left them, offsets made relative to the head's start.
  int32_t slots[kFieldCount + 1];
  int32_t records[kMaxFields * kFieldSlots];
};

// ParseRequest / ParseResponse through `memo`: answered from it when buf[off, ...) starts with the
// kept head's bytes (and the limits allow it), else parsed, and a head parsed whole replaces it.
// Whether it was answered from the memo. A head kept is given `gen` (memo.gen).
bool ParseWithMemo(HeadMemo& memo, bool request, const uint8_t* buf, size_t off, size_t end, const Limits& limits, int32_t* out, uint64_t gen);

}  // namespace http1
}  // namespace strait
