/**
 * What this host can do for interception, found by looking (kernel, capabilities, mounts) and,
 * for BPF, by actually loading Strait's programs: a kernel can list a program type and still
 * reject a program that needs a newer helper.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { promisify } from 'node:util';
import { nativeBpf, type BpfProbe } from './native_bpf.js';

const run = promisify(execFile);

const CGROUP2_SUPER_MAGIC = 0x63677270;
const BPF_FS_MAGIC = 0xcafe4a11;

/** Capability bit numbers (linux/capability.h). */
const CAP = { NET_ADMIN: 12, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 } as const;

export interface Capabilities {
  readonly netAdmin: boolean;
  readonly sysAdmin: boolean;
  readonly bpf: boolean;
  readonly perfmon: boolean;
}

export interface Feature {
  readonly available: boolean;
  /** Why not, when not available. */
  readonly reason?: string;
}

export interface HostReport {
  readonly kernel: string;
  readonly capabilities: Capabilities;
  /** Mount point of the cgroup v2 hierarchy, or null. */
  readonly cgroup2: string | null;
  /** /sys/fs/bpf is a bpffs right now (enable mounts one when it is not). */
  readonly bpffsMounted: boolean;
  /** `capture`: the connect4/6 + getsockopt programs that sockmap mode adds for transparent capture. */
  readonly sockmap: Feature & { readonly probe?: BpfProbe; readonly capture?: Feature & { readonly ipv6?: boolean } };
  readonly iptables: Feature & { readonly version?: string };
  readonly ip6tables: Feature & { readonly version?: string };
  readonly ipvs: Feature;
}

/** Effective capabilities of this process, from /proc/self/status. */
export function capabilities(): Capabilities {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  const eff = m ? BigInt(`0x${m[1]}`) : 0n;
  const has = (bit: number) => (eff & (1n << BigInt(bit))) !== 0n;
  return { netAdmin: has(CAP.NET_ADMIN), sysAdmin: has(CAP.SYS_ADMIN), bpf: has(CAP.BPF), perfmon: has(CAP.PERFMON) };
}

/** [major, minor] of the running kernel. */
export function kernelVersion(release = os.release()): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

function fsType(path: string): number | null {
  try {
    return fs.statfsSync(path).type;
  } catch {
    return null;
  }
}

export function isCgroup2Dir(path: string): boolean {
  return fsType(path) === CGROUP2_SUPER_MAGIC;
}

export function isBpffs(path: string): boolean {
  return fsType(path) === BPF_FS_MAGIC;
}

/** The cgroup v2 mount point (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones). */
export function cgroup2Mount(): string | null {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // fields: id parent major:minor root mountpoint options ... - fstype source superopts
    const parts = line.split(' ');
    const dash = parts.indexOf('-');
    if (dash > 0 && parts[dash + 1] === 'cgroup2') return parts[4]!.replace(/\\040/g, ' ');
  }
  return null;
}

/** The sockops/sk_msg programs need bpf_get_netns_cookie in sk_msg, which arrived in 5.15. */
const SOCKMAP_MIN_KERNEL: [number, number] = [5, 15];

async function sockmapFeature(caps: Capabilities, cgroup2: string | null, doProbe: boolean): Promise<HostReport['sockmap']> {
  let bpf;
  try {
    bpf = nativeBpf();
  } catch (err) {
    return { available: false, reason: (err as Error).message };
  }
  if (!bpf.available) return { available: false, reason: bpf.unavailableReason };
  const [maj, min] = kernelVersion();
  if (maj < SOCKMAP_MIN_KERNEL[0] || (maj === SOCKMAP_MIN_KERNEL[0] && min < SOCKMAP_MIN_KERNEL[1])) {
    return { available: false, reason: `kernel ${os.release()} is older than ${SOCKMAP_MIN_KERNEL.join('.')} (bpf_get_netns_cookie in sk_msg)` };
  }
  if (!cgroup2) return { available: false, reason: 'no cgroup v2 hierarchy is mounted' };
  // Attaching to a cgroup needs CAP_NET_ADMIN whatever the kernel says about loading.
  if (!caps.netAdmin) return { available: false, reason: 'no CAP_NET_ADMIN (needed to attach to a cgroup)' };
  // Loading needs CAP_BPF (or CAP_SYS_ADMIN). The capability set is only a hint (user
  // namespaces, LSMs and sysctls also decide), so the load itself has the last word.
  const capHint = !caps.bpf && !caps.sysAdmin ? ' (this process has neither CAP_BPF nor CAP_SYS_ADMIN)' : '';
  // Unprobed: the capture programs need nothing the sockops one does not (kernel >= 5.15).
  if (!doProbe) return capHint ? { available: false, reason: `no CAP_BPF${capHint}` } : { available: true, capture: { available: true } };
  const probe = await bpf.probe();
  if (probe.loadError) return { available: false, reason: `loading Strait's BPF programs failed: ${probe.loadError.message}${capHint}`, probe };
  if (!probe.sockops || !probe.skMsg || !probe.sockhash) {
    const missing = [!probe.sockops && 'sockops programs', !probe.skMsg && 'sk_msg programs', !probe.sockhash && 'SOCKHASH maps'].filter(Boolean);
    return { available: false, reason: `the kernel rejects ${missing.join(', ')}`, probe };
  }
  const capture = probe.captureLoadError
    ? { available: false, reason: `loading the capture programs failed: ${probe.captureLoadError.message}` }
    : { available: true, ipv6: probe.captureIpv6 };
  return { available: true, probe, capture };
}

async function tablesFeature(bin: 'iptables' | 'ip6tables', caps: Capabilities): Promise<HostReport['iptables']> {
  let version: string;
  try {
    version = (await run(bin, ['--version'])).stdout.trim();
  } catch {
    return { available: false, reason: `${bin} is not installed` };
  }
  if (!caps.netAdmin) return { available: false, reason: 'no CAP_NET_ADMIN', version };
  try {
    // Listing the nat table loads its module / nft family: the cheapest real check.
    await run(bin, ['-w', '5', '-t', 'nat', '-S']);
  } catch (err) {
    const msg = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n')[0];
    return { available: false, reason: `${bin} -t nat does not work here: ${msg}`, version };
  }
  return { available: true, version };
}

function ipvsFeature(): Feature {
  // The table exists once the ip_vs module is in (or built in); we do not load modules.
  if (fs.existsSync('/proc/net/ip_vs')) return { available: true };
  return { available: false, reason: 'IPVS is not in this kernel (no /proc/net/ip_vs)' };
}

/**
 * Looks at the host. `probe` loads Strait's BPF programs (nothing is attached); without it
 * sockmap availability is judged from the kernel version and capabilities only.
 */
export async function detectHost(opts: { probe?: boolean } = {}): Promise<HostReport> {
  const caps = capabilities();
  const cgroup2 = cgroup2Mount();
  const [sockmap, iptables, ip6tables] = await Promise.all([
    sockmapFeature(caps, cgroup2, opts.probe ?? true),
    tablesFeature('iptables', caps),
    tablesFeature('ip6tables', caps),
  ]);
  return {
    kernel: os.release(),
    capabilities: caps,
    cgroup2,
    bpffsMounted: isBpffs('/sys/fs/bpf'),
    sockmap,
    iptables,
    ip6tables,
    ipvs: ipvsFeature(),
  };
}
