/**
 * A small JSON record per enabled interception, written by `strait intercept enable` and
 * removed by `disable`/`cleanup`, so a running Strait can report how app traffic reaches it
 * (/config_dump, `intercept.*` stats) without privileges: reading pins needs CAP_BPF and
 * reading nat rules CAP_NET_ADMIN, a file needs neither.
 *
 * Records live in $STRAIT_INTERCEPT_STATE_DIR (default /run/strait-intercept), one file per
 * installation name and network namespace, since iptables rules are per namespace. The
 * directory is created with the first record and removed with the last, so a host with
 * nothing enabled has nothing there.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Gauge, Scope } from '../observability/stats.js';
import { cgroup2Mount } from './detect.js';
import { pinDirOf } from './sockmap.js';

export const STATE_DIR_ENV = 'STRAIT_INTERCEPT_STATE_DIR';
const DEFAULT_STATE_DIR = '/run/strait-intercept';

export function stateDir(): string {
  return process.env[STATE_DIR_ENV] || DEFAULT_STATE_DIR;
}

export interface InterceptRecord {
  readonly name: string;
  readonly mode: 'sockmap' | 'iptables' | 'explicit';
  /** App connections are captured transparently (connect4/6 or REDIRECT). */
  readonly capture: boolean;
  /** IPv6 connections are captured too. */
  readonly captureIpv6: boolean;
  /** App <-> sidecar loopback hops skip TCP/IP (sockmap). */
  readonly accelerated: boolean;
  /** Inode of the network namespace `enable` ran in. */
  readonly netns: number;
  /** sockmap: the cgroup v2 directory the programs are attached to. */
  readonly cgroup: string | null;
  readonly outboundPort: number | null;
  readonly inboundPort: number | null;
  readonly excludePorts: readonly number[];
  readonly exemptUids: readonly number[];
  readonly exemptGids: readonly number[];
  /** sockmap: captured connections to these original ports keep TCP on the app-sidecar hop. */
  readonly bulkPorts?: readonly number[];
  /** sockmap: the bulk detector's settings (sk_msg switches streaming sockets to TCP); null: off. */
  readonly bulkDetect?: { readonly bytes: number; readonly windowMs: number; readonly maxMsg: number } | null;
  /** sockmap: app ports whose sidecar-to-app connections are accelerated too. */
  readonly appPorts?: readonly number[];
  /** sockmap: Strait's own loopback connects (any port) and their in-cgroup peers are accelerated. */
  readonly sidecarAccel?: boolean;
  /** sockmap: app ports whose inbound connections sk_lookup hands to the inbound listener. */
  readonly inboundCapturePorts?: readonly number[];
  /** explicit: the unix socket of Strait's proxy_protocol outbound listener (STRAIT_OUTBOUND). */
  readonly outboundPipe?: string | null;
  /** explicit: the env file written for the app (removed with the record). */
  readonly envFile?: string | null;
  readonly enabledAt: string;
}

/** This process's network namespace inode. */
export function netnsInode(): number {
  return fs.statSync('/proc/self/ns/net').ino;
}

function fileOf(name: string, netns: number): string {
  pinDirOf(name); // the same name rules as pins: no path tricks
  return path.join(stateDir(), `${name}@netns-${netns}.json`);
}

export function writeRecord(r: InterceptRecord): string {
  const file = fileOf(r.name, r.netns);
  // Not recursive: removing the directory with the last record then undoes all we created.
  try {
    fs.mkdirSync(stateDir(), { mode: 0o755 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // Written whole then renamed: a reader never sees half a record.
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(r, null, 2)}\n`, { mode: 0o644 });
  fs.renameSync(`${file}.tmp`, file);
  return file;
}

export function readRecords(): InterceptRecord[] {
  let names: string[];
  try {
    names = fs.readdirSync(stateDir());
  } catch {
    return [];
  }
  const out: InterceptRecord[] = [];
  for (const n of names.filter((x) => x.endsWith('.json')).sort()) {
    try {
      const r = JSON.parse(fs.readFileSync(path.join(stateDir(), n), 'utf8')) as InterceptRecord;
      if (r && (r.mode === 'sockmap' || r.mode === 'iptables' || r.mode === 'explicit') && typeof r.name === 'string') out.push(r);
    } catch {
      // Removed while we read it, or not ours: skip.
    }
  }
  return out;
}

/** Removes the records `pred` selects; resolves with their file names. Drops the directory once empty. */
export function removeRecords(pred: (r: InterceptRecord) => boolean): string[] {
  const removed: string[] = [];
  for (const r of readRecords().filter(pred)) {
    const file = fileOf(r.name, r.netns);
    try {
      fs.unlinkSync(file);
      removed.push(path.basename(file));
    } catch {
      // Already gone.
    }
  }
  try {
    fs.rmdirSync(stateDir());
  } catch {
    // ENOENT or ENOTEMPTY (other installations): both fine.
  }
  return removed;
}

/** This process's cgroup v2 directory, or null. */
function ownCgroup(): string | null {
  const mount = cgroup2Mount();
  if (!mount) return null;
  const line = fs
    .readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  return line ? path.join(mount, line.slice(3)) : null;
}

const within = (dir: string, root: string) => dir === root || dir.startsWith(`${root.replace(/\/$/, '')}/`);

/** A record whose pins are known gone is stale (a pin dir we may not read counts as present). */
function pinsPresent(name: string): boolean {
  try {
    fs.statSync(pinDirOf(name));
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** Bit flags of `intercept.mode`: 0 none, 1 iptables, 2 sockmap, 3 both, 4 explicit addressing. */
const MODE_BITS = { iptables: 1, sockmap: 2, explicit: 4 } as const;

export interface InterceptReport {
  readonly mode: 'none' | 'iptables' | 'sockmap' | 'sockmap+iptables' | 'explicit';
  readonly capture: boolean;
  readonly accelerated: boolean;
  /** The installations that apply to this process. */
  readonly installations: readonly InterceptRecord[];
}

/**
 * The interceptions that cover this process: iptables rules of its network namespace, and
 * BPF programs attached to its cgroup or an ancestor of it.
 */
export function interceptReport(): InterceptReport {
  let netns = -1;
  let cgroup: string | null = null;
  try {
    netns = netnsInode();
    cgroup = ownCgroup();
  } catch {
    // No /proc: nothing can be matched.
  }
  const installations = readRecords().filter((r) =>
    r.mode !== 'sockmap' ? r.netns === netns : !!cgroup && !!r.cgroup && within(cgroup, r.cgroup) && pinsPresent(r.name),
  );
  const bits = installations.reduce((b, r) => b | MODE_BITS[r.mode], 0);
  // Capture modes first: explicit addressing only describes the apps that use the SDK.
  const b = bits & 3;
  const mode = b === 3 ? 'sockmap+iptables' : b === 2 ? 'sockmap' : b === 1 ? 'iptables' : bits & 4 ? 'explicit' : 'none';
  return { mode, capture: installations.some((r) => r.capture), accelerated: installations.some((r) => r.accelerated), installations };
}

/**
 * The server's view: `intercept.mode` (bit flags: 1 iptables, 2 sockmap), `intercept.capture`
 * and `intercept.accelerated` gauges, and a config_dump entry while something applies.
 * Re-read on each admin read, so enabling after Strait started (its port is known only then)
 * shows up too.
 */
export class InterceptStatusReporter {
  private readonly gauges: { mode: Gauge; capture: Gauge; accelerated: Gauge };
  private last: InterceptReport;

  constructor(root: Scope) {
    const s = root.scope('intercept');
    this.gauges = { mode: s.gauge('mode'), capture: s.gauge('capture'), accelerated: s.gauge('accelerated') };
    this.last = this.refresh();
  }

  get report(): InterceptReport {
    return this.last;
  }

  refresh(): InterceptReport {
    let r: InterceptReport;
    try {
      r = interceptReport();
    } catch {
      r = { mode: 'none', capture: false, accelerated: false, installations: [] };
    }
    this.last = r;
    this.gauges.mode.value = r.installations.reduce((b, i) => b | MODE_BITS[i.mode], 0);
    this.gauges.capture.value = r.capture ? 1 : 0;
    this.gauges.accelerated.value = r.accelerated ? 1 : 0;
    return r;
  }

  /** `configs` plus an InterceptConfigDump entry when an interception applies (a new array). */
  withDump<T>(configs: T[]): Array<T | Record<string, unknown>> {
    const r = this.refresh();
    if (!r.installations.length) return configs;
    return [
      ...configs,
      {
        '@type': 'type.googleapis.com/strait.admin.v1.InterceptConfigDump',
        mode: r.mode,
        capture: r.capture,
        accelerated: r.accelerated,
        installations: r.installations,
      },
    ];
  }
}
