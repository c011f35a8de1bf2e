// strait_native: registers exports only. The data path lives in io/ (see native/README.md).
#include <napi.h>

#include "bpf/bpf_js.h"
#include "codec/codec_js.h"
#include "http1/http1_js.h"
#include "http2/session.h"
#include "io/acceptor.h"
#include "io/batch_reader.h"
#include "io/connector.h"
#include "io/env.h"
#include "io/js_util.h"
#include "io/pipe.h"
#include "io/request_id.h"
#include "io/socket_util.h"
#include "process/exec.h"
#include "upgrade/fd_channel.h"

namespace strait {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Env* e = InitEnv(env);
  // Not exported: JavaScript gets ConnectRequest objects only from connect().
  e->connect_request_ctor = Napi::Persistent(ConnectRequest::Init(env));
  exports.Set("version", Napi::String::New(env, "1.1.0"));
  exports.Set("listenTcp", Napi::Function::New(env, ListenTcp, "listenTcp"));
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix, "listenUnix"));
  exports.Set("localAddress", Napi::Function::New(env, LocalAddress, "localAddress"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("shutdownFd", Napi::Function::New(env, ShutdownFd, "shutdownFd"));
  exports.Set("peekFd", Napi::Function::New(env, PeekFd, "peekFd"));
  exports.Set("connect", Napi::Function::New(env, ConnectRequest::Connect, "connect"));
  exports.Set("Acceptor", Acceptor::Init(env));
  exports.Set("Pipe", Pipe::Init(env));
  exports.Set("H2Session", http2::Session::Init(env));
  exports.Set("BatchReader", BatchReader::Init(env));
  exports.Set("stats", Napi::Function::New(env, Stats, "stats"));
  exports.Set("setTable", Napi::Function::New(env, SetTable, "setTable"));
  exports.Set("requestId", Napi::Value(env, RequestIdFunction(env, &e->request_ids)));
  exports.Set("disableLoopIdleTime", Napi::Function::New(env, DisableLoopIdleTime, "disableLoopIdleTime"));
  exports.Set("errnoName", Napi::Function::New(env, ErrnoName, "errnoName"));
  exports.Set("decodeHeader", codec::DecodeHeaderFunction(env));
  exports.Set("decodeLazy", codec::DecodeLazyFunction(env));
  exports.Set("decodeFrames", codec::DecodeFramesFunction(env));
  exports.Set("bindFrameDecoder", codec::BindFrameDecoderFunction(env));
  exports.Set("parseHttp1Head", http1::ParseHeadFunction(env));
  exports.Set("bindHttp1HeadParser", http1::BindParserFunction(env));
  exports.Set("sendHttp1", http1::SendFunction(env));
  exports.Set("sendHttp1Ranges", http1::SendRangesFunction(env));
  // sendHttp1 takes a range and the bound head writer an offset: staged heads need no Buffer view.
  exports.Set("http1StagedRanges", Napi::Boolean::New(env, true));
  // writeSendHttp1HeadBound takes the offset `at` (a head written into a shared slab, no view).
  exports.Set("http1WriteSendAt", Napi::Boolean::New(env, true));
  // writeAt and writeSendAt work out the kept lines from the HEAD_OUT table (kKnowRunsFromHead).
  exports.Set("http1RunsFromHeadOut", Napi::Boolean::New(env, true));
  // setTable takes the head parser's slab (HEAD_SLAB) and the head writers read it there.
  exports.Set("http1HeadSlabTable", Napi::Boolean::New(env, true));
  // The bound head parser's setSlab takes a new results array as its second argument.
  exports.Set("http1BoundOut", Napi::Boolean::New(env, true));
  // writeAt and writeSendAt keep the strings they read last (kKnowSameFirst, kKnowSameExtra).
  exports.Set("http1SameLines", Napi::Boolean::New(env, true));
  // H2Session.requestHeldArgs / respondHeldArgs take JavaScript's number for their extra pairs.
  exports.Set("h2ExtraGen", Napi::Boolean::New(env, true));
  // An HTTP/2 batch's sixth argument is its data pool's number, and dataArgs copies from that
  // pool at an offset (kDataFromPool); the batch's strings come after it.
  exports.Set("h2DataPoolGen", Napi::Boolean::New(env, true));
  exports.Set("writeHttp1Head", http1::WriteHeadFunction(env));
  exports.Set("sendHttp1Head", http1::SendHeadFunction(env));
  exports.Set("bindHttp1HeadWriter", http1::BindWriterFunction(env));
  exports.Set("writeHttp1HeadFromFlat", http1::WriteHeadFromFlatFunction(env));
  exports.Set("sendHttp1HeadHeld", http1::SendHeadHeldFunction(env));
  exports.Set("sendHttp1HeadHeldArgs", http1::SendHeadHeldArgsFunction(env));
  exports.Set("bpf", bpf::Init(env));
  exports.Set("upgrade", upgrade::Init(env));
  exports.Set("execv", process::ExecFunction(env));
  return exports;
}

}  // namespace strait

// The macro pastes its argument into a symbol name, so it needs an unqualified identifier.
static Napi::Object InitStraitNative(Napi::Env env, Napi::Object exports) { return strait::Init(env, exports); }
NODE_API_MODULE(strait_native, InitStraitNative)
