#include "io/socket_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "io/js_util.h"

namespace strait {

bool ParseIp(const std::string& host_in, int port, sockaddr_storage* ss, socklen_t* len) {
  std::string host = host_in;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  memset(ss, 0, sizeof(*ss));
  addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // AI_NUMERICHOST: literals only, so this never blocks on DNS; unlike inet_pton it also
  // accepts IPv6 scope ids ("fe80::1%eth0"), which link-local upstreams need.
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  if (host.empty() || getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0 || res == nullptr) return false;
  bool ok = res->ai_addrlen <= sizeof(*ss) && (res->ai_family == AF_INET || res->ai_family == AF_INET6);
  if (ok) {
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
  }
  freeaddrinfo(res);
  return ok;
}

bool ParseUnix(const std::string& path, sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof(*ss));
  auto* sun = reinterpret_cast<sockaddr_un*>(ss);
  // Pathname sockets need the terminating NUL inside sun_path; abstract names do not, but
  // their '@' stands for the leading NUL byte, so both fit when size < sizeof(sun_path).
  if (path.empty() || path.size() >= sizeof(sun->sun_path) || path == "@") return false;
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, path.data(), path.size());
  if (path[0] == '@') {
    sun->sun_path[0] = '\0';
    // Abstract names are length-delimited, not NUL-terminated: the length is part of the name.
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  }
  return true;
}

// Dotted quad into `out` (16 bytes or more); its length. inet_ntop formats IPv4 through
// sprintf, which showed in profiles of a connection per request (every accept names its peer).
static size_t FormatIPv4(const in_addr& in, char* out) {
  const uint8_t* b = reinterpret_cast<const uint8_t*>(&in.s_addr);  // network order: a.b.c.d
  char* p = out;
  for (int i = 0; i < 4; i++) {
    unsigned v = b[i];
    if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
    if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
    *p++ = static_cast<char>('0' + v % 10);
    if (i < 3) *p++ = '.';
  }
  *p = '\0';
  return static_cast<size_t>(p - out);
}

AddressParts DescribeAddress(const sockaddr_storage& ss, socklen_t len) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    size_t n = FormatIPv4(a->sin_addr, buf);
    return {"IPv4", std::string(buf, n), ntohs(a->sin_port)};
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    std::string addr = buf;
    // Link-local peers are only reachable through their interface: keep the "%scope" suffix.
    if (a->sin6_scope_id != 0) {
      char ifname[IF_NAMESIZE] = {0};
      addr += "%";
      addr += if_indextoname(a->sin6_scope_id, ifname) ? ifname : std::to_string(a->sin6_scope_id);
    }
    return {"IPv6", addr, ntohs(a->sin6_port)};
  }
  auto* a = reinterpret_cast<const sockaddr_un*>(&ss);
  // An unnamed socket (every client of a unix listener) has only the family in its address.
  size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
  if (n == 0) return {"unix", std::string(), 0};
  if (a->sun_path[0] == '\0') return {"unix", "@" + std::string(a->sun_path + 1, n - 1), 0};
  // The kernel may or may not count the trailing NUL; a maximal path has none at all.
  return {"unix", std::string(a->sun_path, strnlen(a->sun_path, n)), 0};
}

Napi::Object AddressObject(Napi::Env env, const sockaddr_storage& ss, socklen_t len) {
  AddressParts p = DescribeAddress(ss, len);
  Napi::Object o = Napi::Object::New(env);
  o.Set("family", p.family);
  o.Set("address", p.address);
  o.Set("port", p.port);
  return o;
}

void SetNoDelay(int fd) {
  // Proxied bytes must go out as soon as they are read: Nagle would hold back the tail of
  // every response until the peer's delayed ACK.
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Binds and listens `fd`, closing it and throwing on failure.
static void BindListen(Napi::Env env, int fd, const sockaddr_storage& ss, socklen_t len, int backlog, const std::string& where) {
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "bind " + where, err);
  }
  if (listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "listen " + where, err);
  }
}

Napi::Value ListenTcp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = ArgString(info, 0, "listenTcp", "host");
  int port = ArgInt(info, 1, "listenTcp", "port", 0, 65535);
  int backlog = ArgInt(info, 2, "listenTcp", "backlog", 0, INT32_MAX);
  bool reuse_port = info[3].ToBoolean();
  sockaddr_storage ss;
  socklen_t len;
  if (!ParseIp(host, port, &ss, &len)) throw Napi::TypeError::New(env, "listenTcp: bad address (not an IP literal): " + host);
  // SOCK_NONBLOCK: accept4 runs from the loop and must return EAGAIN rather than block it.
  // SOCK_CLOEXEC: child processes must not inherit (and keep open) the listening port.
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", errno);
  int one = 1;
  // SO_REUSEADDR: rebinding right after a restart must not fail on TIME_WAIT connections.
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  // SO_REUSEPORT: one listening socket per worker on the same port, balanced by the kernel.
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "setsockopt SO_REUSEPORT", err);
  }
  std::string where = (ss.ss_family == AF_INET6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  BindListen(env, fd, ss, len, backlog, where);
  return Napi::Number::New(env, fd);
}

// A socket file at `path` from a process that is gone refuses connections; a live one accepts
// (or at least does not refuse). Only the former may be replaced.
static bool IsStaleSocket(const sockaddr_storage& ss, socklen_t len) {
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  int r = connect(probe, reinterpret_cast<const sockaddr*>(&ss), len);
  int err = r == 0 ? 0 : errno;
  close(probe);
  // EAGAIN: a live listener with a full backlog (unix connect does not return EINPROGRESS).
  return err == ECONNREFUSED;
}

Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "listenUnix", "path");
  int backlog = ArgInt(info, 1, "listenUnix", "backlog", 0, INT32_MAX);
  sockaddr_storage ss;
  socklen_t len;
  if (!ParseUnix(path, &ss, &len)) throw Napi::TypeError::New(env, "listenUnix: path empty or too long: " + path);
  if (path[0] != '@') {
    // A socket file left by a crashed process makes bind fail with EADDRINUSE. Remove it only
    // if it is a socket and nobody listens on it: never delete a regular file someone
    // mistyped as the path, never steal a live sidecar's socket.
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) ThrowErrno(env, "listenUnix " + path + " exists and is not a socket", EADDRINUSE);
      if (!IsStaleSocket(ss, len)) ThrowErrno(env, "listenUnix " + path + " is in use", EADDRINUSE);
      unlink(path.c_str());
    }
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", errno);
  BindListen(env, fd, ss, len, backlog, path);
  return Napi::Number::New(env, fd);
}

Napi::Value LocalAddress(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "localAddress", "fd", 0, INT32_MAX);
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) ThrowErrno(info.Env(), "getsockname", errno);
  return AddressObject(info.Env(), ss, len);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "closeFd", "fd", 0, INT32_MAX);
  // EINTR is not retried: on Linux the fd is released even when close is interrupted, and a
  // retry could close an fd another thread just got. EBADF means a double close: a caller bug.
  if (close(fd) != 0 && errno == EBADF) ThrowErrno(info.Env(), "closeFd", EBADF);
  return info.Env().Undefined();
}

Napi::Value ShutdownFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "shutdownFd", "fd", 0, INT32_MAX);
  // The caller's write side is done: a FIN follows what the kernel already holds. A peer that
  // already left (ENOTCONN) is the caller's to notice by its reads, not an exception.
  int r = shutdown(fd, SHUT_WR);
  return Napi::Number::New(info.Env(), r == 0 ? 0 : -errno);
}

Napi::Value PeekFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "peekFd", "fd", 0, INT32_MAX);
  if (info.Length() < 2 || !info[1].IsBuffer()) {
    Napi::TypeError::New(info.Env(), "peekFd: buf must be a Buffer").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  // What the peer has sent so far, left in the socket for whoever reads it next; never waits.
  ssize_t n;
  do {
    n = recv(fd, buf.Data(), buf.Length(), MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), n < 0 ? -errno : static_cast<double>(n));
}

}  // namespace strait
