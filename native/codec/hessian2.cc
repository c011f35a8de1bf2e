#include "codec/hessian2.h"

#include <cstring>

namespace strait {
namespace hessian2 {

namespace {

// Hessian counts a string's length in UTF-16 units, so finding its byte end means walking the
// UTF-8. Lead bytes are only classified, never validated: the proxy needs the span, the peer
// decodes the text. A 4-byte sequence is a surrogate pair (2 units); Java writes pairs as two
// 3-byte sequences, which count 1 each. Returns the end, or nullptr past `end`.
inline const uint8_t* WalkUtf8(const uint8_t* p, const uint8_t* end, int64_t units) {
  while (units > 0) {
    // Routing names are ASCII: take 8 bytes at a time while none has its high bit set.
    while (units >= 8 && end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if (w & 0x8080808080808080ull) break;
      p += 8;
      units -= 8;
    }
    if (units == 0) break;
    if (p >= end) return nullptr;
    uint8_t c = *p;
    if (c < 0x80) {
      p += 1;
      units -= 1;
    } else if (c < 0xe0) {
      if (end - p < 2) return nullptr;
      p += 2;
      units -= 1;
    } else if (c < 0xf0) {
      if (end - p < 3) return nullptr;
      p += 3;
      units -= 1;
    } else {
      if (end - p < 4) return nullptr;
      p += 4;
      units -= 2;
    }
  }
  return p;
}

inline bool IsStringCode(uint8_t c) { return c <= 0x1f || (c >= 0x30 && c <= 0x33) || c == 'R' || c == 'S'; }

inline int32_t I32At(const uint8_t* p) {
  return int32_t((uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]);
}

}  // namespace

// string ::= 'R' b1 b0 <utf8> string   (non-final chunk, then any string form)
//        ::= 'S' b1 b0 <utf8> | [x00-x1f] <utf8> | [x30-x33] b0 <utf8>
// Routing strings are read with these final-spec rules in both dialects, as hessian2.ts does
// (the draft writes them in the forms the two share: [x00-x1f] and 'S').
bool Reader::ReadString(Span* s) {
  if (p_ >= end_) return false;
  const uint8_t* p = p_;
  if (*p == 'N') {
    s->off = pos() + 1;
    s->len = 0;
    p_ = p + 1;
    return true;
  }
  bool chunked = false;
  const uint8_t* data = nullptr;
  for (;;) {
    if (p >= end_) return false;
    uint8_t c = *p;
    int64_t units;
    bool last = true;
    if (c <= 0x1f) {
      units = c;
      p += 1;
    } else if (c >= 0x30 && c <= 0x33) {
      if (end_ - p < 2) return false;
      units = (int64_t(c - 0x30) << 8) | p[1];
      p += 2;
    } else if (c == 'S' || c == 'R') {
      if (end_ - p < 3) return false;
      units = (int64_t(p[1]) << 8) | p[2];
      p += 3;
      last = c == 'S';
      chunked = chunked || !last;
    } else {
      return false;
    }
    if (!data) data = p;
    p = WalkUtf8(p, end_, units);
    if (!p) return false;
    if (last) break;
  }
  // One piece: the UTF-8 bytes. Chunked: everything from the first marker on.
  const uint8_t* from = chunked ? p_ : data;
  s->off = size_t(from - base_);
  s->len = size_t(p - from);
  p_ = p;
  return true;
}

bool Reader::ReadInt(int32_t* v) {
  if (p_ >= end_) return false;
  uint8_t c = *p_;
  size_t avail = size_t(end_ - p_);
  if (c >= 0x80 && c <= 0xbf) {
    *v = int32_t(c) - 0x90;
    p_ += 1;
  } else if (c >= 0xc0 && c <= 0xcf) {
    if (avail < 2) return false;
    *v = (int32_t(c) - 0xc8) * 256 + p_[1];
    p_ += 2;
  } else if (c >= 0xd0 && c <= 0xd7) {
    if (avail < 3) return false;
    *v = (int32_t(c) - 0xd4) * 65536 + (int32_t(p_[1]) << 8) + p_[2];
    p_ += 3;
  } else if (c == 'I') {
    if (avail < 5) return false;
    *v = int32_t((uint32_t(p_[1]) << 24) | (uint32_t(p_[2]) << 16) | (uint32_t(p_[3]) << 8) | p_[4]);
    p_ += 5;
  } else {
    return false;
  }
  return true;
}

bool Reader::SkipRawUtf8(int64_t units, Span* s) {
  const uint8_t* e = WalkUtf8(p_, end_, units);
  if (!e) return false;
  s->off = pos();
  s->len = size_t(e - p_);
  p_ = e;
  return true;
}

bool Reader::AddClass(uint32_t fields) {
  if (ndefs_ >= kMaxDefs) return false;
  def_fields_[ndefs_++] = fields;
  return true;
}

// class-def ::= 'C' string int string*   (names may be null, as Java's readString allows)
bool Reader::ReadClassDef() {
  p_++;  // 'C'
  Span s;
  int32_t n;
  if (!ReadString(&s) || !ReadInt(&n) || n < 0) return false;
  for (int32_t i = 0; i < n; i++)
    if (!ReadString(&s)) return false;
  return AddClass(uint32_t(n));
}

// type ::= string | int (a reference to an earlier type). The names themselves are not needed.
bool Reader::SkipType() {
  if (p_ >= end_) return false;
  Span s;
  int32_t ref;
  return IsStringCode(*p_) ? ReadString(&s) : ReadInt(&ref);
}

bool Reader::SkipValues(int64_t n, int depth) {
  for (int64_t i = 0; i < n; i++) {
    // Every value takes at least one byte, so a huge count fails at the end instead of looping.
    if (!SkipValue(depth)) return false;
  }
  return true;
}

// Values (per_entry = 1: list items; 2: map keys and values) up to and including the end
// marker ('Z'; 'z' in the draft).
bool Reader::SkipUntilEnd(int per_entry, int depth) {
  const uint8_t end_code = draft_ ? 'z' : 'Z';
  for (;;) {
    if (p_ >= end_) return false;
    if (*p_ == end_code) {
      p_++;
      return true;
    }
    if (!SkipValues(per_entry, depth)) return false;
  }
}

bool Reader::SkipObject(int32_t idx, int depth) {
  if (idx < 0 || uint32_t(idx) >= ndefs_) return false;
  return SkipValues(def_fields_[idx], depth + 1);
}

bool Reader::SkipValue(int depth) {
  if (p_ >= end_ || depth > kMaxDepth) return false;
  if (draft_) return SkipDraftValue(depth);
  for (;;) {
    if (p_ >= end_) return false;
    uint8_t c = *p_;
    switch (c) {
      case 0x00 ... 0x1f:
      case 0x30 ... 0x33:
      case 'R':
      case 'S': {
        Span s;
        return ReadString(&s);
      }
      case 0x20 ... 0x2f:  // short binary
        return Advance(1 + (c - 0x20));
      case 0x34 ... 0x37:  // medium binary
        if (end_ - p_ < 2) return false;
        return Advance(2 + ((size_t(c - 0x34) << 8) | p_[1]));
      case 'A':  // binary: non-final chunks, then any binary form
      case 'B':
        for (;;) {
          if (p_ >= end_) return false;
          uint8_t t = *p_;
          if (t == 'A' || t == 'B') {
            if (end_ - p_ < 3) return false;
            if (!Advance(3 + ((size_t(p_[1]) << 8) | p_[2]))) return false;
            if (t == 'B') return true;
          } else if (t >= 0x20 && t <= 0x2f) {
            return Advance(1 + (t - 0x20));
          } else if (t >= 0x34 && t <= 0x37) {
            if (end_ - p_ < 2) return false;
            return Advance(2 + ((size_t(t - 0x34) << 8) | p_[1]));
          } else {
            return false;
          }
        }
      case 0x80 ... 0xbf:  // int, 1 octet
      case 0xd8 ... 0xef:  // long, 1 octet
      case 'N':
      case 'T':
      case 'F':
      case 0x5b:  // double 0.0
      case 0x5c:  // double 1.0
        p_++;
        return true;
      case 0xc0 ... 0xcf:  // int, 2 octets
      case 0xf0 ... 0xff:  // long, 2 octets
      case 0x5d:           // double as a byte
        return Advance(2);
      case 0xd0 ... 0xd7:  // int, 3 octets
      case 0x38 ... 0x3f:  // long, 3 octets
      case 0x5e:           // double as a short
        return Advance(3);
      case 'I':
      case 'K':   // date in minutes
      case 'Y':   // long as 32 bits
      case 0x5f:  // double as a float
        return Advance(5);
      case 'D':
      case 'J':  // date in milliseconds
      case 'L':
        return Advance(9);
      case 'Q': {  // reference to an earlier object: just its index
        p_++;
        int32_t ignored;
        return ReadInt(&ignored);
      }
      case 'C':  // class-def value: the definition, then (same depth) the value it precedes
        if (!ReadClassDef()) return false;
        continue;
      case 'O':
      case 0x60 ... 0x6f: {  // object: a definition index, then that many field values
        int32_t idx;
        p_++;
        if (c == 'O') {
          if (!ReadInt(&idx)) return false;
        } else {
          idx = c - 0x60;
        }
        return SkipObject(idx, depth);
      }
      case 'U':  // variable-length typed list
        p_++;
        return SkipType() && SkipUntilEnd(1, depth + 1);
      case 'W':  // variable-length untyped list
        p_++;
        return SkipUntilEnd(1, depth + 1);
      case 'V':    // fixed-length typed list
      case 'X': {  // fixed-length untyped list
        p_++;
        int32_t n;
        if (c == 'V' && !SkipType()) return false;
        if (!ReadInt(&n) || n < 0) return false;
        return SkipValues(n, depth + 1);
      }
      case 0x70 ... 0x77:  // compact typed list, 0-7 items
        p_++;
        return SkipType() && SkipValues(c - 0x70, depth + 1);
      case 0x78 ... 0x7f:  // compact untyped list, 0-7 items
        p_++;
        return SkipValues(c - 0x78, depth + 1);
      case 'H':  // untyped map
        p_++;
        return SkipUntilEnd(2, depth + 1);
      case 'M':  // typed map
        p_++;
        return SkipType() && SkipUntilEnd(2, depth + 1);
      default:  // reserved codes (x40, 'E', 'G', 'P') and a stray 'Z'
        return false;
    }
  }
}

// type ::= 't' b1 b0 <name bytes> | 'u' int (a reference), or nothing at all.
bool Reader::SkipDraftType() {
  int c = Peek();
  if (c == 't') {
    if (end_ - p_ < 3) return false;
    return Advance(3 + ((size_t(p_[1]) << 8) | p_[2]));
  }
  if (c == 'u') {
    p_++;
    int32_t ref;
    return ReadInt(&ref);
  }
  return true;
}

// The draft grammar, as Hessian 3.1's Hessian2Input and hessian.js 1.x read it.
bool Reader::SkipDraftValue(int depth) {
  for (;;) {
    if (p_ >= end_) return false;
    uint8_t c = *p_;
    switch (c) {
      case 0x00 ... 0x1f:  // the draft has no medium [x30-x33] form
      case 'S': {
        Span s;
        return ReadString(&s);
      }
      case 's': {  // non-final chunks, then the final one
        while (p_ < end_ && *p_ == 's') {
          if (end_ - p_ < 3) return false;
          int64_t units = (int64_t(p_[1]) << 8) | p_[2];
          p_ += 3;
          Span s;
          if (!SkipRawUtf8(units, &s)) return false;
        }
        Span s;
        return ReadString(&s);
      }
      case 0x20 ... 0x2f:  // short binary
        return Advance(1 + (c - 0x20));
      case 'b':  // binary: non-final chunks, then 'B' or a short binary
      case 'B':
        for (;;) {
          if (p_ >= end_) return false;
          uint8_t t = *p_;
          if (t == 'b' || t == 'B') {
            if (end_ - p_ < 3) return false;
            if (!Advance(3 + ((size_t(p_[1]) << 8) | p_[2]))) return false;
            if (t == 'B') return true;
          } else if (t >= 0x20 && t <= 0x2f) {
            return Advance(1 + (t - 0x20));
          } else {
            return false;
          }
        }
      case 0x80 ... 0xbf:  // int, 1 octet
      case 0xd8 ... 0xef:  // long, 1 octet
      case 'N':
      case 'T':
      case 'F':
      case 0x67:  // double 0.0
      case 0x68:  // double 1.0
        p_++;
        return true;
      case 0xc0 ... 0xcf:  // int, 2 octets
      case 0xf0 ... 0xff:  // long, 2 octets
      case 0x69:           // double as a byte
      case 'J':            // ref, 1-byte index
        return Advance(2);
      case 0xd0 ... 0xd7:  // int, 3 octets
      case 0x38 ... 0x3f:  // long, 3 octets
      case 0x6a:           // double as a short
      case 'K':            // ref, 2-byte index
        return Advance(3);
      case 'I':
      case 'w':   // long as 32 bits
      case 0x6b:  // double as a float
      case 'R':   // ref, 4-byte index
        return Advance(5);
      case 'D':
      case 'L':
      case 'd':  // date in milliseconds
        return Advance(9);
      case 'O': {  // definition: int length, the name's UTF-8 (no marker), field count, names
        p_++;
        int32_t len, n;
        Span s;
        if (!ReadInt(&len) || len < 0 || !SkipRawUtf8(len, &s) || !ReadInt(&n) || n < 0) return false;
        for (int32_t i = 0; i < n; i++)
          if (!ReadString(&s)) return false;
        if (!AddClass(uint32_t(n))) return false;
        continue;  // then (same depth) the value it precedes
      }
      case 'o': {  // object: definition index, then its field values
        p_++;
        int32_t idx;
        if (!ReadInt(&idx)) return false;
        return SkipObject(idx, depth);
      }
      case 'V': {  // list: type, optional length ('n' byte | 'l' int32), values up to 'z'
        p_++;
        if (!SkipDraftType()) return false;
        if (Peek() == 'n' && !Advance(2)) return false;
        if (Peek() == 'l' && !Advance(5)) return false;
        // The length is only a hint: the 'z' ends the list either way.
        return SkipUntilEnd(1, depth + 1);
      }
      case 'v': {  // compact list: type reference, length, values (no end marker)
        p_++;
        int32_t ref, n;
        if (!ReadInt(&ref) || !ReadInt(&n)) return false;
        return SkipValues(n, depth + 1);  // a negative count is no items
      }
      case 'M':  // map: optional type, entries, 'z'
        p_++;
        return SkipDraftType() && SkipUntilEnd(2, depth + 1);
      default:
        return false;
    }
  }
}

int32_t CountJvmParams(const uint8_t* p, size_t len) {
  const uint8_t* end = p + len;
  int32_t n = 0;
  while (p < end) {
    uint8_t c = *p;
    while (c == '[') {  // array dimensions prefix the element type
      if (++p >= end) return -1;
      c = *p;
    }
    if (c == 'L') {  // Lpkg/Class;
      while (p < end && *p != ';') p++;
      if (p >= end) return -1;
      p++;
    } else if (c == 'Z' || c == 'B' || c == 'C' || c == 'D' || c == 'F' || c == 'I' || c == 'J' || c == 'S') {
      p++;
    } else {
      return -1;
    }
    n++;
  }
  return n;
}

}  // namespace hessian2
}  // namespace strait
