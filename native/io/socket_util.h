// Socket set-up outside the data path: listen, connect addresses, address reporting. These run
// at configuration or connection-setup time and may throw JS errors; nothing here runs per byte.
#pragma once
#include <napi.h>
#include <sys/socket.h>

#include <string>

namespace strait {

// Fills `ss` from an IP literal (IPv4, IPv6, IPv6 with %scope, [brackets] tolerated) and port.
// Never resolves names: DNS belongs to TypeScript. False when `host` is not a literal.
bool ParseIp(const std::string& host, int port, sockaddr_storage* ss, socklen_t* len);
// Fills `ss` for a unix stream socket path; a leading '@' names Linux's abstract namespace
// (Envoy's convention for `pipe` addresses). False when the path is empty or too long.
bool ParseUnix(const std::string& path, sockaddr_storage* ss, socklen_t* len);

// The three pieces JavaScript sees: family ('IPv4' | 'IPv6' | 'unix'), address, port.
struct AddressParts {
  const char* family;
  std::string address;
  int port;
};
AddressParts DescribeAddress(const sockaddr_storage& ss, socklen_t len);
Napi::Object AddressObject(Napi::Env env, const sockaddr_storage& ss, socklen_t len);

void SetNoDelay(int fd);

Napi::Value ListenTcp(const Napi::CallbackInfo& info);
Napi::Value ListenUnix(const Napi::CallbackInfo& info);
Napi::Value LocalAddress(const Napi::CallbackInfo& info);
Napi::Value CloseFd(const Napi::CallbackInfo& info);
// shutdownFd(fd): shutdown(SHUT_WR); 0 or -errno.
Napi::Value ShutdownFd(const Napi::CallbackInfo& info);
Napi::Value PeekFd(const Napi::CallbackInfo& info);

}  // namespace strait
