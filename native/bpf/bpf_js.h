// The `bpf` export: sockmap accelerator control and the SO_ORIGINAL_DST helper.
#pragma once
#include <napi.h>

namespace strait::bpf {

// { available, unavailableReason, probe(), ensureBpffs(), enableSockmap(), disableSockmap(),
//   sockmapStatus(), originalDst() } -- see src/intercept/native_bpf.ts for the contract.
Napi::Object Init(Napi::Env env);

}  // namespace strait::bpf
