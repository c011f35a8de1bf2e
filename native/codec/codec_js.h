// The JavaScript boundary of the codecs: decodeHeader, decodeLazy and decodeFrames, typed in
// src/native.ts. They are plain napi callbacks (no node-addon-api CallbackInfo, no exceptions on
// the data path): argument errors throw a TypeError/RangeError, decoding reports through slots.
#pragma once
#include <napi.h>

namespace strait {
namespace codec {

Napi::Function DecodeHeaderFunction(Napi::Env env);
Napi::Function DecodeLazyFunction(Napi::Env env);
Napi::Function DecodeFramesFunction(Napi::Env env);
Napi::Function BindFrameDecoderFunction(Napi::Env env);

}  // namespace codec
}  // namespace strait
