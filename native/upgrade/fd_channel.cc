#include "upgrade/fd_channel.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "io/js_util.h"

namespace strait::upgrade {

namespace {

// One message carries at most this many fds (a batch of listeners or migrated connections).
constexpr int kMaxFds = 64;
// Control messages are JSON: listener lists, a stats snapshot, unread bytes of one connection.
constexpr size_t kMaxMessage = 4 * 1024 * 1024;

bool FillAddr(const std::string& path, sockaddr_un* addr) {
  if (path.size() >= sizeof(addr->sun_path)) return false;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

// A SEQPACKET message must fit the sender's buffer whole. The *FORCE options pass net.core.wmem_max
// with CAP_NET_ADMIN; without it the kernel caps the size and hot_restart.ts keeps messages small.
void SetBuffers(int fd) {
  int size = static_cast<int>(kMaxMessage);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

// The serving side's fd comes from the addon's Acceptor with default buffers: grow them the first
// time a message would not fit (messages are rare, so one getsockopt per send is nothing).
void EnsureRoom(int fd, size_t len) {
  int have = 0;
  socklen_t n = sizeof(have);
  // The kernel reports twice the size asked for; an skb needs some of it for its own bookkeeping.
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &n) == 0 && static_cast<size_t>(have) >= 2 * len) return;
  SetBuffers(fd);
}

// listen(path) -> fd. Non-blocking, so the serving process polls it without stalling.
Napi::Value Listen(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "upgrade.listen", "path");
  sockaddr_un addr;
  if (!FillAddr(path, &addr)) throw Napi::RangeError::New(info.Env(), "upgrade.listen: path too long");
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), "upgrade.listen: socket", errno);
  unlink(path.c_str());  // a stale path from a crashed process would refuse the bind
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 || listen(fd, 4) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(info.Env(), "upgrade.listen " + path, err);
  }
  return Napi::Number::New(info.Env(), fd);
}

// connect(path) -> fd, or -1 when nothing listens there (no running process to take over from).
Napi::Value Connect(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "upgrade.connect", "path");
  sockaddr_un addr;
  if (!FillAddr(path, &addr)) throw Napi::RangeError::New(info.Env(), "upgrade.connect: path too long");
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), "upgrade.connect: socket", errno);
  SetBuffers(fd);
  // A unix connect completes at once or fails at once; EAGAIN means the backlog is full.
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    int err = errno;
    close(fd);
    if (err == ENOENT || err == ECONNREFUSED) return Napi::Number::New(info.Env(), -1);
    ThrowErrno(info.Env(), "upgrade.connect " + path, err);
  }
  return Napi::Number::New(info.Env(), fd);
}

// send(fd, data, fds[]) -> void. One message; waits up to 5 s for room.
Napi::Value Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "upgrade.send", "fd", 0, INT32_MAX);
  if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "upgrade.send: data must be a Buffer");
  auto data = info[1].As<Napi::Buffer<uint8_t>>();
  if (data.Length() > kMaxMessage) throw Napi::RangeError::New(env, "upgrade.send: message too large");
  std::vector<int> fds;
  if (info.Length() > 2 && info[2].IsArray()) {
    auto arr = info[2].As<Napi::Array>();
    if (arr.Length() > kMaxFds) throw Napi::RangeError::New(env, "upgrade.send: too many fds");
    for (uint32_t i = 0; i < arr.Length(); i++) fds.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  }
  EnsureRoom(fd, data.Length());
  iovec iov{data.Data(), data.Length()};
  // CMSG_SPACE needs a constant for the array bound: size the buffer for the maximum.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) >= 0) return env.Undefined();
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) ThrowErrno(env, "upgrade.send", errno);
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, 5000) <= 0) ThrowErrno(env, "upgrade.send: peer not reading", ETIMEDOUT);
  }
}

// recv(fd, timeoutMs) -> { data, fds } | { eof: true } | null (nothing within the timeout).
Napi::Value Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "upgrade.recv", "fd", 0, INT32_MAX);
  int timeout = ArgInt(info, 1, "upgrade.recv", "timeoutMs", 0, 600000);
  pollfd p{fd, POLLIN, 0};
  int r;
  do r = poll(&p, 1, timeout);
  while (r < 0 && errno == EINTR);
  if (r < 0) ThrowErrno(env, "upgrade.recv: poll", errno);
  if (r == 0) return env.Null();
  std::vector<uint8_t> buf(kMaxMessage);
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, "upgrade.recv", errno);
  }
  Napi::Object out = Napi::Object::New(env);
  if (n == 0) {  // messages are never empty: zero means the peer closed
    out.Set("eof", true);
    return out;
  }
  Napi::Array fds = Napi::Array::New(env);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* got = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < count; i++) fds.Set(fds.Length(), Napi::Number::New(env, got[i]));
  }
  out.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n)));
  out.Set("fds", fds);
  return out;
}

// dup(fd) -> fd: a listener keeps serving on its own fd while a copy is handed over.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "upgrade.dup", "fd", 0, INT32_MAX);
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) ThrowErrno(info.Env(), "upgrade.dup", errno);
  return Napi::Number::New(info.Env(), copy);
}

}  // namespace

Napi::Object Init(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("listen", Napi::Function::New(env, Listen, "listen"));
  o.Set("connect", Napi::Function::New(env, Connect, "connect"));
  o.Set("send", Napi::Function::New(env, Send, "send"));
  o.Set("recv", Napi::Function::New(env, Recv, "recv"));
  o.Set("dup", Napi::Function::New(env, Dup, "dup"));
  return o;
}

}  // namespace strait::upgrade
