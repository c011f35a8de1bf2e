/**
 * `strait intercept enable|disable|status|cleanup`: installs, shows and removes the way app
 * traffic reaches the sidecar. Modes, in the order `auto` tries them:
 *   sockmap  — BPF socket redirect between loopback peers (the app addresses the sidecar;
 *              the hop skips TCP/IP). Needs BPF support, CAP_BPF + CAP_NET_ADMIN, cgroup v2.
 *   iptables — nat REDIRECT capture (the app changes nothing); the sidecar listener reads
 *              SO_ORIGINAL_DST. Needs iptables/nft and CAP_NET_ADMIN.
 *   none     — nothing installed: the app addresses the sidecar explicitly.
 * Output is JSON on stdout; errors go to stderr with exit status 1.
 */
import { parseArgs } from 'node:util';
import { InterceptError, StraitError } from '../errors.js';
import { detectHost, type HostReport } from './detect.js';
import { enableIptables, iptablesProblems, iptablesStatus, removeIptables, tablesUsable, type Family, type IptablesOptions, type IptablesStatus } from './iptables.js';
import { nativeBpf } from './native_bpf.js';
import { disableSockmap, enableSockmap, installedNames, sockmapStatus, type SockmapStatus } from './sockmap.js';

export const INTERCEPT_USAGE = `usage: strait intercept enable|disable|status|cleanup [options]

  enable                    install interception (the first mode that works, with --mode auto)
  disable                   remove what enable installed (--name; iptables chains of this netns)
  status                    print what is installed, and what this host supports, as JSON
  cleanup                   remove every Strait pin and chain left on this host (after a crash)

  --mode auto|sockmap|iptables|none   (default auto: sockmap, then iptables, then none)
  --name NAME               installation name: pins under /sys/fs/bpf/strait/NAME (default "default")
  --cgroup PATH             sockmap: cgroup v2 directory to accelerate (default: the cgroup v2 root)
  --outbound-port P         sidecar outbound listener (iptables: capture target; sockmap: accelerated port)
  --inbound-port P          sidecar inbound listener (likewise, for inbound connections)
  --exclude-ports P,P,...   destination ports never captured or accelerated
  --exempt-uid UID          iptables: connections of this uid are not captured (the sidecar's own)
  --exempt-gid GID          iptables: likewise by gid
  --probe                   status: also load the BPF programs to test kernel support
`;

export type Mode = 'sockmap' | 'iptables' | 'none';
const MODES = ['auto', 'sockmap', 'iptables', 'none'] as const;

export interface InterceptOptions {
  readonly name: string;
  readonly cgroup: string | null;
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly excludePorts: number[];
  readonly exemptUids: number[];
  readonly exemptGids: number[];
}

export interface InterceptStatus {
  readonly name: string;
  /** What is active: the installed mode(s), or 'none'. */
  readonly mode: 'sockmap' | 'iptables' | 'sockmap+iptables' | 'none';
  readonly sockmap: SockmapStatus | null;
  readonly iptables: IptablesStatus[];
  readonly host: HostReport;
}

function fail(message: string): never {
  throw new InterceptError(message);
}

function port(v: string | undefined, flag: string): number {
  if (v === undefined) return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`${flag} needs a port (1-65535), got "${v}"`);
  return n;
}

function ids(vs: string[] | undefined, flag: string): number[] {
  return (vs ?? []).map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 0xfffffffe) fail(`${flag} needs a numeric id, got "${v}"`);
    return n;
  });
}

async function families(): Promise<Family[]> {
  // IPv6 rules only where ip6tables works here (some hosts and netns have no IPv6 nat).
  return (await tablesUsable(6)) ? [4, 6] : [4];
}

async function installedTables(): Promise<IptablesStatus[]> {
  const out: IptablesStatus[] = [];
  for (const f of await families()) {
    const st = await iptablesStatus(f);
    if (st.chains.length || st.rules.length) out.push(st);
  }
  return out;
}

export async function interceptStatus(name: string, probe = false): Promise<InterceptStatus> {
  const [host, iptables] = await Promise.all([detectHost({ probe }), installedTables().catch(() => [])]);
  // An addon built without BPF cannot have installed anything.
  const sockmap = nativeBpf().available ? sockmapStatus(name) : null;
  const mode = sockmap && iptables.length ? 'sockmap+iptables' : sockmap ? 'sockmap' : iptables.length ? 'iptables' : 'none';
  return { name, mode, sockmap, iptables, host };
}

function iptablesOptions(o: InterceptOptions): IptablesOptions {
  return { outboundPort: o.outboundPort || undefined, inboundPort: o.inboundPort || undefined, excludePorts: o.excludePorts, exemptUids: o.exemptUids, exemptGids: o.exemptGids };
}

async function enableMode(mode: Mode, o: InterceptOptions, host: HostReport): Promise<Record<string, unknown>> {
  if (mode === 'sockmap') {
    if (!host.sockmap.available) fail(`sockmap unavailable: ${host.sockmap.reason}`);
    const cgroup = o.cgroup ?? host.cgroup2 ?? fail('no cgroup v2 hierarchy; give --cgroup');
    const ports = [o.outboundPort, o.inboundPort].filter((p) => p > 0);
    await enableSockmap({ name: o.name, cgroup, ports, excludePorts: o.excludePorts });
    return { cgroup, ports };
  }
  if (mode === 'iptables') {
    if (!host.iptables.available) fail(`iptables unavailable: ${host.iptables.reason}`);
    const io = iptablesOptions(o);
    const problems = iptablesProblems(io);
    if (problems.length) fail(problems.join('; '));
    const done: Family[] = [];
    try {
      for (const f of await families()) {
        await enableIptables(f, io);
        done.push(f);
      }
    } catch (err) {
      // All families or none: take back what was installed before the failure.
      for (const f of done) await removeIptables(f).catch(() => undefined);
      throw err;
    }
    return { families: done, outboundPort: o.outboundPort || null, inboundPort: o.inboundPort || null };
  }
  // Explicit addressing: the app (or a thin SDK) is told where the sidecar listens.
  return { env: o.outboundPort ? { STRAIT_OUTBOUND_ADDR: `127.0.0.1:${o.outboundPort}` } : {} };
}

async function enable(requested: (typeof MODES)[number], o: InterceptOptions): Promise<Record<string, unknown>> {
  const host = await detectHost({ probe: requested === 'auto' || requested === 'sockmap' });
  const order: Mode[] = requested === 'auto' ? ['sockmap', 'iptables', 'none'] : [requested];
  const skipped: Array<{ mode: Mode; reason: string }> = [];
  for (const mode of order) {
    try {
      const details = await enableMode(mode, o, host);
      return { action: 'enable', name: o.name, mode, details, skipped };
    } catch (err) {
      if (requested !== 'auto' || !(err instanceof StraitError)) throw err;
      skipped.push({ mode, reason: err.message });
    }
  }
  throw new InterceptError('no interception mode could be enabled'); // unreachable: none always works
}

async function disable(o: InterceptOptions): Promise<Record<string, unknown>> {
  const pins = await disableSockmap(o.name);
  const chains: Record<string, string[]> = {};
  for (const f of await families()) chains[`ipv${f}`] = await removeIptables(f);
  return { action: 'disable', name: o.name, removed: { pins, chains } };
}

/** Removes every installation (all names) and Strait's chains in this network namespace. */
async function cleanup(): Promise<Record<string, unknown>> {
  const pins: Record<string, string[]> = {};
  const errors: string[] = [];
  for (const name of installedNames()) {
    try {
      pins[name] = await disableSockmap(name);
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  const chains: Record<string, string[]> = {};
  for (const f of await families()) {
    try {
      chains[`ipv${f}`] = await removeIptables(f);
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length) fail(`cleanup left something behind:\n${errors.join('\n')}`);
  return { action: 'cleanup', removed: { pins, chains } };
}

/** JSON with bigints (netns cookies) as decimal strings. */
export function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2);
}

/** Entry point of `strait intercept ...`; resolves with the exit status. */
export async function interceptMain(argv: string[]): Promise<number> {
  let action: string | undefined;
  let result: unknown;
  try {
    const { values: v, positionals } = parseArgs({
      args: argv,
      options: {
        mode: { type: 'string', default: 'auto' },
        name: { type: 'string', default: 'default' },
        cgroup: { type: 'string' },
        'outbound-port': { type: 'string' },
        'inbound-port': { type: 'string' },
        'exclude-ports': { type: 'string', multiple: true },
        'exempt-uid': { type: 'string', multiple: true },
        'exempt-gid': { type: 'string', multiple: true },
        probe: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
    if (v.help) {
      process.stdout.write(INTERCEPT_USAGE);
      return 0;
    }
    action = positionals[0];
    if (positionals.length !== 1 || !['enable', 'disable', 'status', 'cleanup'].includes(action!)) {
      fail(`expected one of enable, disable, status, cleanup\n\n${INTERCEPT_USAGE}`);
    }
    const mode = v.mode as (typeof MODES)[number];
    if (!MODES.includes(mode)) fail(`--mode must be one of ${MODES.join(', ')}`);
    const excludePorts = (v['exclude-ports'] ?? []).flatMap((s) => s.split(',')).filter((s) => s.trim() !== '').map((s) => port(s.trim(), '--exclude-ports'));
    const o: InterceptOptions = {
      name: v.name!,
      cgroup: v.cgroup ?? null,
      outboundPort: port(v['outbound-port'], '--outbound-port'),
      inboundPort: port(v['inbound-port'], '--inbound-port'),
      excludePorts,
      exemptUids: ids(v['exempt-uid'], '--exempt-uid'),
      exemptGids: ids(v['exempt-gid'], '--exempt-gid'),
    };
    if (action === 'enable') result = await enable(mode, o);
    else if (action === 'disable') result = await disable(o);
    else if (action === 'cleanup') result = await cleanup();
    else result = await interceptStatus(o.name, v.probe);
  } catch (err) {
    const msg = err instanceof StraitError || err instanceof TypeError ? err.message : String((err as Error)?.stack ?? err);
    process.stderr.write(`strait intercept${action ? ` ${action}` : ''}: ${msg}\n`);
    return 1;
  }
  process.stdout.write(`${toJson(result)}\n`);
  return 0;
}

