#include "io/socket_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "io/env.h"

namespace strait {

std::string ErrnoText(int err) { return std::string(uv_err_name(-err)) + " (" + strerror(err) + ")"; }

void ThrowErrno(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + ErrnoText(err));
  e.Set("code", Napi::String::New(env, uv_err_name(-err)));
  e.Set("errno", Napi::Number::New(env, -err));
  throw e;
}

bool ParseIp(const std::string& host, int port, sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof(*ss));
  auto* v4 = reinterpret_cast<sockaddr_in*>(ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

Napi::Object AddressObject(Napi::Env env, const sockaddr_storage& ss, socklen_t len) {
  Napi::Object o = Napi::Object::New(env);
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    o.Set("family", "IPv4");
    o.Set("address", buf);
    o.Set("port", ntohs(a->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    o.Set("family", "IPv6");
    o.Set("address", buf);
    o.Set("port", ntohs(a->sin6_port));
  } else {
    auto* a = reinterpret_cast<const sockaddr_un*>(&ss);
    // An unnamed peer (every client of a unix listener) has no path.
    std::string path = len > sizeof(sa_family_t) ? std::string(a->sun_path) : std::string();
    o.Set("family", "unix");
    o.Set("address", path);
    o.Set("port", 0);
  }
  return o;
}

Napi::Value ListenTcp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = info[0].As<Napi::String>();
  int port = info[1].As<Napi::Number>().Int32Value();
  int backlog = info[2].As<Napi::Number>().Int32Value();
  bool reuse_port = info[3].ToBoolean();
  sockaddr_storage ss;
  socklen_t len;
  if (port < 0 || port > 65535 || !ParseIp(host, port, &ss, &len)) {
    throw Napi::TypeError::New(env, "listenTcp: bad address " + host + ":" + std::to_string(port));
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  std::string where = host + ":" + std::to_string(port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "bind " + where, err);
  }
  if (listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "listen " + where, err);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  int backlog = info[1].As<Napi::Number>().Int32Value();
  sockaddr_un sun;
  memset(&sun, 0, sizeof(sun));
  if (path.empty() || path.size() >= sizeof(sun.sun_path)) {
    throw Napi::TypeError::New(env, "listenUnix: path empty or too long: " + path);
  }
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path.c_str(), path.size());
  // A socket file left by a crashed process would make bind fail; remove only sockets.
  struct stat st;
  if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path.c_str());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", errno);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "bind " + path, err);
  }
  if (listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "listen " + path, err);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value LocalAddress(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) ThrowErrno(info.Env(), "getsockname", errno);
  return AddressObject(info.Env(), ss, len);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value ErrnoName(const Napi::CallbackInfo& info) {
  int code = info[0].As<Napi::Number>().Int32Value();
  return Napi::String::New(info.Env(), uv_err_name(code));
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Env* e = GetEnv(info.Env());
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("poolChunks", static_cast<double>(e->pool.allocated()));
  o.Set("poolChunksInUse", static_cast<double>(e->pool.in_use()));
  o.Set("poolBytes", static_cast<double>(e->pool.allocated() * BufferPool::kChunkSize));
  o.Set("pipesActive", static_cast<double>(e->stats.pipes_active));
  o.Set("readCalls", static_cast<double>(e->stats.read_calls));
  o.Set("writevCalls", static_cast<double>(e->stats.writev_calls));
  return o;
}

}  // namespace strait
