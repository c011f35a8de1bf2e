#include "http1/head.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace strait {
namespace http1 {

namespace {

constexpr uint8_t CR = 0x0d, LF = 0x0a, SP = 0x20, HTAB = 0x09, COLON = 0x3a;

struct Tables {
  uint8_t tchar[256] = {};
  uint8_t value_ok[256] = {};
  uint8_t target_ok[256] = {};
  uint8_t authority_ok[256] = {};
  constexpr Tables() {
    const char* extra = "!#$%&'*+-.^_`|~";
    for (const char* c = extra; *c; c++) tchar[uint8_t(*c)] = 1;
    for (int c = '0'; c <= '9'; c++) tchar[c] = 1;
    for (int c = 'A'; c <= 'Z'; c++) tchar[c] = 1;
    for (int c = 'a'; c <= 'z'; c++) tchar[c] = 1;
    for (int c = 0x20; c <= 0xff; c++) value_ok[c] = c == 0x7f ? 0 : 1;
    value_ok[HTAB] = 1;
    // No '#' in a request-target: a fragment is not part of one (see decoder.ts TARGET_OK).
    for (int c = 0x21; c <= 0xff; c++) target_ok[c] = c == 0x7f || c == '#' ? 0 : 1;
    // Host: what nghttp2 allows in :authority (see decoder.ts AUTHORITY_OK).
    const char* auth = "-._~!$&'()*+,;=:@[]%";
    for (const char* c = auth; *c; c++) authority_ok[uint8_t(*c)] = 1;
    for (int c = '0'; c <= '9'; c++) authority_ok[c] = 1;
    for (int c = 'A'; c <= 'Z'; c++) authority_ok[c] = 1;
    for (int c = 'a'; c <= 'z'; c++) authority_ok[c] = 1;
  }
};
constexpr Tables T;

inline uint8_t Lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? c | 0x20 : c; }

// The first p in [p, stop) whose byte is a control byte (<= `ctl_max`) or DEL, checked 16 bytes
// at a time; `stop` when there is none. Values and targets are long runs of plain bytes: the byte
// loops then cost ~1 ns a byte. A flagged byte may still be allowed (HTAB in a value): the caller's
// byte loop decides, exactly as before, and comes back here after it.
inline size_t SkipPlain(const uint8_t* b, size_t p, size_t stop, uint8_t ctl_max) {
#if defined(__SSE2__)
  const __m128i lim = _mm_set1_epi8(char(ctl_max));
  const __m128i del = _mm_set1_epi8(0x7f);
  while (p + 16 <= stop) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + p));
    // Unsigned v <= ctl_max is min(v, ctl_max) == v.
    const __m128i bad = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, lim), v), _mm_cmpeq_epi8(v, del));
    const int m = _mm_movemask_epi8(bad);
    if (m != 0) return p + size_t(__builtin_ctz(unsigned(m)));
    p += 16;
  }
#else
  (void)ctl_max;
#endif
  return p < stop ? p : stop;
}

// Skips the bytes of a field name that are letters, digits or '-' (most names hold nothing
// else), sixteen at a time; returns the first other byte's offset (the ':' for most names), or
// where fewer than sixteen bytes are left. The caller checks the rest a byte at a time.
inline size_t SkipNameChars(const uint8_t* b, size_t p, size_t stop) {
#if defined(__SSE2__)
  const __m128i case_bit = _mm_set1_epi8(0x20);
  const __m128i a = _mm_set1_epi8('a'), z = _mm_set1_epi8('z');
  const __m128i d0 = _mm_set1_epi8('0'), d9 = _mm_set1_epi8('9');
  const __m128i dash = _mm_set1_epi8('-');
  while (p + 16 <= stop) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + p));
    const __m128i l = _mm_or_si128(v, case_bit);
    // Unsigned lo <= x <= hi as max(x, lo) == x and min(x, hi) == x.
    const __m128i letter = _mm_and_si128(_mm_cmpeq_epi8(_mm_max_epu8(l, a), l), _mm_cmpeq_epi8(_mm_min_epu8(l, z), l));
    const __m128i digit = _mm_and_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, d0), v), _mm_cmpeq_epi8(_mm_min_epu8(v, d9), v));
    const __m128i ok = _mm_or_si128(_mm_or_si128(letter, digit), _mm_cmpeq_epi8(v, dash));
    const unsigned m = ~unsigned(_mm_movemask_epi8(ok)) & 0xffffu;
    if (m != 0) return p + size_t(__builtin_ctz(m));
    p += 16;
  }
#endif
  return p;
}

template <typename W>
inline W LoadWord(const void* p) {
  W w;
  memcpy(&w, p, sizeof w);
  return w;
}

// Case-insensitive compare of buf[s, e) with a lower-case literal of letters, digits and '-'.
// Words at a time, each byte of buf ORed with 0x20: that lower-cases a letter and leaves a digit
// or '-' as it is. It could only turn a byte that is not the literal's into one that is from
// a control byte (0x0d to '-', 0x10-0x19 to a digit), and the parser never passes one: these are
// field names (token characters) and parts of values (no control byte but HTAB, which becomes
// ')'). A byte at a time, this was ~500 instructions of an h2c request's ~1,470 in Fields.
bool EqLower(const uint8_t* buf, size_t s, size_t e, const char* lit, size_t n) {
  if (e - s != n) return false;
  const uint8_t* b = buf + s;
  if (n >= 8) {
    constexpr uint64_t kFold = 0x2020202020202020ull;
    // The first eight and the last eight (overlapping when n < 16); longer literals loop.
    size_t i = 0;
    for (; i + 8 < n; i += 8)
      if ((LoadWord<uint64_t>(b + i) | kFold) != LoadWord<uint64_t>(lit + i)) return false;
    return (LoadWord<uint64_t>(b + n - 8) | kFold) == LoadWord<uint64_t>(lit + n - 8);
  }
  if (n >= 4) {
    constexpr uint32_t kFold = 0x20202020u;
    return (LoadWord<uint32_t>(b) | kFold) == LoadWord<uint32_t>(lit) && (LoadWord<uint32_t>(b + n - 4) | kFold) == LoadWord<uint32_t>(lit + n - 4);
  }
  for (size_t i = 0; i < n; i++)
    if (Lower(b[i]) != uint8_t(lit[i])) return false;
  return true;
}
#define EQ(buf, s, e, lit) EqLower(buf, s, e, lit, sizeof(lit) - 1)

Kind Classify(const uint8_t* b, size_t s, size_t e) {
  switch (e - s) {
    case 2: return EQ(b, s, e, "te") ? kTe : kOther;
    case 4: return EQ(b, s, e, "host") ? kHost : kOther;
    case 6:
      if (EQ(b, s, e, "expect")) return kExpect;
      return EQ(b, s, e, "server") ? kServer : kOther;
    case 7: return EQ(b, s, e, "upgrade") ? kUpgrade : kOther;
    case 10:
      if (EQ(b, s, e, "connection")) return kConnection;
      return EQ(b, s, e, "keep-alive") ? kKeepAlive : kOther;
    case 14: return EQ(b, s, e, "content-length") ? kContentLength : kOther;
    case 16: return EQ(b, s, e, "proxy-connection") ? kProxyConnection : kOther;
    case 17: return EQ(b, s, e, "transfer-encoding") ? kTransferEncoding : kOther;
    default: return kOther;
  }
}

// A response field's kFlag* bit among kHasDate, kHasRequestId and kHasHttp2Settings, or 0 (server
// fields have a kind of their own, which sets kHasServer).
int32_t ResponseNameFlag(const uint8_t* b, size_t s, size_t e) {
  switch (e - s) {
    case 4: return EQ(b, s, e, "date") ? kHasDate : 0;
    case 12: return EQ(b, s, e, "x-request-id") ? kHasRequestId : 0;
    case 14: return EQ(b, s, e, "http2-settings") ? kHasHttp2Settings : 0;
    default: return 0;
  }
}

// A request field's kFlag* bit among kHasRequestId, kHasForwardedProto, kHasForwardedFor and
// kHasClientCert, or 0.
int32_t RequestNameFlag(const uint8_t* b, size_t s, size_t e) {
  switch (e - s) {
    case 12: return EQ(b, s, e, "x-request-id") ? kHasRequestId : 0;
    case 15: return EQ(b, s, e, "x-forwarded-for") ? kHasForwardedFor : 0;
    case 17: return EQ(b, s, e, "x-forwarded-proto") ? kHasForwardedProto : 0;
    case 23: return EQ(b, s, e, "x-forwarded-client-cert") ? kHasClientCert : 0;
    default: return 0;
  }
}

struct Framing {
  int64_t content_length = -1;
  int32_t flags = 0;
  int64_t host_start = -1, host_end = -1;
  int host_count = 0;
};

inline bool Ows(uint8_t c) { return c == SP || c == HTAB; }

// Calls f(start, end) for each non-empty comma-separated token, trimmed of SP/HTAB (the TS side
// trims all whitespace with String.trim; header values can only hold SP and HTAB).
template <typename F>
void Tokens(const uint8_t* b, size_t s, size_t e, F f) {
  size_t i = s;
  while (i <= e) {
    size_t j = i;
    while (j < e && b[j] != ',') j++;
    size_t ts = i, te = j;
    while (ts < te && Ows(b[ts])) ts++;
    while (te > ts && Ows(b[te - 1])) te--;
    if (te > ts) f(ts, te);
    i = j + 1;
  }
}

// A decimal of 1..15 digits, or -1.
int64_t Decimal(const uint8_t* b, size_t s, size_t e) {
  if (e == s || e - s > 15) return -1;
  int64_t n = 0;
  for (size_t i = s; i < e; i++) {
    int d = b[i] - '0';
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

// Content-Length: one decimal, or a list of identical decimals (RFC 9110 §8.6).
bool ContentLength(const uint8_t* b, size_t s, size_t e, int64_t* out) {
  int64_t n = Decimal(b, s, e);
  if (n >= 0) {
    *out = n;
    return true;
  }
  bool ok = true;
  n = -1;
  // Every comma-separated part, empty ones included, must be a decimal.
  size_t i = s;
  for (;;) {
    size_t j = i;
    while (j < e && b[j] != ',') j++;
    size_t ts = i, te = j;
    while (ts < te && Ows(b[ts])) ts++;
    while (te > ts && Ows(b[te - 1])) te--;
    int64_t v = Decimal(b, ts, te);
    if (v < 0 || (n >= 0 && v != n)) ok = false;
    n = v;
    if (j >= e) break;
    i = j + 1;
  }
  *out = n;
  return ok;
}

// Header lines from p through the blank line. Returns the offset after it or a status.
int64_t Fields(const uint8_t* b, size_t p, size_t end, size_t limit_end, size_t max_headers, int32_t* out, Framing* fr, bool request) {
  const size_t stop = end < limit_end ? end : limit_end;
  const int64_t more = end < limit_end ? kNeedMore : kTooLarge;
  int32_t* rec = out + RecordsAt(out);
  size_t count = 0;
  for (;;) {
    if (p >= stop) return more;
    uint8_t c = b[p];
    if (c == CR) {
      if (p + 1 >= stop) return more;
      out[kFieldCount] = int32_t(count);
      return b[p + 1] == LF ? int64_t(p + 2) : kMalformed;
    }
    if (c == LF) {
      out[kFieldCount] = int32_t(count);
      return int64_t(p + 1);
    }
    if (Ows(c)) return kMalformed;  // obs-fold
    const size_t ns = p;
    p = SkipNameChars(b, p, stop);
    if (p >= stop) return more;
    c = b[p];
    while (T.tchar[c]) {
      if (++p >= stop) return more;
      c = b[p];
    }
    if (p == ns || c != COLON) return kMalformed;
    const size_t name_end = p++;
    while (p < stop && Ows(b[p])) p++;
    const size_t vs = p;
    for (;;) {
      p = SkipPlain(b, p, stop, 0x1f);
      if (p >= stop) return more;
      c = b[p];
      if (!T.value_ok[c]) break;
      p++;
    }
    size_t ve = p;
    if (c == CR) {
      if (p + 1 >= stop) return more;
      if (b[p + 1] != LF) return kMalformed;
      p += 2;
    } else if (c == LF) {
      p++;
    } else {
      return kMalformed;
    }
    while (ve > vs && Ows(b[ve - 1])) ve--;
    if (count >= max_headers) return kTooLarge;
    const Kind kind = Classify(b, ns, name_end);
    rec[0] = kind;
    rec[1] = int32_t(ns);
    rec[2] = int32_t(name_end);
    rec[3] = int32_t(vs);
    rec[4] = int32_t(ve);
    rec += kFieldSlots;
    count++;
    switch (kind) {
      case kContentLength: {
        int64_t n;
        if (!ContentLength(b, vs, ve, &n)) return kMalformed;
        if (fr->content_length != -1 && fr->content_length != n) return kMalformed;
        fr->content_length = n;
        break;
      }
      case kTransferEncoding: {
        size_t ntok = 0, chunked_at = SIZE_MAX, last_s = 0, last_e = 0;
        Tokens(b, vs, ve, [&](size_t s, size_t e) {
          if (EQ(b, s, e, "chunked") && chunked_at == SIZE_MAX) chunked_at = ntok;
          last_s = s;
          last_e = e;
          ntok++;
        });
        if (ntok == 0) return kMalformed;
        if (fr->flags & kChunked) return kMalformed;
        if (EQ(b, last_s, last_e, "chunked")) {
          if (chunked_at != ntok - 1) return kMalformed;
          fr->flags |= kChunked;
        } else if (request) {
          return kMalformed;
        } else {
          fr->flags |= kClose;
        }
        break;
      }
      case kConnection:
        Tokens(b, vs, ve, [&](size_t s, size_t e) {
          if (EQ(b, s, e, "close")) fr->flags |= kClose;
          else if (EQ(b, s, e, "keep-alive")) fr->flags |= kKeepAliveFlag;
          else if (EQ(b, s, e, "upgrade")) fr->flags |= kUpgradeToken;
        });
        break;
      case kUpgrade:
        fr->flags |= kHasUpgrade;
        break;
      case kExpect:
        if (EQ(b, vs, ve, "100-continue")) fr->flags |= kExpectContinue;
        break;
      case kHost:
        if (request)
          for (size_t j = vs; j < ve; j++)
            if (!T.authority_ok[b[j]]) return kMalformed;
        fr->host_count++;
        fr->host_start = int64_t(vs);
        fr->host_end = int64_t(ve);
        break;
      case kServer:
        fr->flags |= kHasServer;
        break;
      default:
        fr->flags |= request ? RequestNameFlag(b, ns, name_end) : ResponseNameFlag(b, ns, name_end);
        break;
    }
  }
}

int Version(const uint8_t* b, size_t p) {
  if (memcmp(b + p, "HTTP/1.", 7) != 0) return -1;
  return b[p + 7] == '1' ? 1 : b[p + 7] == '0' ? 0 : -1;
}

void Finish(int64_t r, const Framing& fr, int minor, int32_t* out) {
  out[kResult] = int32_t(r);
  out[kMinor] = minor;
  out[kFlags] = fr.flags;
  out[kClHi] = fr.content_length < 0 ? -1 : int32_t(fr.content_length >> 32);
  out[kClLo] = fr.content_length < 0 ? -1 : int32_t(uint32_t(fr.content_length & 0xffffffffu));
  out[kHostStart] = int32_t(fr.host_start);
  out[kHostEnd] = int32_t(fr.host_end);
}

}  // namespace

int32_t MethodOf(const uint8_t* m, size_t n) {
  switch (n) {
    case 3:
      if (memcmp(m, "GET", 3) == 0) return kMethodGet;
      if (memcmp(m, "PUT", 3) == 0) return kMethodPut;
      break;
    case 4:
      if (memcmp(m, "POST", 4) == 0) return kMethodPost;
      if (memcmp(m, "HEAD", 4) == 0) return kMethodHead;
      break;
    case 5:
      if (memcmp(m, "PATCH", 5) == 0) return kMethodPatch;
      if (memcmp(m, "TRACE", 5) == 0) return kMethodTrace;
      break;
    case 6:
      if (memcmp(m, "DELETE", 6) == 0) return kMethodDelete;
      break;
    case 7:
      if (memcmp(m, "OPTIONS", 7) == 0) return kMethodOptions;
      if (memcmp(m, "CONNECT", 7) == 0) return kMethodConnect;
      break;
  }
  return kMethodOther;
}

void ParseRequest(const uint8_t* b, size_t off, size_t end, const Limits& limits, int32_t* out) {
  out[kResult] = kMalformed;
  out[kHostGen] = out[kTargetGen] = 0;
  size_t p = off;
  while (p < end && (b[p] == CR || b[p] == LF)) {
    if (b[p] == CR && p + 1 < end && b[p + 1] != LF) return;
    p++;
  }
  if (p - off > 16) return;  // a stream of blank lines is not a request
  const size_t limit_end = p + limits.max_head_bytes;
  const size_t stop = end < limit_end ? end : limit_end;
  const int32_t more = end < limit_end ? kNeedMore : kTooLarge;
  size_t i = p;
  while (i < stop && T.tchar[b[i]]) i++;
  if (i >= stop) return void(out[kResult] = more);
  if (i == p || b[i] != SP) return;
  out[kLineA] = int32_t(p);
  out[kLineB] = int32_t(i);
  const size_t ts = ++i;
  // Every byte SkipPlain passes (0x21..0xff but DEL) is target_ok but '#', looked for once the
  // target's end is known; it stops at the first byte that may not be.
  i = SkipPlain(b, i, stop, 0x20);
  while (i < stop && T.target_ok[b[i]]) i++;
  if (i >= stop) {
    if (memchr(b + ts, '#', i - ts)) return;
    return void(out[kResult] = more);
  }
  if (i == ts || b[i] != SP || memchr(b + ts, '#', i - ts)) return;
  out[kLineC] = int32_t(ts);
  out[kLineD] = int32_t(i);
  i++;
  if (i + 9 > stop) {
    static const char kV[] = "HTTP/1.1";
    for (size_t j = i; j < stop; j++)
      if (b[j] != uint8_t(kV[j - i]) && !(j - i == 7 && b[j] == '0')) return;
    return void(out[kResult] = more);
  }
  const int minor = Version(b, i);
  if (minor < 0) return;
  i += 8;
  size_t le;
  if (b[i] == LF) {
    le = i;
  } else if (b[i] == CR) {
    if (i + 1 >= stop) return void(out[kResult] = more);
    if (b[i + 1] != LF) return;
    le = i + 1;
  } else {
    return;
  }
  Framing fr;
  const int64_t r = Fields(b, le + 1, end, limit_end, limits.max_headers, out, &fr, true);
  if (r <= 0) return void(out[kResult] = int32_t(r));
  if ((fr.flags & kChunked) && fr.content_length != -1) return;
  if ((fr.flags & kChunked) && minor == 0) return;  // HTTP/1.0 has no chunked coding
  if (fr.host_count > 1 || (minor == 1 && fr.host_count == 0)) return;
  fr.flags |= MethodOf(b + p, size_t(out[kLineB]) - p) << kMethodShift;
  Finish(r, fr, minor, out);
}

void ParseResponse(const uint8_t* b, size_t off, size_t end, const Limits& limits, int32_t* out) {
  out[kResult] = kMalformed;
  out[kHostGen] = out[kTargetGen] = 0;
  const size_t p = off;
  const size_t limit_end = p + limits.max_head_bytes;
  const void* nl = end > p ? memchr(b + p, LF, end - p) : nullptr;
  if (!nl) return void(out[kResult] = end - p >= limits.max_head_bytes ? kTooLarge : kNeedMore);
  const size_t le = size_t(static_cast<const uint8_t*>(nl) - b);
  if (le >= limit_end) return void(out[kResult] = kTooLarge);
  size_t e = le;
  if (e > p && b[e - 1] == CR) e--;
  if (e - p < 12) return;
  const int minor = Version(b, p);
  if (minor < 0 || b[p + 8] != SP) return;
  int status = 0;
  for (size_t i = p + 9; i < p + 12; i++) {
    int d = b[i] - '0';
    if (d < 0 || d > 9) return;
    status = status * 10 + d;
  }
  if (status < 100 || (e > p + 12 && b[p + 12] != SP)) return;
  out[kLineA] = status;
  Framing fr;
  const int64_t r = Fields(b, le + 1, end, limit_end, limits.max_headers, out, &fr, false);
  if (r <= 0) return void(out[kResult] = int32_t(r));
  if ((fr.flags & kChunked) && fr.content_length != -1) return;
  Finish(r, fr, minor, out);
}

namespace {

// Copies the slots a parse sets (a response leaves kLineB-kLineD as they were).
inline void CopySlots(bool request, int32_t* to, const int32_t* from) {
  if (request) {
    memcpy(to + kMinor, from + kMinor, sizeof(int32_t) * (kFieldCount - kMinor + 1));
  } else {
    to[kMinor] = from[kMinor];
    to[kLineA] = from[kLineA];
    memcpy(to + kFlags, from + kFlags, sizeof(int32_t) * (kFieldCount - kFlags + 1));
  }
}

// Copies `count` field records, their offsets moved by `d` (the kind is not an offset).
inline void CopyRecords(int32_t* to, const int32_t* from, int32_t count, int32_t d) {
  for (int32_t f = 0; f < count; f++, to += kFieldSlots, from += kFieldSlots) {
    to[0] = from[0];
    to[1] = from[1] + d;
    to[2] = from[2] + d;
    to[3] = from[3] + d;
    to[4] = from[4] + d;
  }
}

}  // namespace

bool ParseWithMemo(HeadMemo& m, bool request, const uint8_t* buf, size_t off, size_t end, const Limits& limits, int32_t* out, uint64_t gen) {
  const int32_t base = int32_t(off);
  if (m.len != 0 && end - off >= m.len && m.len <= limits.max_head_bytes && size_t(m.slots[kFieldCount]) <= limits.max_headers &&
      memcmp(buf + off, m.bytes, m.len) == 0) {
    out[kResult] = int32_t(off + m.len);
    out[kHostGen] = out[kTargetGen] = 0;
    CopySlots(request, out, m.slots);
    MoveSlots(request, out, base);
    CopyRecords(out + RecordsAt(out), m.records, m.slots[kFieldCount], base);
    return true;
  }
  if (request)
    ParseRequest(buf, off, end, limits, out);
  else
    ParseResponse(buf, off, end, limits, out);
  const int32_t r = out[kResult];
  const size_t len = r > 0 ? size_t(r) - off : 0;
  const int32_t count = out[kFieldCount];
  // A head not parsed whole (cut, bad, over the limits) or too large to keep leaves the kept one,
  // still the right answer for its bytes.
  if (len == 0 || len > HeadMemo::kMaxBytes || count < 0 || size_t(count) > HeadMemo::kMaxFields) return false;
  memcpy(m.bytes, buf + off, len);
  m.len = len;
  m.gen = gen;
  CopySlots(request, m.slots, out);
  MoveSlots(request, m.slots, -base);
  CopyRecords(m.records, out + RecordsAt(out), count, -base);
  return false;
}

}  // namespace http1
}  // namespace strait
