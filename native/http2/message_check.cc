#include "http2/message_check.h"

#include <emmintrin.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "http1/head.h"
#include "http2/session.h"

namespace strait::http2 {

namespace {

// MessageState::flags.
enum : uint32_t {
  kSawAuthority = 1u << 0,
  kSawMethod = 1u << 1,
  kSawPath = 1u << 2,
  kSawScheme = 1u << 3,
  kSawStatus = 1u << 4,
  kSawHost = 1u << 5,
  kMethodHead = 1u << 6,
  kMethodConnect = 1u << 7,
  kMethodOptions = 1u << 8,
  kPathAbsolute = 1u << 9,  // starts with '/'
  kPathAsterisk = 1u << 10,
  kSchemeHttp = 1u << 11,  // http or https: the path must be absolute (or * for OPTIONS)
  kPseudoClosed = 1u << 12,  // a regular field came: no pseudo-header may follow
  kExpectFinal = 1u << 13,   // a 1xx came: the final response is still to come
};
constexpr uint32_t kMethodKinds = kMethodHead | kMethodConnect | kMethodOptions;
constexpr uint32_t kRequestPseudo = kSawMethod | kSawPath | kSawScheme;

// Character classes, one bit each, from RFC 9110 §5.1 (tchar), §5.5 (field-value), RFC 3986 §3.1
// (scheme), §3.2 (authority) and RFC 9113 §8.3.1 (:path).
enum : uint8_t {
  kName = 1,      // tchar, lower-case only (RFC 9113 §8.2.1)
  kValue = 2,     // HTAB, SP, VCHAR, obs-text
  kMethod = 4,    // tchar
  kPath = 8,      // VCHAR, obs-text
  kAuth = 16,     // unreserved, sub-delims, ':', '@', '[', ']', '%'
  kSchemeTail = 32,  // ALPHA, DIGIT, '+', '-', '.'
};

constexpr bool Alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool Digit(int c) { return c >= '0' && c <= '9'; }
constexpr bool OneOf(int c, const char* s) {
  for (; *s; s++)
    if (*s == c) return true;
  return false;
}

constexpr std::array<uint8_t, 256> MakeClasses() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; c++) {
    const bool tchar = Alpha(c) || Digit(c) || OneOf(c, "!#$%&'*+-.^_`|~");
    const bool vchar = c >= 0x21 && c <= 0x7e;
    const bool obs = c >= 0x80;
    uint8_t v = 0;
    if (tchar && !(c >= 'A' && c <= 'Z')) v |= kName;
    if (c == '\t' || c == ' ' || vchar || obs) v |= kValue;
    if (tchar) v |= kMethod;
    if (vchar || obs) v |= kPath;
    if (Alpha(c) || Digit(c) || OneOf(c, "-._~!$&'()*+,;=:@[]%")) v |= kAuth;
    if (Alpha(c) || Digit(c) || OneOf(c, "+-.")) v |= kSchemeTail;
    t[size_t(c)] = v;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClasses = MakeClasses();

inline bool All(const uint8_t* p, size_t n, uint8_t cls) {
  uint8_t acc = cls;
  // One branch at the end rather than one per byte: fields are short and almost always good.
  for (size_t i = 0; i < n; i++) acc &= kClasses[p[i]];
  return acc != 0;
}

// Sixteen bytes at a time: a byte-by-byte table walk was ~4 instructions a byte, ~1,700 a gRPC
// request. `Bad(v)` is a 16-bit mask of the bytes of v outside the class.
//
// Fewer than 16 bytes are read as 16 when those stay inside the page (then no fault is
// possible), and the mask keeps the first n; otherwise the table does it.
template <typename BadFn>
inline bool Blocks(const uint8_t* p, size_t n, uint8_t cls, BadFn bad) {
  if (n < 16) {
    if ((reinterpret_cast<uintptr_t>(p) & 4095) > 4096 - 16) return All(p, n, cls);
    return (bad(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))) & ((1u << n) - 1)) == 0;
  }
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    if (bad(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)))) return false;
  // The last block overlaps the one before it: no partial load.
  return i == n || bad(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + n - 16))) == 0;
}

// Controls (below SP, and DEL) are out; obs-text (0x80 and up, negative as signed bytes) is in;
// HTAB and SP as `spaces` says.
template <bool spaces>
inline int BadValueBytes(__m128i v) {
  const __m128i ctl = _mm_andnot_si128(_mm_cmplt_epi8(v, _mm_setzero_si128()), _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
  __m128i bad = _mm_or_si128(ctl, _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)));
  if (spaces) bad = _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\t')), bad);
  else bad = _mm_or_si128(bad, _mm_cmpeq_epi8(v, _mm_set1_epi8(' ')));
  return _mm_movemask_epi8(bad);
}

// Outside [a-z0-9-], the usual name bytes: a name with any other (tchar such as '_' or '.', or
// a byte that is no tchar at all) is settled by the table.
inline int UnusualNameBytes(__m128i v) {
  const __m128i lower = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('a' - 1)), _mm_cmplt_epi8(v, _mm_set1_epi8('z' + 1)));
  const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)), _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
  const __m128i ok = _mm_or_si128(_mm_or_si128(lower, digit), _mm_cmpeq_epi8(v, _mm_set1_epi8('-')));
  return _mm_movemask_epi8(ok) ^ 0xffff;
}

inline bool NameOk(const uint8_t* p, size_t n) { return n > 0 && (Blocks(p, n, kName, UnusualNameBytes) || All(p, n, kName)); }

// A field value (RFC 9113 §8.2.1): no NUL, CR or LF (nor other controls but HTAB), and no
// whitespace at either end.
inline bool ValueOk(const uint8_t* v, size_t n) {
  if (n == 0) return true;
  if (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t') return false;
  return Blocks(v, n, kValue, BadValueBytes<true>);
}

bool SchemeOk(const uint8_t* v, size_t n) { return n > 0 && Alpha(v[0]) && All(v + 1, n - 1, kSchemeTail); }

// `lit` is lower-case letters only: then c | 0x20 is lit[i] just for lit[i] and its capital.
template <size_t N>
inline bool EqualsNoCase(const uint8_t* v, size_t n, const char (&lit)[N]) {
  if (n != N - 1) return false;
  for (size_t i = 0; i < N - 1; i++)
    if ((v[i] | 0x20) != uint8_t(lit[i])) return false;
  return true;
}

template <size_t N>
inline bool Equals(const uint8_t* v, size_t n, const char (&lit)[N]) {
  return n == N - 1 && memcmp(v, lit, N - 1) == 0;
}

// A non-negative decimal without sign or spaces; -1 if not one (or it overflows).
int64_t Decimal(const uint8_t* v, size_t n) {
  if (n == 0) return -1;
  int64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (!Digit(v[i])) return -1;
    if (x > (INT64_MAX - (v[i] - '0')) / 10) return -1;
    x = x * 10 + (v[i] - '0');
  }
  return x;
}

// The first of a pseudo-header (or of host), with a value: false for a repeat or an empty one.
inline bool First(MessageState& m, uint32_t flag, size_t valuelen) {
  if ((m.flags & flag) || valuelen == 0) return false;
  m.flags |= flag;
  return true;
}

bool IsPseudo(int32_t token) { return token >= kTokMethod && token <= kTokPseudo; }

// The checks shared by requests and responses: the name's characters and the value's. kKeep
// when both are good; a bad pseudo-header is malformed, a bad regular field that is lower-case
// is dropped (RFC 9113 §8.2.1 lets a proxy refuse it; nghttp2 drops it, and so does this).
FieldVerdict FieldChars(MessageState& m, int32_t token, const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen, bool server) {
  if (token == kTokOther && !NameOk(name, namelen)) {
    // Empty, or a character outside tchar. Upper case is never allowed in HTTP/2.
    for (size_t i = 0; i < namelen; i++)
      if (name[i] >= 'A' && name[i] <= 'Z') return FieldVerdict::kMalformed;
    m.flags |= kPseudoClosed;
    return FieldVerdict::kDrop;
  }
  bool ok;
  switch (token) {
    case kTokMethod:
      ok = valuelen > 0 && All(value, valuelen, kMethod);
      break;
    case kTokPath:
      ok = Blocks(value, valuelen, kPath, BadValueBytes<false>);
      break;
    case kTokAuthority:
    case kTokHost:
      ok = server ? All(value, valuelen, kAuth) : ValueOk(value, valuelen);
      break;
    case kTokScheme:
      ok = SchemeOk(value, valuelen);
      break;
    case kTokPseudo:
      // Unknown (or badly formed) pseudo-headers are malformed whatever their value.
      return FieldVerdict::kMalformed;
    default:
      ok = ValueOk(value, valuelen);
  }
  if (ok) return FieldVerdict::kKeep;
  if (IsPseudo(token)) return FieldVerdict::kMalformed;
  m.flags |= kPseudoClosed;
  return FieldVerdict::kDrop;
}

// What requests and responses share once the characters are good: pseudo-headers first and
// never in trailers (§8.3), no connection-specific field and no te but "trailers" (§8.2.2).
// kKeep when none of these applies.
FieldVerdict CommonRules(const MessageState& m, int32_t token, const uint8_t* value, size_t valuelen, bool trailer) {
  if (IsPseudo(token) && (trailer || (m.flags & kPseudoClosed))) return FieldVerdict::kMalformed;
  switch (token) {
    case kTokConnection:
    case kTokKeepAlive:
    case kTokProxyConnection:
    case kTokTransferEncoding:
    case kTokUpgrade:
      return FieldVerdict::kMalformed;
    case kTokTe:
      return EqualsNoCase(value, valuelen, "trailers") ? FieldVerdict::kKeep : FieldVerdict::kMalformed;
    default:
      return FieldVerdict::kKeep;
  }
}

// The checks every field of either kind goes through first.
FieldVerdict FieldRules(MessageState& m, int32_t token, const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen, bool server, bool trailer) {
  FieldVerdict v = FieldChars(m, token, name, namelen, value, valuelen, server);
  return v == FieldVerdict::kKeep ? CommonRules(m, token, value, valuelen, trailer) : v;
}

// A content-length: the only one, a plain decimal (§8.1.1).
FieldVerdict TakeLength(MessageState& m, const uint8_t* value, size_t valuelen) {
  if (m.content_length != -1) return FieldVerdict::kMalformed;
  m.content_length = Decimal(value, valuelen);
  return m.content_length == -1 ? FieldVerdict::kMalformed : FieldVerdict::kKeep;
}

}  // namespace

void MessageState::SentMethod(const uint8_t* v, size_t n) {
  const int32_t method = http1::MethodOf(v, n);
  if (method == http1::kMethodConnect) flags |= kMethodConnect;
  else if (method == http1::kMethodHead) flags |= kMethodHead;
}

FieldVerdict CheckRequestField(MessageState& m, int32_t token, const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen, bool trailer) {
  FieldVerdict v = FieldRules(m, token, name, namelen, value, valuelen, true, trailer);
  if (v != FieldVerdict::kKeep) return v;
  const bool pseudo = IsPseudo(token);
  switch (token) {
    case kTokAuthority:
      if (!First(m, kSawAuthority, valuelen)) return FieldVerdict::kMalformed;
      break;
    case kTokMethod:
      if (!First(m, kSawMethod, valuelen)) return FieldVerdict::kMalformed;
      switch (http1::MethodOf(value, valuelen)) {
        case http1::kMethodHead:
          m.flags |= kMethodHead;
          break;
        case http1::kMethodConnect:
          m.flags |= kMethodConnect;
          break;
        case http1::kMethodOptions:
          m.flags |= kMethodOptions;
          break;
        default:
          break;
      }
      break;
    case kTokPath:
      if (!First(m, kSawPath, valuelen)) return FieldVerdict::kMalformed;
      if (value[0] == '/') m.flags |= kPathAbsolute;
      else if (valuelen == 1 && value[0] == '*') m.flags |= kPathAsterisk;
      break;
    case kTokScheme:
      if (!First(m, kSawScheme, valuelen)) return FieldVerdict::kMalformed;
      if (EqualsNoCase(value, valuelen, "http") || EqualsNoCase(value, valuelen, "https")) m.flags |= kSchemeHttp;
      break;
    case kTokHost:
      if (!First(m, kSawHost, valuelen)) return FieldVerdict::kMalformed;
      break;
    case kTokContentLength:
      if (TakeLength(m, value, valuelen) != FieldVerdict::kKeep) return FieldVerdict::kMalformed;
      break;
    case kTokStatus:  // a response's
      return FieldVerdict::kMalformed;
    default:
      break;
  }
  if (!pseudo) m.flags |= kPseudoClosed;
  return FieldVerdict::kKeep;
}

FieldVerdict CheckResponseField(MessageState& m, int32_t token, const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen, bool trailer) {
  FieldVerdict v = FieldRules(m, token, name, namelen, value, valuelen, false, trailer);
  if (v != FieldVerdict::kKeep) return v;
  const bool pseudo = IsPseudo(token);
  switch (token) {
    case kTokStatus: {
      if (!First(m, kSawStatus, valuelen) || valuelen != 3) return FieldVerdict::kMalformed;
      int64_t s = Decimal(value, valuelen);
      if (s == -1 || s == 101) return FieldVerdict::kMalformed;  // no upgrades in HTTP/2 (§8.6)
      m.status = int16_t(s);
      break;
    }
    case kTokContentLength:
      if (m.status == 204) {
        // RFC 9110 §8.6 forbids it; widely sent as 0 all the same, which is dropped.
        if (m.content_length != -1 || !Equals(value, valuelen, "0")) return FieldVerdict::kMalformed;
        m.content_length = 0;
        return FieldVerdict::kDrop;
      }
      if (m.status / 100 == 1) return FieldVerdict::kMalformed;
      // A 2xx to CONNECT starts a tunnel: a length means nothing there (RFC 9110 §8.6).
      if (m.status / 100 == 2 && (m.flags & kMethodConnect)) return FieldVerdict::kDrop;
      if (TakeLength(m, value, valuelen) != FieldVerdict::kKeep) return FieldVerdict::kMalformed;
      break;
    default:
      if (pseudo) return FieldVerdict::kMalformed;  // a request's pseudo-header
      break;
  }
  if (!pseudo) m.flags |= kPseudoClosed;
  return FieldVerdict::kKeep;
}

bool RequestHeadDone(MessageState& m) {
  if (m.flags & kMethodConnect) {
    // RFC 9113 §8.5: :authority only, and the body is a tunnel's bytes (no length applies).
    if ((m.flags & (kSawScheme | kSawPath)) || !(m.flags & kSawAuthority)) return false;
    m.content_length = -1;
    return true;
  }
  if ((m.flags & kRequestPseudo) != kRequestPseudo || !(m.flags & (kSawAuthority | kSawHost))) return false;
  // §8.3.1: for http and https the path is absolute, or * for a server-wide OPTIONS.
  if ((m.flags & kSchemeHttp) && !(m.flags & kPathAbsolute) && !((m.flags & kMethodOptions) && (m.flags & kPathAsterisk))) return false;
  return true;
}

bool ResponseHeadDone(MessageState& m, bool* interim) {
  *interim = false;
  if (!(m.flags & kSawStatus)) return false;
  if (m.status / 100 == 1) {
    // A 1xx: the final response follows with its own fields, the method's kind stays.
    *interim = true;
    m.flags = (m.flags & kMethodKinds) | kExpectFinal;
    m.content_length = -1;
    m.status = -1;
    return true;
  }
  m.flags &= ~kExpectFinal;
  if ((m.flags & kMethodHead) || m.status == 204 || m.status == 304) m.content_length = 0;  // no body
  else if (m.flags & kMethodConnect) m.content_length = -1;
  return true;
}

bool BodyReceived(MessageState& m, size_t n) {
  m.received += int64_t(n);
  return !(m.flags & kExpectFinal) && (m.content_length == -1 || m.received <= m.content_length);
}

bool EndReceived(const MessageState& m) {
  return !(m.flags & kExpectFinal) && (m.content_length == -1 || m.content_length == m.received);
}

}  // namespace strait::http2
