// RFC 9113 §8 checks of received messages (header fields, pseudo-headers, content-length
// against the DATA received), made here instead of by nghttp2.
//
// nghttp2's own checks (on unless nghttp2_option_set_no_http_messaging) were ~3,500
// instructions of a gRPC request, ~6 %: a name check, a value check and a token switch per
// field, each an out-of-line call, after the session had found the same token again. Here they
// run inside the session's header callback, which knows the token already. The rules are
// nghttp2's (1.61), so a peer sees the same answers: a malformed message is a stream error
// (RST_STREAM PROTOCOL_ERROR), a regular field with a bad name or value that is still lower-case
// is dropped, and a content-length of 0 in a 204 (or any in a 2xx to CONNECT) is dropped.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace strait::http2 {

// What to do with one received field.
enum class FieldVerdict : uint8_t {
  kKeep,       // pass it on
  kDrop,       // leave it out, the message goes on
  kMalformed,  // the whole message is malformed: reset the stream
};

// One stream's progress through the rules: which pseudo-headers came, the method's kind, the
// declared and received body lengths, the response status.
struct MessageState {
  uint32_t flags = 0;
  int16_t status = -1;
  int64_t content_length = -1;
  int64_t received = 0;
  void Reset() {
    flags = 0;
    status = -1;
    content_length = -1;
    received = 0;
  }
  // A request sent on this (client) stream: HEAD and CONNECT change what a response may carry.
  void SentMethod(const uint8_t* v, size_t n);
  // The same as far as the field checks go (the body received so far plays no part in them).
  bool SameFor(const MessageState& o) const { return flags == o.flags && status == o.status && content_length == o.content_length; }
};

// A header block that passed the field checks whole (nothing dropped), with the state before and
// after them: a block that repeats it byte for byte, field for field, from the same state ends in
// the same state without the checks (a client's requests, an upstream's responses, repeat).
// The field table is compared too: the list's NULs alone would not tell "a: b\0c" from two fields.
struct BlockMemo {
  std::string list;
  std::vector<int32_t> fields;
  MessageState in, out;
  bool valid = false;
};

// A field of a request (`trailer`: of its trailers); `token` is the session's TokenOf(name).
FieldVerdict CheckRequestField(MessageState& m, int32_t token, const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen, bool trailer);
// A field of a response (or of its trailers).
FieldVerdict CheckResponseField(MessageState& m, int32_t token, const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen, bool trailer);

// The request's header block is complete: false if it is malformed (a pseudo-header missing).
bool RequestHeadDone(MessageState& m);
// A response's header block is complete: false if malformed. `*interim`: it was a 1xx.
bool ResponseHeadDone(MessageState& m, bool* interim);
// Body bytes received: false once they exceed the content-length, or come before a final response.
bool BodyReceived(MessageState& m, size_t n);
// The peer ended the stream: false if the body fell short of its content-length, or no final
// response came.
bool EndReceived(const MessageState& m);

}  // namespace strait::http2
