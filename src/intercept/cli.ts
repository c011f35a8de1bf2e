/**
 * `strait intercept enable|disable|status|cleanup`: installs, shows and removes the way app
 * traffic reaches the sidecar. Modes, in the order `auto` tries them:
 *   sockmap  — BPF, for the processes of one cgroup v2: with --outbound-port, connect4/6
 *              capture (an app's connect goes to the sidecar, SO_ORIGINAL_DST answered from a
 *              BPF map; the app changes nothing), and always socket redirect between loopback
 *              peers (the hop skips TCP/IP). iptables REDIRECT would break that redirect (the
 *              two ends would see different ports), so capture for it is done in BPF too.
 *              Strait's own loopback connects (to the local app, a local upstream), known by
 *              --exempt-uid/--exempt-gid, are accelerated too, whatever their port.
 *              Needs BPF support, CAP_BPF + CAP_NET_ADMIN, cgroup v2.
 *   iptables — nat REDIRECT capture (the app changes nothing); the sidecar listener reads
 *              SO_ORIGINAL_DST. Needs iptables/nft and CAP_NET_ADMIN.
 *   explicit — no kernel state: apps open connections with the SDK (src/sdk/outbound.ts),
 *              which reaches Strait's unix-socket outbound listener (proxy_protocol listener
 *              filter) named by STRAIT_OUTBOUND and sends the destination in a PROXY v2
 *              header. Needs --outbound-pipe; writes a record and optionally an env file.
 *   none     — nothing installed: the app addresses the sidecar explicitly.
 * Output is JSON on stdout; errors go to stderr with exit status 1.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { InterceptError, StraitError } from '../errors.js';
import { detectHost, type HostReport } from './detect.js';
import { enableIptables, iptablesProblems, iptablesStatus, removeIptables, tablesUsable, type Family, type IptablesOptions, type IptablesStatus } from './iptables.js';
import { nativeBpf } from './native_bpf.js';
import { disableSockmap, enableSockmap, installedNames, listenerSocketOf, pinDirOf, sockmapStatus, type BulkDetect, type SockmapStatus } from './sockmap.js';
import { netnsInode, readRecords, removeRecords, stateDir, writeRecord, type InterceptRecord } from './state.js';

export const INTERCEPT_USAGE = `usage: strait intercept enable|disable|status|cleanup [options]

  enable                    install interception (the first mode that works, with --mode auto)
  disable                   remove what enable installed (--name; iptables chains of this netns)
  status                    print what is installed, and what this host supports, as JSON
  cleanup                   remove every Strait pin, chain and state record left (after a crash)

  --mode auto|sockmap|iptables|explicit|none
                            (default auto: sockmap, then iptables, then explicit, then none)
  --name NAME               installation name: pins under /sys/fs/bpf/strait/NAME (default "default")
  --cgroup PATH             sockmap: cgroup v2 directory to capture and accelerate (default: the
                            cgroup v2 root); the sidecar runs in it too, under an exempt uid/gid
  --outbound-port P         sidecar outbound listener: capture target (sockmap: connect4/6 to
                            127.0.0.1:P / [::1]:P; iptables: REDIRECT) and accelerated port
  --inbound-port P          sidecar inbound listener (iptables: capture target for inbound
                            connections; sockmap: accelerated port)
  --exclude-ports P,P,...   destination ports never captured or accelerated
  --bulk-ports P,P,...      sockmap: destination ports of bulk transfers (at most 16): their
                            connections are captured but the app-to-sidecar hop stays on TCP
                            (small writes lose throughput in the sockmap; see README "Sockmap
                            and bulk transfers")
  --bulk-detect-bytes N     sockmap: switch a sending socket to plain TCP, for good, once it has
                            sent N bytes (default 1048576) in one run of small writes: with no
                            reply from the other end, within --bulk-detect-window-ms (default
                            10), averaging under --bulk-detect-max-msg bytes (default 16384).
  --bulk-detect-window-ms MS
  --bulk-detect-max-msg N   (0 in any of the three turns the detector off; socketsSwitchedToTcp
                            in status counts the switches; README "Sockmap and bulk transfers")
  --app-ports P,P,...       sockmap: ports the local app serves (at most 14): every connection
                            of the cgroup to them is accelerated, whoever opens it. Not needed
                            for Strait's own connections (see --sidecar-connects)
  --sidecar-connects accelerate|tcp
                            sockmap: Strait's loopback connects (known by --exempt-uid/gid) to
                            the local app or a local upstream, and the listener's end of each
                            when it is in the cgroup, are redirected too, whatever the port
                            (default accelerate; needs an exempt uid/gid, else off)
  --exempt-uid UID          connections of this uid are not captured (the sidecar's own)
  --exempt-gid GID          likewise by gid
  --inbound-capture-ports P,...
                            sockmap: the app's ports whose connections from other hosts go to
                            Strait's inbound listener (--inbound-port, already listening) by a
                            BPF sk_lookup program on this network namespace; Strait reads the
                            original destination with getsockname (at most 16 ports)
  --outbound-pipe PATH      explicit: the unix socket of Strait's outbound listener that has the
                            envoy.filters.listener.proxy_protocol filter (STRAIT_OUTBOUND=unix:PATH)
  --write-env PATH          explicit: also write STRAIT_OUTBOUND=... to this env file for the app
                            (not --env-file: Node 20 takes that flag even after the script)
Records of what is enabled go to $STRAIT_INTERCEPT_STATE_DIR (default /run/strait-intercept);
a running Strait reads them for /config_dump and the intercept.* stats.
  --probe                   status: also load the BPF programs to test kernel support
`;

export type Mode = 'sockmap' | 'iptables' | 'explicit' | 'none';
const MODES = ['auto', 'sockmap', 'iptables', 'explicit', 'none'] as const;

export interface InterceptOptions {
  readonly name: string;
  readonly cgroup: string | null;
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly excludePorts: number[];
  readonly exemptUids: number[];
  readonly exemptGids: number[];
  readonly bulkPorts: number[];
  /** sk_msg bulk detector settings; null: off. */
  readonly bulkDetect: BulkDetect | null;
  /** Ports the local app serves: every cgroup connection to them is accelerated. */
  readonly appPorts: number[];
  /** Accelerate Strait's own loopback connects (--sidecar-connects accelerate). */
  readonly sidecarConnects: boolean;
  readonly outboundPipe: string | null;
  readonly envFile: string | null;
  readonly inboundCapturePorts: number[];
}

export interface InterceptStatus {
  readonly name: string;
  /** What is active: the installed mode(s), or 'none'. */
  readonly mode: 'sockmap' | 'iptables' | 'sockmap+iptables' | 'explicit' | 'none';
  /** explicit: what the app's SDK reads (STRAIT_OUTBOUND), from this name's record; else null. */
  readonly env: Record<string, string> | null;
  readonly sockmap: SockmapStatus | null;
  readonly iptables: IptablesStatus[];
  readonly host: HostReport;
  /** The state records (what a running Strait reports). */
  readonly records: InterceptRecord[];
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

/** Bulk detector defaults: see README "Sockmap and bulk transfers" for how they were chosen. */
export const BULK_DETECT_DEFAULTS: BulkDetect = Object.freeze({ bytes: 1 << 20, windowMs: 10, maxMsg: 16384 });

function count(v: string | undefined, flag: string, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0 || n > max) fail(`${flag} needs an integer from 0 to ${max} (0: bulk detection off), got "${v}"`);
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
  const records = readRecords();
  const explicit = records.find((r) => r.mode === 'explicit' && r.name === name && r.netns === netnsInode());
  const env = explicit?.outboundPipe ? explicitEnv(explicit.outboundPipe) : null;
  const mode = sockmap && iptables.length ? 'sockmap+iptables' : sockmap ? 'sockmap' : iptables.length ? 'iptables' : env ? 'explicit' : 'none';
  return { name, mode, env, sockmap, iptables, host, records };
}

function explicitEnv(pipe: string): Record<string, string> {
  return { STRAIT_OUTBOUND: `unix:${pipe}` };
}

function iptablesOptions(o: InterceptOptions): IptablesOptions {
  return { outboundPort: o.outboundPort || undefined, inboundPort: o.inboundPort || undefined, excludePorts: o.excludePorts, exemptUids: o.exemptUids, exemptGids: o.exemptGids };
}

/** What enableMode installed: its details for the output, and the state record's flags. */
interface Enabled {
  readonly details: Record<string, unknown>;
  readonly record: Pick<InterceptRecord, 'capture' | 'captureIpv6' | 'accelerated' | 'cgroup' | 'outboundPipe' | 'envFile' | 'sidecarAccel'> | null;
}

const MAX_IDS = 8; // STRAIT_MAX_IDS in bpf/intercept.h

async function enableMode(mode: Mode, o: InterceptOptions, host: HostReport): Promise<Enabled> {
  if (mode === 'sockmap') {
    if (!host.sockmap.available) fail(`sockmap unavailable: ${host.sockmap.reason}`);
    const cgroup = o.cgroup ?? host.cgroup2 ?? fail('no cgroup v2 hierarchy; give --cgroup');
    const ports = [o.outboundPort, o.inboundPort, ...o.appPorts].filter((p) => p > 0);
    let inboundListener: { pid: number; fd: number } | null = null;
    if (o.inboundCapturePorts.length) {
      if (!o.inboundPort) fail("--inbound-capture-ports needs --inbound-port (Strait's inbound listener)");
      inboundListener = listenerSocketOf(o.inboundPort) ?? fail(`nothing listens on port ${o.inboundPort} in this network namespace: start Strait's inbound listener first`);
    }
    // Bulk ports name original destinations, which only capture records know.
    if (o.bulkPorts.length && !o.outboundPort) fail('--bulk-ports needs --outbound-port (it applies to captured connections)');
    const cap = host.sockmap.capture;
    const identity = o.exemptUids.length > 0 || o.exemptGids.length > 0;
    if (o.exemptUids.length > MAX_IDS || o.exemptGids.length > MAX_IDS) fail(`at most ${MAX_IDS} --exempt-uid and ${MAX_IDS} --exempt-gid`);
    if (o.outboundPort) {
      if (cap && !cap.available) fail(`sockmap capture unavailable: ${cap.reason}`);
      if (!identity) {
        fail("capturing outbound traffic needs --exempt-uid or --exempt-gid (the sidecar's own identity), or its upstream connections would loop back into it");
      }
    }
    // Strait's sockets are known only by the identity connect4/6 check; without one (or without
    // connect4) its connections to the app keep TCP unless --app-ports names the app's ports.
    const sidecarOff = !o.sidecarConnects
      ? '--sidecar-connects tcp'
      : !identity
        ? "no --exempt-uid/--exempt-gid: Strait's own connects cannot be told apart"
        : cap && !cap.available
          ? `cgroup/connect4 unavailable: ${cap.reason}`
          : null;
    const en = await enableSockmap({
      name: o.name,
      cgroup,
      ports,
      excludePorts: o.excludePorts,
      capturePort: o.outboundPort,
      exemptUids: o.exemptUids,
      exemptGids: o.exemptGids,
      sidecarAccel: sidecarOff === null,
      bulkPorts: o.bulkPorts,
      bulkDetect: o.bulkDetect,
      inboundPorts: o.inboundCapturePorts,
      inboundListener,
    });
    const inbound = en.inbound ? { ports: o.inboundCapturePorts, listenerPort: o.inboundPort, listenerPid: inboundListener!.pid } : null;
    const capture = en.capture ? { outboundPort: o.outboundPort, ipv6: en.captureIpv6, exemptUids: o.exemptUids, exemptGids: o.exemptGids, bulkPorts: o.bulkPorts } : null;
    const sidecarConnects = en.sidecarAccel ? { accelerated: true } : { accelerated: false, reason: sidecarOff ?? 'not attached' };
    return {
      details: { cgroup, ports, capture, inbound, bulkDetect: o.bulkDetect, sidecarConnects },
      record: { capture: en.capture, captureIpv6: en.captureIpv6, accelerated: true, cgroup, sidecarAccel: en.sidecarAccel },
    };
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
    return {
      details: { families: done, outboundPort: o.outboundPort || null, inboundPort: o.inboundPort || null },
      record: { capture: true, captureIpv6: done.includes(6), accelerated: false, cgroup: null },
    };
  }
  if (mode === 'explicit') {
    const pipe = o.outboundPipe ?? fail("explicit mode needs --outbound-pipe: the unix socket of Strait's outbound listener with the proxy_protocol listener filter");
    const env = explicitEnv(pipe);
    if (o.envFile) {
      try {
        fs.writeFileSync(o.envFile, Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o644 });
      } catch (err) {
        fail(`--write-env ${o.envFile}: ${(err as Error).message}`);
      }
    }
    return { details: { env, envFile: o.envFile }, record: { capture: false, captureIpv6: false, accelerated: false, cgroup: null, outboundPipe: pipe, envFile: o.envFile } };
  }
  // Nothing installed: the app is told where the sidecar listens.
  return { details: { env: o.outboundPort ? { STRAIT_OUTBOUND_ADDR: `127.0.0.1:${o.outboundPort}` } : {} }, record: null };
}

/** Writes the state record; a failure is reported, not fatal (interception itself works). */
function record(mode: Mode, o: InterceptOptions, en: Enabled): Record<string, unknown> {
  if (!en.record || mode === 'none') return {};
  try {
    const file = writeRecord({
      name: o.name,
      mode,
      ...en.record,
      netns: netnsInode(),
      outboundPort: o.outboundPort || null,
      inboundPort: o.inboundPort || null,
      excludePorts: o.excludePorts,
      exemptUids: o.exemptUids,
      exemptGids: o.exemptGids,
      ...(mode === 'sockmap' ? { bulkPorts: o.bulkPorts, bulkDetect: o.bulkDetect, inboundCapturePorts: o.inboundCapturePorts, appPorts: o.appPorts } : {}),
      enabledAt: new Date().toISOString(),
    });
    return { stateFile: file };
  } catch (err) {
    return { stateError: `cannot write the state record under ${stateDir()}: ${(err as Error).message}` };
  }
}

async function enable(requested: (typeof MODES)[number], o: InterceptOptions): Promise<Record<string, unknown>> {
  const host = await detectHost({ probe: requested === 'auto' || requested === 'sockmap' });
  const order: Mode[] = requested === 'auto' ? ['sockmap', 'iptables', 'explicit', 'none'] : [requested];
  const skipped: Array<{ mode: Mode; reason: string }> = [];
  for (const mode of order) {
    try {
      const en = await enableMode(mode, o, host);
      return { action: 'enable', name: o.name, mode, details: en.details, skipped, ...record(mode, o, en) };
    } catch (err) {
      if (requested !== 'auto' || !(err instanceof StraitError)) throw err;
      skipped.push({ mode, reason: err.message });
    }
  }
  throw new InterceptError('no interception mode could be enabled'); // unreachable: none always works
}

/**
 * A sockmap record whose pins are gone, an iptables record of this netns once its chains are,
 * or an explicit record of this netns that is being removed (`name`: that one; null: all).
 */
function staleRecord(r: InterceptRecord, chainsGone: boolean, netns: number, explicitName: string | null): boolean {
  if (r.mode === 'explicit') {
    if (r.netns !== netns || (explicitName !== null && r.name !== explicitName)) return false;
    // The env file goes with the record that wrote it.
    if (r.envFile) fs.rmSync(r.envFile, { force: true });
    return true;
  }
  return r.mode === 'sockmap' ? !fs.existsSync(pinDirOf(r.name)) : chainsGone && r.netns === netns;
}

async function disable(o: InterceptOptions): Promise<Record<string, unknown>> {
  const pins = await disableSockmap(o.name);
  const chains: Record<string, string[]> = {};
  for (const f of await families()) chains[`ipv${f}`] = await removeIptables(f);
  const ns = netnsInode();
  const records = removeRecords((r) => staleRecord(r, true, ns, o.name));
  return { action: 'disable', name: o.name, removed: { pins, chains, records } };
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
  let chainsGone = true;
  for (const f of await families()) {
    try {
      chains[`ipv${f}`] = await removeIptables(f);
    } catch (err) {
      chainsGone = false;
      errors.push((err as Error).message);
    }
  }
  // Records go with what they describe; those of other namespaces' chains stay.
  const ns = netnsInode();
  const records = removeRecords((r) => staleRecord(r, chainsGone, ns, null));
  if (errors.length) fail(`cleanup left something behind:\n${errors.join('\n')}`);
  return { action: 'cleanup', removed: { pins, chains, records } };
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
        'bulk-ports': { type: 'string', multiple: true },
        'app-ports': { type: 'string', multiple: true },
        'sidecar-connects': { type: 'string', default: 'accelerate' },
        'bulk-detect-bytes': { type: 'string' },
        'bulk-detect-window-ms': { type: 'string' },
        'bulk-detect-max-msg': { type: 'string' },
        'outbound-pipe': { type: 'string' },
        'inbound-capture-ports': { type: 'string', multiple: true },
        'write-env': { type: 'string' },
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
    const portList = (vs: string[] | undefined, flag: string) =>
      (vs ?? []).flatMap((s) => s.split(',')).filter((s) => s.trim() !== '').map((s) => port(s.trim(), flag));
    const excludePorts = portList(v['exclude-ports'], '--exclude-ports');
    const bulkPorts = portList(v['bulk-ports'], '--bulk-ports');
    if (bulkPorts.length > 16) fail('--bulk-ports takes at most 16 ports');
    // The accelerated-port list in the BPF program holds 16: the two listeners and the app's.
    const appPorts = portList(v['app-ports'], '--app-ports');
    if (appPorts.length > 14) fail('--app-ports takes at most 14 ports');
    if (v['sidecar-connects'] !== 'accelerate' && v['sidecar-connects'] !== 'tcp') fail(`--sidecar-connects must be accelerate or tcp, got "${v['sidecar-connects']}"`);
    const bd = {
      bytes: count(v['bulk-detect-bytes'], '--bulk-detect-bytes', 2 ** 40, BULK_DETECT_DEFAULTS.bytes),
      windowMs: count(v['bulk-detect-window-ms'], '--bulk-detect-window-ms', 3_600_000, BULK_DETECT_DEFAULTS.windowMs),
      maxMsg: count(v['bulk-detect-max-msg'], '--bulk-detect-max-msg', 0xffffffff, BULK_DETECT_DEFAULTS.maxMsg),
    };
    const o: InterceptOptions = {
      name: v.name!,
      cgroup: v.cgroup ?? null,
      outboundPort: port(v['outbound-port'], '--outbound-port'),
      inboundPort: port(v['inbound-port'], '--inbound-port'),
      excludePorts,
      exemptUids: ids(v['exempt-uid'], '--exempt-uid'),
      exemptGids: ids(v['exempt-gid'], '--exempt-gid'),
      bulkPorts,
      bulkDetect: bd.bytes && bd.windowMs && bd.maxMsg ? bd : null,
      appPorts,
      sidecarConnects: v['sidecar-connects'] === 'accelerate',
      outboundPipe: v['outbound-pipe'] ?? null,
      envFile: v['write-env'] ?? null,
      inboundCapturePorts: portList(v['inbound-capture-ports'], '--inbound-capture-ports'),
    };
    if (o.inboundCapturePorts.length > 16) fail('--inbound-capture-ports takes at most 16 ports');
    if (o.outboundPipe !== null && !o.outboundPipe.startsWith('/')) fail(`--outbound-pipe needs an absolute path, got "${o.outboundPipe}"`);
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

