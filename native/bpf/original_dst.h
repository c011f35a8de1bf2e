// SO_ORIGINAL_DST: where a connection that iptables/nft REDIRECT captured was really going.
#pragma once
#include <napi.h>

namespace strait::bpf {

// originalDst(fd) -> { family, address, port } | null (null: the connection was not
// redirected, i.e. conntrack has no NAT for it; throws for a bad fd).
Napi::Value OriginalDst(const Napi::CallbackInfo& info);

}  // namespace strait::bpf
