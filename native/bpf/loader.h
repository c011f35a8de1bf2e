// libbpf side of the sockmap accelerator (bpf/sockops.bpf.c + bpf/redirect.bpf.c): load,
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
  std::vector<uint16_t> exclude_ports;  // never these
};

struct SockEntry {
  int family = 0;  // 4 or 6
  std::string local_ip, remote_ip;
  uint32_t local_port = 0, remote_port = 0;
  uint64_t netns = 0;
};

constexpr int kStatCount = 4;  // STAT_COUNT in bpf/intercept.h (checked by a static_assert)

struct SockmapStatus {
  std::vector<std::string> pins;  // pin names found in pin_dir
  bool link_attached = false;
  uint64_t cgroup_id = 0;  // the cgroup the sockops link is attached to (its inode number)
  uint32_t sockops_prog_id = 0, redirect_prog_id = 0, sock_map_id = 0, stats_map_id = 0;
  bool verdict_attached = false;  // the sk_msg program is attached to sock_hash
  std::vector<SockEntry> sockets;
  uint64_t stats[kStatCount] = {};
};

struct ProbeResult {
  bool sockops = false, sk_msg = false, sockhash = false;
  Result load;  // loading both objects for real (nothing attached)
};

// Makes sure `path` is a bpffs mount; mounts one when it is not. *mounted tells which.
Result EnsureBpffs(const std::string& path, bool* mounted);
Result EnableSockmap(const SockmapOptions& opts);
// Removes whatever part of an installation exists under pin_dir (also half-made ones).
Result DisableSockmap(const std::string& pin_dir, std::vector<std::string>* removed);
// err ENOENT when nothing is pinned there.
Result SockmapStatusOf(const std::string& pin_dir, SockmapStatus* out);
ProbeResult Probe();

}  // namespace strait::bpf
