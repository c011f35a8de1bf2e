/**
 * Transparent capture with iptables/nft REDIRECT (nat table), in two dedicated chains so that
 * removal is exact: STRAIT_OUTPUT (the app's outbound connections → the sidecar's outbound
 * port) and STRAIT_INBOUND (connections arriving at the host → the inbound port), each reached
 * from OUTPUT/PREROUTING by one jump rule tagged with the comment "strait". The sidecar reads
 * the real destination back with SO_ORIGINAL_DST (listener `use_original_dst`).
 *
 * Rules are installed and removed with one iptables-restore --noflush transaction each, so a
 * failure never leaves half a rule set. They live in the calling process's network namespace.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { InterceptError } from '../errors.js';

const run = promisify(execFile);

export const OUTPUT_CHAIN = 'STRAIT_OUTPUT';
export const INBOUND_CHAIN = 'STRAIT_INBOUND';
const COMMENT = 'strait';

export type Family = 4 | 6;
const BIN: Record<Family, { tables: string; save: string; restore: string; loopback: string }> = {
  4: { tables: 'iptables', save: 'iptables-save', restore: 'iptables-restore', loopback: '127.0.0.0/8' },
  6: { tables: 'ip6tables', save: 'ip6tables-save', restore: 'ip6tables-restore', loopback: '::1/128' },
};

export interface IptablesOptions {
  /** Redirect the outbound connections of every process (but the exempt ones) to this port. */
  readonly outboundPort?: number;
  /** Redirect connections arriving from outside to this port. */
  readonly inboundPort?: number;
  /** Destination ports never redirected (either direction). */
  readonly excludePorts?: readonly number[];
  /**
   * Owners whose outbound connections are never captured: the sidecar's own upstream
   * connections must reach their destination, not the sidecar again.
   */
  readonly exemptUids?: readonly number[];
  readonly exemptGids?: readonly number[];
}

/** What is installed in one family's nat table. */
export interface IptablesStatus {
  readonly family: Family;
  /** Strait's chains present. */
  readonly chains: readonly string[];
  /** The rules in those chains and the jumps into them, in iptables-save syntax. */
  readonly rules: readonly string[];
}

/** iptables-save lines of the nat table. */
async function natLines(f: Family): Promise<string[]> {
  const { stdout } = await run(BIN[f].save, ['-t', 'nat'], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.split('\n');
}

function restore(f: Family, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // -w: wait for the xtables lock instead of failing when another tool holds it.
    const p = spawn(BIN[f].restore, ['--noflush', '-w', '5'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new InterceptError(`${BIN[f].restore} failed (exit ${code}): ${err.trim()}\ninput:\n${text}`));
    });
    p.stdin.end(text);
  });
}

const isOurs = (line: string) => line.includes(OUTPUT_CHAIN) || line.includes(INBOUND_CHAIN);

export async function iptablesStatus(f: Family): Promise<IptablesStatus> {
  const lines = await natLines(f);
  const chains = lines.filter((l) => l.startsWith(`:${OUTPUT_CHAIN} `) || l.startsWith(`:${INBOUND_CHAIN} `)).map((l) => l.slice(1).split(' ')[0]!);
  const rules = lines.filter((l) => l.startsWith('-A ') && isOurs(l));
  return { family: f, chains, rules };
}

/** Multiport takes at most 15 ports per rule. */
function portGroups(ports: readonly number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < ports.length; i += 15) out.push(ports.slice(i, i + 15).join(','));
  return out;
}

/** The iptables-restore text that installs the chains; exported for tests and `--dry-run` style inspection. */
export function installScript(f: Family, o: IptablesOptions): string {
  const lines = ['*nat'];
  const excl = portGroups(o.excludePorts ?? []);
  if (o.outboundPort) {
    lines.push(`:${OUTPUT_CHAIN} - [0:0]`);
    for (const uid of o.exemptUids ?? []) lines.push(`-A ${OUTPUT_CHAIN} -m owner --uid-owner ${uid} -j RETURN`);
    for (const gid of o.exemptGids ?? []) lines.push(`-A ${OUTPUT_CHAIN} -m owner --gid-owner ${gid} -j RETURN`);
    // Loopback destinations are local services (the sidecar included), never captured.
    lines.push(`-A ${OUTPUT_CHAIN} -d ${BIN[f].loopback} -j RETURN`);
    for (const g of excl) lines.push(`-A ${OUTPUT_CHAIN} -p tcp -m multiport --dports ${g} -j RETURN`);
    lines.push(`-A ${OUTPUT_CHAIN} -p tcp -j REDIRECT --to-ports ${o.outboundPort}`);
  }
  if (o.inboundPort) {
    lines.push(`:${INBOUND_CHAIN} - [0:0]`);
    for (const g of excl) lines.push(`-A ${INBOUND_CHAIN} -p tcp -m multiport --dports ${g} -j RETURN`);
    lines.push(`-A ${INBOUND_CHAIN} -p tcp -j REDIRECT --to-ports ${o.inboundPort}`);
  }
  // Jumps last: the chains are complete before any packet can enter them.
  if (o.outboundPort) lines.push(`-A OUTPUT -p tcp -m comment --comment ${COMMENT} -j ${OUTPUT_CHAIN}`);
  if (o.inboundPort) lines.push(`-A PREROUTING -p tcp -m comment --comment ${COMMENT} -j ${INBOUND_CHAIN}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Validation shared by enable and auto-detection; returns the problems found. */
export function iptablesProblems(o: IptablesOptions): string[] {
  const p: string[] = [];
  if (!o.outboundPort && !o.inboundPort) p.push('iptables mode needs --outbound-port and/or --inbound-port');
  if (o.outboundPort && !o.exemptUids?.length && !o.exemptGids?.length) {
    p.push("capturing outbound traffic needs --exempt-uid or --exempt-gid (the sidecar's own identity), or its upstream connections would loop back into it");
  }
  return p;
}

export async function enableIptables(f: Family, o: IptablesOptions): Promise<void> {
  const problems = iptablesProblems(o);
  if (problems.length) throw new InterceptError(problems.join('; '));
  const st = await iptablesStatus(f);
  if (st.chains.length || st.rules.length) {
    throw new InterceptError(`${BIN[f].tables}: Strait's chains are already installed (${st.chains.join(', ')}); run disable or cleanup first`);
  }
  await restore(f, installScript(f, o));
}

/**
 * Removes the jumps into Strait's chains and the chains themselves, whatever state a crash
 * left them in. Resolves with the chains removed (empty when there was nothing).
 */
export async function removeIptables(f: Family): Promise<string[]> {
  const st = await iptablesStatus(f);
  const jumps = st.rules.filter((r) => / -j STRAIT_(OUTPUT|INBOUND)\b/.test(r) && !r.startsWith(`-A ${OUTPUT_CHAIN} `) && !r.startsWith(`-A ${INBOUND_CHAIN} `));
  if (!st.chains.length && !jumps.length) return [];
  const lines = ['*nat'];
  // iptables-save prints rules in the syntax -D accepts: delete each jump by its own spec.
  for (const j of jumps) lines.push(`-D ${j.slice(3)}`);
  for (const c of st.chains) lines.push(`-F ${c}`);
  for (const c of st.chains) lines.push(`-X ${c}`);
  lines.push('COMMIT', '');
  await restore(f, lines.join('\n'));
  return [...st.chains];
}

/** True when this family's tools are installed and the nat table is usable here. */
export async function tablesUsable(f: Family): Promise<boolean> {
  try {
    await run(BIN[f].tables, ['-w', '5', '-t', 'nat', '-S']);
    return true;
  } catch {
    return false;
  }
}
