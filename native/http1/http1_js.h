// The JavaScript boundary of the HTTP/1.1 head parser: parseHttp1Head, typed in src/native.ts.
// A plain napi callback like the codecs': argument errors throw, parse results go to `out`.
#pragma once
#include <napi.h>

namespace strait {
namespace http1 {

Napi::Function ParseHeadFunction(Napi::Env env);
// bindHttp1HeadParser(out[, args]) -> [parse(isRequest, buf, off, end, maxHeadBytes, maxHeaders, copyAt),
// setSlab(slab), parseArena(isRequest, off, end, ...same)]: parseHttp1Head with `out` and the copy
// slab bound once (copyAt -1: no copy); parseArena parses the registered reader arena. With
// `args` (an Int32Array), also [3] parseArenaArgs(), parseArena with its six arguments read there.
Napi::Function BindParserFunction(Napi::Env env);
// sendHttp1(fd, buf) -> bytes sent or -errno: the direct write of src/protocols/http1/send.ts.
Napi::Function SendFunction(Napi::Env env);
// sendHttp1Ranges(n, table, bufs): many sends in one call (a batch's queued heads and responses).
Napi::Function SendRangesFunction(Napi::Env env);
// writeHttp1Head(out, firstLine, src, runs, nRuns, extra, tail, tailStart, tailEnd) -> bytes
// written: encodeHead's layout (src/protocols/http1/encoder.ts) in one call.
Napi::Function WriteHeadFunction(Napi::Env env);
// sendHttp1Head(fd, firstLine, src, runs, nRuns, extra, tail, tailStart, tailEnd) -> bytes sent
// or -errno: the same head sent by one send(2), without a Buffer.
Napi::Function SendHeadFunction(Napi::Env env);
// bindHttp1HeadWriter(runs[, args]) -> [write(out, firstLine, src, nRuns, extra, tail, tailStart, tailEnd),
// send(fd, ...same), writeSend(out, ...same as write, fd, keepAt, keepLen)]: the two above with
// `runs` bound once, and write + send of the Buffer written in one call. With `args` (an
// Int32Array: nRuns, tailStart, tailEnd, at, fd, keepAt, keepLen) also [3] writeAt(out, firstLine,
// src, extra, tail) and [4] writeSendAt(out, firstLine, src, extra), which read their numbers there.
Napi::Function BindWriterFunction(Napi::Env env);
// writeHttp1HeadFromFlat(out, method, path, authority, src, runs, nRuns, extra, chunked) -> bytes
// written: the HTTP/1.1 head of an HTTP/2 request from its flat field list (FlatRequest.h1Head).
Napi::Function WriteHeadFromFlatFunction(Napi::Env env);
Napi::Function SendHeadHeldFunction(Napi::Env env);
// sendHttp1HeadHeldArgs(method, path, authority, runs, extra): the same with its numbers in the
// registered call-args table (kTableCallArgs).
Napi::Function SendHeadHeldArgsFunction(Napi::Env env);

}  // namespace http1
}  // namespace strait
