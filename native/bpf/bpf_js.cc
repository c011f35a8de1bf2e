#include "bpf/bpf_js.h"

#include <errno.h>
#include <string.h>

#include <functional>
#include <memory>

#include "bpf/original_dst.h"
#include "io/js_util.h"

#ifdef STRAIT_HAVE_BPF
#include "bpf/loader.h"
#endif

namespace strait::bpf {

#ifdef STRAIT_HAVE_BPF

namespace {

// Loading, attaching and pinning take milliseconds to seconds (the verifier), so they run on
// the libuv thread pool; the promise settles on the JS thread.
class Job : public Napi::AsyncWorker {
 public:
  using Work = std::function<Result()>;
  using Done = std::function<Napi::Value(Napi::Env)>;
  Job(Napi::Env env, Work work, Done done)
      : Napi::AsyncWorker(env, "strait.bpf"), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)), done_(std::move(done)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { result_ = work_(); }
  void OnOK() override {
    Napi::Env env = Env();
    if (result_.ok()) {
      deferred_.Resolve(done_(env));
      return;
    }
    std::string name = ErrnoNameOf(result_.err);
    Napi::Error e = Napi::Error::New(env, result_.message);
    e.Set("code", Napi::String::New(env, name));
    e.Set("errno", Napi::Number::New(env, -result_.err));
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  Result result_;
};

std::vector<uint16_t> PortList(Napi::Object opts, const char* key) {
  std::vector<uint16_t> out;
  Napi::Value v = opts.Get(key);
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(opts.Env(), std::string("enableSockmap: ") + key + " must be an array");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value p = a.Get(i);
    double d = p.IsNumber() ? p.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 1 && d <= 65535) || static_cast<double>(static_cast<int>(d)) != d) {
      throw Napi::RangeError::New(opts.Env(), std::string("enableSockmap: ") + key + " holds a bad port");
    }
    out.push_back(static_cast<uint16_t>(d));
  }
  return out;
}

std::vector<uint32_t> IdList(Napi::Object opts, const char* key) {
  std::vector<uint32_t> out;
  Napi::Value v = opts.Get(key);
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(opts.Env(), std::string("enableSockmap: ") + key + " must be an array");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value x = a.Get(i);
    double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : -1;
    // (uid_t)-1 means "no change" to the kernel: never a real identity.
    if (!(d >= 0 && d < 4294967295.0) || static_cast<double>(static_cast<uint32_t>(d)) != d) {
      throw Napi::RangeError::New(opts.Env(), std::string("enableSockmap: ") + key + " holds a bad id");
    }
    out.push_back(static_cast<uint32_t>(d));
  }
  return out;
}

std::string OptString(Napi::Object opts, const char* key, const char* fn) {
  Napi::Value v = opts.Get(key);
  if (!v.IsString() || v.As<Napi::String>().Utf8Value().empty()) {
    throw Napi::TypeError::New(opts.Env(), std::string(fn) + ": " + key + " must be a non-empty string");
  }
  return v.As<Napi::String>().Utf8Value();
}

Napi::Value ResultObject(Napi::Env env, const Result& r) {
  if (r.ok()) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("code", ErrnoNameOf(r.err));
  o.Set("message", r.message);
  return o;
}

Napi::Value ProbeJs(const Napi::CallbackInfo& info) {
  auto out = std::make_shared<ProbeResult>();
  auto* job = new Job(
      info.Env(),
      [out]() {
        *out = strait::bpf::Probe();
        return Result{};
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("sockops", out->sockops);
        o.Set("skMsg", out->sk_msg);
        o.Set("sockhash", out->sockhash);
        o.Set("loadError", ResultObject(env, out->load));
        o.Set("captureLoadError", ResultObject(env, out->capture_load));
        o.Set("captureIpv6", out->capture_ipv6);
        return o;
      });
  job->Queue();
  return job->Promise();
}

Napi::Value EnsureBpffsJs(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "ensureBpffs", "path");
  auto mounted = std::make_shared<bool>(false);
  auto* job = new Job(
      info.Env(), [path, mounted]() { return EnsureBpffs(path, mounted.get()); },
      [mounted](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, *mounted); });
  job->Queue();
  return job->Promise();
}

Napi::Value Enable(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "enableSockmap: options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  SockmapOptions opts;
  opts.cgroup = OptString(o, "cgroup", "enableSockmap");
  opts.pin_dir = OptString(o, "pinDir", "enableSockmap");
  opts.ports = PortList(o, "ports");
  opts.exclude_ports = PortList(o, "excludePorts");
  opts.bulk_ports = PortList(o, "bulkPorts");
  // Bulk detection settings: non-negative integers, 0 (or absent) turns detection off.
  auto count = [&](const char* key, double max) -> double {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return 0;
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= max) || static_cast<double>(static_cast<uint64_t>(d)) != d) {
      throw Napi::RangeError::New(info.Env(), std::string("enableSockmap: ") + key + " must be an integer from 0 to " + std::to_string(static_cast<uint64_t>(max)));
    }
    return d;
  };
  opts.bulk_detect_bytes = static_cast<uint64_t>(count("bulkDetectBytes", 9007199254740991.0));
  opts.bulk_detect_window_ns = static_cast<uint64_t>(count("bulkDetectWindowNs", 9007199254740991.0));
  opts.bulk_detect_max_msg = static_cast<uint32_t>(count("bulkDetectMaxMsg", 4294967295.0));
  Napi::Value cport = o.Get("capturePort");
  if (!cport.IsUndefined()) {
    double d = cport.IsNumber() ? cport.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 65535) || static_cast<double>(static_cast<int>(d)) != d) {
      throw Napi::RangeError::New(info.Env(), "enableSockmap: capturePort must be a port (0 = no capture)");
    }
    opts.capture_port = static_cast<uint16_t>(d);
  }
  opts.exempt_uids = IdList(o, "exemptUids");
  opts.exempt_gids = IdList(o, "exemptGids");
  Napi::Value sidecar = o.Get("sidecarAccel");
  if (!sidecar.IsUndefined() && !sidecar.IsBoolean()) throw Napi::TypeError::New(info.Env(), "enableSockmap: sidecarAccel must be a boolean");
  opts.sidecar_accel = sidecar.IsBoolean() && sidecar.As<Napi::Boolean>().Value();
  opts.inbound_ports = PortList(o, "inboundPorts");
  if (!opts.inbound_ports.empty()) {
    Napi::Value pid = o.Get("inboundPid"), fd = o.Get("inboundFd");
    if (!pid.IsNumber() || !fd.IsNumber() || pid.As<Napi::Number>().Int32Value() <= 0 || fd.As<Napi::Number>().Int32Value() < 0) {
      throw Napi::TypeError::New(info.Env(), "enableSockmap: inboundPorts needs inboundPid and inboundFd (the sidecar's inbound listening socket)");
    }
    opts.inbound_pid = pid.As<Napi::Number>().Int32Value();
    opts.inbound_fd = fd.As<Napi::Number>().Int32Value();
  }
  auto enabled = std::make_shared<SockmapEnabled>();
  auto* job = new Job(
      info.Env(), [opts, enabled]() { return EnableSockmap(opts, enabled.get()); },
      [enabled](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("capture", enabled->capture);
        r.Set("captureIpv6", enabled->capture_ipv6);
        r.Set("inbound", enabled->inbound);
        r.Set("sidecarAccel", enabled->sidecar_accel);
        return r;
      });
  job->Queue();
  return job->Promise();
}

Napi::Value Disable(const Napi::CallbackInfo& info) {
  std::string dir = ArgString(info, 0, "disableSockmap", "pinDir");
  auto removed = std::make_shared<std::vector<std::string>>();
  auto* job = new Job(
      info.Env(), [dir, removed]() { return DisableSockmap(dir, removed.get()); },
      [removed](Napi::Env env) -> Napi::Value {
        Napi::Array a = Napi::Array::New(env, removed->size());
        for (uint32_t i = 0; i < removed->size(); i++) a.Set(i, (*removed)[i]);
        return a;
      });
  job->Queue();
  return job->Promise();
}

// Synchronous: a handful of bpf() syscalls on pinned objects, no verifier.
Napi::Value Status(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = ArgString(info, 0, "sockmapStatus", "pinDir");
  SockmapStatus s;
  Result r = SockmapStatusOf(dir, &s);
  if (r.err == ENOENT) return env.Null();
  if (!r.ok()) ThrowErrno(env, r.message, r.err);
  Napi::Object o = Napi::Object::New(env);
  Napi::Array pins = Napi::Array::New(env, s.pins.size());
  for (uint32_t i = 0; i < s.pins.size(); i++) pins.Set(i, s.pins[i]);
  o.Set("pins", pins);
  o.Set("linkAttached", s.link_attached);
  // Cgroup ids are inode numbers (< 2^53 in practice); a Number keeps the JSON simple.
  o.Set("cgroupId", static_cast<double>(s.cgroup_id));
  o.Set("sockopsProgId", s.sockops_prog_id);
  o.Set("redirectProgId", s.redirect_prog_id);
  o.Set("sockMapId", s.sock_map_id);
  o.Set("statsMapId", s.stats_map_id);
  o.Set("verdictAttached", s.verdict_attached);
  Napi::Array socks = Napi::Array::New(env, s.sockets.size());
  for (uint32_t i = 0; i < s.sockets.size(); i++) {
    const SockEntry& e = s.sockets[i];
    Napi::Object so = Napi::Object::New(env);
    so.Set("family", e.family == 4 ? "IPv4" : "IPv6");
    so.Set("localAddress", e.local_ip);
    so.Set("localPort", e.local_port);
    so.Set("remoteAddress", e.remote_ip);
    so.Set("remotePort", e.remote_port);
    so.Set("netnsCookie", Napi::BigInt::New(env, static_cast<uint64_t>(e.netns)));
    socks.Set(i, so);
  }
  o.Set("sockets", socks);
  Napi::Object st = Napi::Object::New(env);
  // Names follow enum strait_stat in bpf/intercept.h.
  st.Set("socketsAdded", static_cast<double>(s.stats[0]));
  st.Set("socketsSkipped", static_cast<double>(s.stats[1]));
  st.Set("msgRedirected", static_cast<double>(s.stats[2]));
  st.Set("msgPassed", static_cast<double>(s.stats[3]));
  st.Set("connectCaptured", static_cast<double>(s.stats[4]));
  st.Set("connectExempt", static_cast<double>(s.stats[5]));
  st.Set("origDstAnswered", static_cast<double>(s.stats[6]));
  st.Set("socketsBulk", static_cast<double>(s.stats[7]));
  st.Set("inboundSteered", static_cast<double>(s.stats[8]));
  st.Set("socketsSwitchedToTcp", static_cast<double>(s.stats[9]));
  st.Set("msgSwitchedToTcp", static_cast<double>(s.stats[10]));
  st.Set("socketsUnmapped", static_cast<double>(s.stats[11]));
  st.Set("sidecarConnects", static_cast<double>(s.stats[12]));
  st.Set("sidecarUnmapped", static_cast<double>(s.stats[13]));
  o.Set("stats", st);
  Napi::Object cap = Napi::Object::New(env);
  cap.Set("connect4Attached", s.connect4_attached);
  cap.Set("connect6Attached", s.connect6_attached);
  cap.Set("getsockoptAttached", s.getsockopt_attached);
  cap.Set("getpeernameAttached", s.getpeername_attached);
  cap.Set("inboundAttached", s.inbound_attached);
  cap.Set("pending", s.pending_captures);
  Napi::Array conns = Napi::Array::New(env, s.captured.size());
  for (uint32_t i = 0; i < s.captured.size(); i++) {
    const CapturedConn& c = s.captured[i];
    Napi::Object co = Napi::Object::New(env);
    co.Set("family", c.family == 4 ? "IPv4" : "IPv6");
    co.Set("clientAddress", c.client_ip);
    co.Set("clientPort", c.client_port);
    co.Set("sidecarAddress", c.sidecar_ip);
    co.Set("sidecarPort", c.sidecar_port);
    co.Set("originalFamily", c.original_family == 4 ? "IPv4" : "IPv6");
    co.Set("originalAddress", c.original_ip);
    co.Set("originalPort", c.original_port);
    co.Set("netnsCookie", Napi::BigInt::New(env, static_cast<uint64_t>(c.netns)));
    conns.Set(i, co);
  }
  cap.Set("connections", conns);
  o.Set("capture", cap);
  return o;
}

}  // namespace

#endif  // STRAIT_HAVE_BPF

Napi::Object Init(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("originalDst", Napi::Function::New(env, OriginalDst, "originalDst"));
#ifdef STRAIT_HAVE_BPF
  o.Set("available", true);
  o.Set("unavailableReason", env.Null());
  o.Set("probe", Napi::Function::New(env, ProbeJs, "probe"));
  o.Set("ensureBpffs", Napi::Function::New(env, EnsureBpffsJs, "ensureBpffs"));
  o.Set("enableSockmap", Napi::Function::New(env, Enable, "enableSockmap"));
  o.Set("disableSockmap", Napi::Function::New(env, Disable, "disableSockmap"));
  o.Set("sockmapStatus", Napi::Function::New(env, Status, "sockmapStatus"));
#else
  o.Set("available", false);
  // binding.gyp ran bpf/detect.sh at configure time and found something missing.
  o.Set("unavailableReason", "the addon was built without BPF support (clang, bpftool, libbpf-dev, libelf-dev or /sys/kernel/btf/vmlinux was missing; run scripts/setup.sh and rebuild)");
#endif
  return o;
}

}  // namespace strait::bpf
