// libbpf side of the sockmap accelerator (bpf/sockops.bpf.c + bpf/redirect.bpf.c) and of the
// connect4/6 + getsockopt capture (bpf/capture.bpf.c) that comes with it: load,
// attach, pin, inspect, detach. Plain C++ with no Node-API, so the calls can run on a worker
// thread (bpf_js.cc wraps them in AsyncWorkers). Compiled only when STRAIT_HAVE_BPF is set.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strait::bpf {

// Outcome of a call: err is 0 or a positive errno; message says which step failed and
// carries libbpf's own diagnostics (the verifier log, for instance).
struct Result {
  int err = 0;
  std::string message;
  bool ok() const { return err == 0; }
};

struct SockmapOptions {
  std::string cgroup;   // cgroup v2 directory whose sockets are accelerated
  std::string pin_dir;  // e.g. /sys/fs/bpf/strait/default; must not exist yet
  std::vector<uint16_t> ports;          // only connections touching these (empty: all loopback)
  std::vector<uint16_t> exclude_ports;  // never these (nor captured)
  // Transparent capture: 0 = off; else connects of the cgroup to non-local addresses go to
  // 127.0.0.1:capture_port ([::1] for IPv6) and SO_ORIGINAL_DST answers where they were going.
  uint16_t capture_port = 0;
  std::vector<uint32_t> exempt_uids, exempt_gids;  // never captured (the sidecar's own connects)
  // The sidecar's (exempt uids/gids) loopback connects are accelerated whatever their port, with
  // their peer when it is in the cgroup: connect4/6 are attached for this even without capture.
  bool sidecar_accel = false;
  // Captured connections to these original destination ports are not accelerated (bulk).
  std::vector<uint16_t> bulk_ports;
  // Bulk detection in the sk_msg program (bpf/redirect.bpf.c): a sending direction that sends
  // bulk_detect_bytes within bulk_detect_window_ns, with no reply in between and messages
  // averaging under bulk_detect_max_msg bytes, goes to plain TCP for good. Any 0: off.
  uint64_t bulk_detect_bytes = 0, bulk_detect_window_ns = 0;
  uint32_t bulk_detect_max_msg = 0;
  // Inbound capture (sk_lookup, this process's network namespace): connections from other
  // hosts to these app ports go to the listening socket `inbound_fd` of process `inbound_pid`.
  std::vector<uint16_t> inbound_ports;
  int inbound_pid = 0, inbound_fd = -1;
};

// What EnableSockmap installed beyond the accelerator.
struct SockmapEnabled {
  bool capture = false;
  bool capture_ipv6 = false;  // connect6 loaded and attached (dropped when the kernel rejects it)
  bool inbound = false;       // sk_lookup attached to the network namespace
  bool sidecar_accel = false; // connect4 notes the sidecar's loopback connects for sockops
};

// A captured connection still open: the app's end, and where it asked to go.
struct CapturedConn {
  int family = 0;  // 4 or 6, of the app <-> sidecar connection
  std::string client_ip, sidecar_ip;
  uint32_t client_port = 0, sidecar_port = 0;
  int original_family = 0;
  std::string original_ip;
  uint32_t original_port = 0;
  uint64_t netns = 0;
};

struct SockEntry {
  int family = 0;  // 4 or 6
  std::string local_ip, remote_ip;
  uint32_t local_port = 0, remote_port = 0;
  uint64_t netns = 0;
};

constexpr int kStatCount = 14;  // STAT_COUNT in bpf/intercept.h (checked by a static_assert)

struct SockmapStatus {
  std::vector<std::string> pins;  // pin names found in pin_dir
  bool link_attached = false;
  uint64_t cgroup_id = 0;  // the cgroup the sockops link is attached to (its inode number)
  uint32_t sockops_prog_id = 0, redirect_prog_id = 0, sock_map_id = 0, stats_map_id = 0;
  bool verdict_attached = false;  // the sk_msg program is attached to sock_hash
  std::vector<SockEntry> sockets;
  uint64_t stats[kStatCount] = {};
  // Capture (all false / empty when it was not enabled).
  bool connect4_attached = false, connect6_attached = false, getsockopt_attached = false, getpeername_attached = false;
  bool inbound_attached = false;
  std::vector<CapturedConn> captured;
  uint32_t pending_captures = 0;  // connect() recorded, SYN not sent yet (or the connect failed)
};

struct ProbeResult {
  bool sockops = false, sk_msg = false, sockhash = false;
  Result load;  // loading both objects for real (nothing attached)
  Result capture_load;  // loading capture.bpf.c (connect4 + getsockopt) as well
  bool capture_ipv6 = false;  // its connect6 program loaded too
};

// Makes sure `path` is a bpffs mount; mounts one when it is not. *mounted tells which.
Result EnsureBpffs(const std::string& path, bool* mounted);
Result EnableSockmap(const SockmapOptions& opts, SockmapEnabled* enabled);
// Removes whatever part of an installation exists under pin_dir (also half-made ones).
Result DisableSockmap(const std::string& pin_dir, std::vector<std::string>* removed);
// err ENOENT when nothing is pinned there.
Result SockmapStatusOf(const std::string& pin_dir, SockmapStatus* out);
ProbeResult Probe();

}  // namespace strait::bpf
