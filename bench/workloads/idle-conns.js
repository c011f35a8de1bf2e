// Memory: RSS of a freshly started proxy (idle), then with N idle downstream connections, each
// proven live end to end (a byte echoed back through the proxy from the upstream) before RSS is
// read. The client is its own process (bench/tools/idle-conns.js) with a raised fd limit.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pssBytes, rssBytes, spawnPinned, waitStdout } from '../lib/proc.js';
import { TOOLS_DIR } from '../lib/tools.js';

const MB = 1024 * 1024;

/** RssAnon and RssFile (MiB) summed over the pids: heap and stacks vs. pages of binaries and libraries. */
function rssSplitMb(pids) {
  let anon = 0;
  let file = 0;
  for (const pid of pids) {
    try {
      const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      anon += Number(/RssAnon:\s+(\d+) kB/.exec(st)?.[1] ?? 0);
      file += Number(/RssFile:\s+(\d+) kB/.exec(st)?.[1] ?? 0);
    } catch {
      // exited
    }
  }
  return { anon: anon / 1024, file: file / 1024 };
}

export default {
  name: 'idle-conns',
  title: 'Memory: idle, and with 10,000 idle connections (or as many as the fd limit allows)',
  layer: 'l4',
  layerLabel: 'L4 (tcp_proxy)',
  quick: true,
  upstream: { kind: 'echo', endpoint: 'tcp' },
  requires: () => null,
  /** There is no proxy process to measure for "direct". */
  peerUnavailable: (peer) => (peer.kind === 'direct' ? 'n/a: no proxy process to measure' : null),
  freshPeerPerRun: true,
  warmup: false,
  rounds: (s) => s.idleRounds,
  primary: { key: 'rss_conns_mb', label: 'RSS with idle conns, MiB', unit: 'MiB', better: 'lower' },
  latency: null,
  chartSecondary: { key: 'rss_idle_mb', label: 'idle RSS' },
  cpu: null,
  columns: [
    { key: 'rss_idle_mb', label: 'idle RSS MiB', digits: 1 },
    { key: 'rss_idle_anon_mb', label: 'idle anon MiB', digits: 1 },
    { key: 'rss_idle_file_mb', label: 'idle file MiB', digits: 1 },
    { key: 'rss_conns_mb', label: 'RSS w/ conns MiB', digits: 1 },
    { key: 'kb_per_conn', label: 'KiB/conn', digits: 2 },
    { key: 'pss_conns_mb', label: 'PSS w/ conns MiB', digits: 1 },
    { key: 'connections', label: 'conns', digits: 0 },
    { key: 'open_s', label: 'open s', digits: 2 },
  ],
  describe: (s) =>
    `Fresh proxy process; after 1 s idle, RSS (VmRSS, summed over the process tree: nginx master+worker) is "idle RSS". Then ${s.idleConnections} connections are opened from a separate process; ` +
    'each sends one byte and must get it echoed by the upstream through the proxy (so the proxy accepted it and holds an upstream connection). After 1 s, RSS again. Fewer echoed connections than requested flags the run.',
  async preflight() {
    return {};
  },
  async run(target, ctx) {
    const n = ctx.settings.idleConnections;
    await sleep(1000);
    const pids = target.pids();
    const idle = rssBytes(pids);
    const idlePss = pssBytes(pids);
    const idleSplit = rssSplitMb(pids);
    const client = spawnPinned('idle-conns', process.execPath, [path.join(TOOLS_DIR, 'idle-conns.js'), String(target.port), String(n)], {
      cpu: ctx.cpus.loadgen,
      nofile: n + 1024,
      stdin: 'pipe',
    });
    try {
      const line = await waitStdout(client, /^\{"requested".*\}$/m, 180_000);
      const res = JSON.parse(line[0]);
      await sleep(1000);
      const pids2 = target.pids();
      const withConns = rssBytes(pids2);
      const withPss = pssBytes(pids2);
      const upstreamActive = await target.upstream.activeConnections();
      const errors = {};
      const notes = [];
      if (res.ok < n) {
        errors.not_echoed = n - res.ok;
        notes.push(`${res.ok} of ${n} connections echoed; errors ${JSON.stringify(res.errors)}`);
      }
      if (upstreamActive !== null && upstreamActive < res.ok) {
        errors.upstream_missing = res.ok - upstreamActive;
        notes.push(`upstream holds ${upstreamActive} connections for ${res.ok} echoed downstream`);
      }
      return {
        metrics: {
          rss_idle_mb: idle / MB,
          pss_idle_mb: idlePss / MB,
          rss_idle_anon_mb: idleSplit.anon,
          rss_idle_file_mb: idleSplit.file,
          rss_conns_mb: withConns / MB,
          pss_conns_mb: withPss / MB,
          kb_per_conn: res.ok ? (withConns - idle) / 1024 / res.ok : NaN,
          connections: res.ok,
          upstream_connections: upstreamActive,
          open_s: res.ms / 1000,
        },
        errors,
        notes,
        command: `node bench/tools/idle-conns.js <port> ${n}`,
      };
    } finally {
      if (client.running) client.proc.stdin.end('close\n');
      await client.stop(5000);
    }
  },
};
