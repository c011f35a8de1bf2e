/**
 * The sockmap accelerator: sockops fills a SOCKHASH with the cgroup's established loopback
 * sockets, sk_msg hands each send straight to the peer socket (bpf/*.bpf.c). With a capture
 * port, connect4/6 also send the cgroup's outbound connects to the sidecar and getsockopt
 * answers SO_ORIGINAL_DST for them (bpf/capture.bpf.c). Everything lives
 * in pins under /sys/fs/bpf/strait/<name>, so it outlives the process that installed it and a
 * later `disable`/`cleanup` finds exactly what to remove.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InterceptError } from '../errors.js';
import { cgroup2Mount, isCgroup2Dir } from './detect.js';
import { nativeBpf, type BpfAvailable, type SockmapEnabled, type SockmapKernelStatus } from './native_bpf.js';

export const BPFFS = '/sys/fs/bpf';
export const PIN_ROOT = `${BPFFS}/strait`;

export interface SockmapEnableOptions {
  readonly name: string;
  readonly cgroup: string;
  readonly ports: readonly number[];
  readonly excludePorts: readonly number[];
  /** Capture outbound connects to this port (0: acceleration only). */
  readonly capturePort?: number;
  readonly exemptUids?: readonly number[];
  readonly exemptGids?: readonly number[];
  /** Accelerate the sidecar's own loopback connects (identified by the exempt uids/gids) and their in-cgroup peers. */
  readonly sidecarAccel?: boolean;
  /** Original destination ports whose captured connections stay on TCP (bulk transfers). */
  readonly bulkPorts?: readonly number[];
  /** Bulk detection (see BulkDetect); null or absent: off. */
  readonly bulkDetect?: BulkDetect | null;
  /** Inbound capture: app ports, and the sidecar's inbound listening socket (see listenerSocketOf). */
  readonly inboundPorts?: readonly number[];
  readonly inboundListener?: { readonly pid: number; readonly fd: number } | null;
}

/** Switch a sending socket to TCP once it streams `bytes` in a `windowMs` run of messages averaging under `maxMsg`. */
export interface BulkDetect {
  readonly bytes: number;
  readonly windowMs: number;
  readonly maxMsg: number;
}

export interface SockmapStatus extends SockmapKernelStatus {
  readonly name: string;
  readonly pinDir: string;
  /** Path of the attached cgroup, found from its id; null when detached or not found. */
  readonly cgroup: string | null;
}

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export function pinDirOf(name: string): string {
  if (!NAME_RE.test(name) || name === '.' || name === '..') throw new InterceptError(`bad name "${name}" (letters, digits, _ . - only)`);
  return path.join(PIN_ROOT, name);
}

function bpf(): BpfAvailable {
  const b = nativeBpf();
  if (!b.available) throw new InterceptError(b.unavailableReason);
  return b;
}

/** Removes PIN_ROOT when nothing is left in it (other names may still be installed). */
function removeRootIfEmpty(): void {
  try {
    fs.rmdirSync(PIN_ROOT);
  } catch {
    // ENOENT or ENOTEMPTY: both fine.
  }
}

export async function enableSockmap(o: SockmapEnableOptions): Promise<SockmapEnabled> {
  const b = bpf();
  if (!isCgroup2Dir(o.cgroup)) throw new InterceptError(`--cgroup ${o.cgroup} is not a cgroup v2 directory`);
  const pinDir = pinDirOf(o.name);
  // Pins need a bpffs; a host without one mounted gets one (it stays: the pins live there).
  await b.ensureBpffs(BPFFS);
  fs.mkdirSync(PIN_ROOT, { recursive: true, mode: 0o700 });
  try {
    return await b.enableSockmap({
      cgroup: o.cgroup,
      pinDir,
      ports: o.ports,
      excludePorts: o.excludePorts,
      capturePort: o.capturePort ?? 0,
      exemptUids: o.exemptUids ?? [],
      exemptGids: o.exemptGids ?? [],
      sidecarAccel: o.sidecarAccel ?? false,
      bulkPorts: o.bulkPorts ?? [],
      ...(o.bulkDetect ? { bulkDetectBytes: o.bulkDetect.bytes, bulkDetectWindowNs: o.bulkDetect.windowMs * 1e6, bulkDetectMaxMsg: o.bulkDetect.maxMsg } : {}),
      inboundPorts: o.inboundPorts ?? [],
      ...(o.inboundListener ? { inboundPid: o.inboundListener.pid, inboundFd: o.inboundListener.fd } : {}),
    });
  } catch (err) {
    removeRootIfEmpty();
    throw new InterceptError(`sockmap: ${(err as Error).message}`, { cause: err });
  }
}

/** Removes the installation `name`; resolves with the pins removed ([] when none was there). */
export async function disableSockmap(name: string): Promise<string[]> {
  const pinDir = pinDirOf(name);
  if (!fs.existsSync(pinDir)) {
    removeRootIfEmpty();
    return [];
  }
  try {
    return await bpf().disableSockmap(pinDir);
  } catch (err) {
    throw new InterceptError(`sockmap: ${(err as Error).message}`, { cause: err });
  } finally {
    removeRootIfEmpty();
  }
}

/**
 * The process and fd of the TCP socket listening on `port` in this network namespace (the
 * sidecar's inbound listener), found through /proc: the loader copies that socket into the
 * sk_lookup program's map. Null when nothing listens there.
 */
export function listenerSocketOf(port: number): { pid: number; fd: number } | null {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    // sl local_address rem_address st ... inode: st 0A is LISTEN; the port is hex after ':'.
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && parseInt(f[1]!.split(':')[1]!, 16) === port) inodes.add(f[9]!);
    }
  }
  if (!inodes.size) return null;
  const ownNs = fs.statSync('/proc/self/ns/net').ino;
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (fs.statSync(`/proc/${pid}/ns/net`).ino !== ownNs) continue;
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) return { pid: Number(pid), fd: Number(fd) };
      }
    } catch {
      // Gone, or not ours to look at.
    }
  }
  return null;
}

/** Names of every installation pinned on this host. */
export function installedNames(): string[] {
  try {
    return fs.readdirSync(PIN_ROOT).sort();
  } catch {
    return [];
  }
}

/** The cgroup directory whose inode number is `id`, searched a few levels deep. */
export function cgroupPathOf(id: number, root: string | null = cgroup2Mount(), depth = 6): string | null {
  if (!root || !id) return null;
  try {
    if (fs.statSync(root).ino === id) return root;
    if (depth === 0) return null;
    for (const e of fs.readdirSync(root, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const found = cgroupPathOf(id, path.join(root, e.name), depth - 1);
      if (found) return found;
    }
  } catch {
    // A cgroup removed while we walk: not ours.
  }
  return null;
}

export function sockmapStatus(name: string): SockmapStatus | null {
  const pinDir = pinDirOf(name);
  if (!fs.existsSync(pinDir)) return null;
  const k = bpf().sockmapStatus(pinDir);
  if (!k) return null;
  return { name, pinDir, cgroup: k.linkAttached ? cgroupPathOf(k.cgroupId) : null, ...k };
}
