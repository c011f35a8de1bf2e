#include "bpf/original_dst.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>  // SO_ORIGINAL_DST
#include <netinet/in.h>
#include <sys/socket.h>

#include "io/js_util.h"

// linux/netfilter_ipv6/ip6_tables.h pulls in kernel-only headers; the value is stable ABI.
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

namespace strait::bpf {

Napi::Value OriginalDst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "originalDst", "fd", 0, INT32_MAX);
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) ThrowErrno(env, "originalDst: getsockname", errno);
  sockaddr_storage orig{};
  len = sizeof(orig);
  char buf[INET6_ADDRSTRLEN] = "";
  uint16_t port = 0;
  const char* family = nullptr;
  if (local.ss_family == AF_INET) {
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &len) != 0) {
      // ENOENT: conntrack has no NAT entry for this socket, so it was not redirected: where it
      // was going is its own local address. That is also how a connection handed over by
      // sk_lookup (inbound capture) or TPROXY tells its destination, and it differs from the
      // listener's address when the listener is bound to a wildcard address.
      if (errno != ENOENT) ThrowErrno(env, "originalDst: getsockopt(SO_ORIGINAL_DST)", errno);
      orig = local;
    }
    auto* sin = reinterpret_cast<sockaddr_in*>(&orig);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    port = ntohs(sin->sin_port);
    family = "IPv4";
  } else if (local.ss_family == AF_INET6) {
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig, &len) != 0) {
      if (errno != ENOENT) ThrowErrno(env, "originalDst: getsockopt(IP6T_SO_ORIGINAL_DST)", errno);
      orig = local;
    }
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&orig);
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    port = ntohs(sin6->sin6_port);
    family = "IPv6";
  } else {
    return env.Null();  // unix sockets are never redirected
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("family", family);
  o.Set("address", buf);
  o.Set("port", port);
  return o;
}

}  // namespace strait::bpf
