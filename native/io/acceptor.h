// Accepts on a listening fd from inside Node's loop and hands each new fd to JavaScript.
#pragma once
#include <napi.h>
#include <sys/socket.h>
#include <uv.h>

#include "io/env.h"
#include "io/socket_util.h"

namespace strait {

// new Acceptor(fd, onAccept(fd, family, address, port), onError(code)[, repeatPeer[, batch]]). Owns the listening
// fd from construction on; close() stops polling and closes it. Stays alive (Ref) while open
// even if JavaScript drops the object.
class Acceptor : public Napi::ObjectWrap<Acceptor>, public LiveObject {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Acceptor(const Napi::CallbackInfo& info);
  ~Acceptor() override;
  void Abandon() override;

 private:
  Napi::Value Pause(const Napi::CallbackInfo& info);
  Napi::Value Resume(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  void OnReadable();
  // OnReadable with a `batch` array: every connection of the wake-up in one call.
  void OnReadableBatch();
  // One connection taken off the listener, TCP_NODELAY seen to; its peer described unless it
  // repeats the last one's (repeatPeer).
  struct Accepted {
    int fd = -1;
    int port = 0;
    bool has_peer = false;
    sockaddr_storage ss;
    socklen_t len = 0;
    AddressParts parts;
  };
  // 0 with `a` filled; EAGAIN: none left; EINTR: that connection failed, try the next; any
  // other errno: the listener's (EMFILE, ENFILE, ENOBUFS, ENOMEM...).
  int AcceptOne(Accepted& a);
  // The family and address strings of a peer AcceptOne described.
  void PeerStrings(const Accepted& a, napi_value* family, napi_value* address);
  // TCP_NODELAY for an accepted TCP socket: set on it, or found inherited from the listener.
  void NoDelay(int cfd);
  void StartPolling();
  void Backoff();
  void Release();

  strait::Env* env_;
  int fd_;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* backoff_ = nullptr;
  bool polling_ = false;
  bool paused_ = false;
  bool closed_ = false;
  // Accepted sockets inherit the listener's TCP_NODELAY (Linux clones the listening socket):
  // set once on the listener, it saves a setsockopt per connection. The first accepted socket
  // shows whether this kernel does so; if not, each one gets its own setsockopt as before.
  enum class NoDelayFrom : uint8_t { kUnchecked, kListener, kEachSocket };
  NoDelayFrom nodelay_ = NoDelayFrom::kEachSocket;
  Napi::FunctionReference on_accept_;
  Napi::FunctionReference on_error_;
  // With `repeatPeer` (the constructor's fourth argument), a TCP peer with the IP (and IPv6
  // scope) of the connection before it is handed over with family and address undefined: the
  // caller keeps the strings it got for that one. A sidecar's connections come from a few peers
  // (the application on loopback, other sidecars), and formatting the address and making both
  // strings was ~400 instructions a connection. Whether `ss` is the last peer; it is from now on.
  bool SamePeer(const sockaddr_storage& ss);
  bool repeat_peer_ = false;
  struct LastPeer {
    sa_family_t family = AF_UNSPEC;
    uint8_t ip[16] = {};
    uint32_t scope = 0;
  } last_peer_;
  // With `batch` (the fifth argument, an Int32Array), a wake-up's connections reach JavaScript
  // in one call, onAccept(count, peers): batch[2i] and batch[2i + 1] are the i-th one's fd and
  // port, peers[2i] and peers[2i + 1] its family and address (peers undefined when every one
  // repeats the peer before it). A call into JavaScript per connection was ~600 instructions
  // (the entry, its handle and context scopes, two numbers) on a wake-up of ~46 connections.
  Napi::Reference<Napi::Int32Array> batch_;
  Napi::AsyncContext async_;
};

}  // namespace strait
