// A minimal zero-copy Hessian 2.0 reader: enough to find routing strings inside an RPC body
// without deserializing it. It reads strings as byte spans, reads ints, and skips any other
// value. Every read is bounds-checked against `end`; nesting is depth-limited; nothing
// allocates. For the final spec it mirrors src/protocols/hessian2.ts.
//
// Two dialects share the name "hessian2" on the wire:
//  - kFinal: the published Hessian 2.0 spec (Hessian 4.x, Dubbo's hessian-lite, hessian.js 2.x):
//    'C' class definitions, 'O'/[x60-x6f] objects, 'R' string chunks, 'Q' refs.
//  - kDraft: the 2.0 draft that Hessian 3.1 implemented and sofa-hessian still speaks (the
//    default of SOFA's Node clients, hessian.js 1.x "v2"): 'O' definitions with a raw name,
//    'o' objects, 's'/'b' chunks, 'V'/'M' containers closed by 'z', 'v' compact lists, 't'/'u'
//    types, 'R'/'J'/'K' refs, 'w' 32-bit longs, [x67-x6b] doubles, 'd' dates; no medium forms.
// A SofaRequest body opens with 'C' in the first and 'O' in the second, which tells them apart.
#pragma once
#include <cstddef>
#include <cstdint>

namespace strait {
namespace hessian2 {

// A value's bytes, as offsets absolute into the caller's buffer.
struct Span {
  size_t off = 0;
  size_t len = 0;
};

enum class Dialect { kFinal, kDraft };

class Reader {
 public:
  // Nesting deeper than this is refused, so a hostile body cannot exhaust the stack
  // (hessian2.ts: Hessian2Skipper.MAX_DEPTH; the outermost value is depth 1).
  static constexpr int kMaxDepth = 64;
  // Class definitions one body may hold (4 bytes each, on the stack). Real bodies hold a few;
  // a body past this is treated as malformed.
  static constexpr uint32_t kMaxDefs = 1024;

  Reader(const uint8_t* base, size_t pos, size_t end, Dialect dialect = Dialect::kFinal)
      : base_(base), p_(base + pos), end_(base + end), draft_(dialect == Dialect::kDraft) {}

  size_t pos() const { return size_t(p_ - base_); }
  bool AtEnd() const { return p_ >= end_; }
  // The next byte, or -1 at the end.
  int Peek() const { return p_ < end_ ? *p_ : -1; }
  bool Advance(size_t n) {
    if (size_t(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }

  // Reads a string into *s (final-spec forms, in either dialect). A null ('N') reads as the empty
  // string just after it. A chunked string ('R' ... final chunk) gets a span covering its chunks
  // and their markers, so it never equals a plain name (routing names are never chunked) but
  // its end is right. False, with the cursor unmoved, if the next value is not a string or runs
  // past `end`.
  bool ReadString(Span* s);
  // An int ([x80-xd7] or 'I'). False, cursor unmoved, for anything else.
  bool ReadInt(int32_t* v);
  // Skips one value, including a class definition in front of it (remembered: later objects
  // refer to definitions by index). False on malformed, truncated or too deeply nested input.
  bool Skip() { return SkipValue(1); }
  // Registers a class definition the caller read itself.
  bool AddClass(uint32_t fields);
  // A string of `units` UTF-16 units with no marker (a draft definition's class name, a chunk).
  bool SkipRawUtf8(int64_t units, Span* s);

 private:
  bool SkipValue(int depth);
  bool SkipDraftValue(int depth);
  bool SkipDraftType();
  bool SkipObject(int32_t idx, int depth);
  bool ReadClassDef();
  bool SkipType();
  bool SkipValues(int64_t n, int depth);
  bool SkipUntilEnd(int per_entry, int depth);

  const uint8_t* base_;
  const uint8_t* p_;
  const uint8_t* end_;
  const bool draft_;
  uint32_t ndefs_ = 0;
  uint32_t def_fields_[kMaxDefs];  // field count per class definition; only [0, ndefs_) is set
};

// Counts the parameters of a JVM method descriptor ("Ljava/lang/String;I[J" -> 3); -1 if
// malformed. Dubbo's parameter-types string says how many argument values precede the
// attachments.
int32_t CountJvmParams(const uint8_t* p, size_t len);

inline bool SpanEquals(const uint8_t* base, const Span& s, const char* lit, size_t lit_len) {
  if (s.len != lit_len) return false;
  for (size_t i = 0; i < lit_len; i++)
    if (base[s.off + i] != uint8_t(lit[i])) return false;
  return true;
}

}  // namespace hessian2
}  // namespace strait
