// The hot-restart channel: a unix SOCK_SEQPACKET socket between two Strait processes that
// carries small control messages with file descriptors attached (SCM_RIGHTS). Control path
// only: every call is synchronous and bounded by a poll timeout.
#pragma once
#include <napi.h>

namespace strait::upgrade {

Napi::Object Init(Napi::Env env);

}  // namespace strait::upgrade
