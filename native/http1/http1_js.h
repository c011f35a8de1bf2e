// The JavaScript boundary of the HTTP/1.1 head parser: parseHttp1Head, typed in src/native.ts.
// A plain napi callback like the codecs': argument errors throw, parse results go to `out`.
#pragma once
#include <napi.h>

namespace strait {
namespace http1 {

Napi::Function ParseHeadFunction(Napi::Env env);
// sendHttp1(fd, buf) -> bytes sent or -errno: the direct write of src/protocols/http1/send.ts.
Napi::Function SendFunction(Napi::Env env);

}  // namespace http1
}  // namespace strait
