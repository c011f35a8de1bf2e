// Socket set-up outside the data path: listen, addresses, errors. These run at configuration
// time and may throw JS errors; nothing here is called per byte.
#pragma once
#include <napi.h>
#include <sys/socket.h>

#include <string>

namespace strait {

// "EADDRINUSE (Address already in use)"
std::string ErrnoText(int err);
// Throws a JS Error whose `code` is the errno name.
[[noreturn]] void ThrowErrno(Napi::Env env, const std::string& what, int err);

// Fills `ss` from an IP literal and port; false if `host` is not an IP literal.
bool ParseIp(const std::string& host, int port, sockaddr_storage* ss, socklen_t* len);
// {family, address, port}; unix sockets report their path as address.
Napi::Object AddressObject(Napi::Env env, const sockaddr_storage& ss, socklen_t len);

Napi::Value ListenTcp(const Napi::CallbackInfo& info);
Napi::Value ListenUnix(const Napi::CallbackInfo& info);
Napi::Value LocalAddress(const Napi::CallbackInfo& info);
Napi::Value CloseFd(const Napi::CallbackInfo& info);
Napi::Value ErrnoName(const Napi::CallbackInfo& info);
Napi::Value Stats(const Napi::CallbackInfo& info);

}  // namespace strait
