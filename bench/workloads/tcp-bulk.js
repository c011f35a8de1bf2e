// TCP bulk: one connection carries settings.bulkBytes (1 GiB) from the C sender through the peer
// to the C sink, which counts and checksums every byte. MB/s is bytes over the time from the
// sender's connect to the sink's last byte (CLOCK_MONOTONIC, one clock for both processes).
import { runPinned } from '../lib/proc.js';
import { bulkTool } from '../lib/tools.js';

let nextId = 1;
const expected = new Map();

async function expectFor(bytes) {
  if (!expected.has(bytes)) {
    const r = await runPinned('bulk expect', bulkTool().path, ['expect', String(bytes)], { timeoutMs: 60_000 });
    expected.set(bytes, JSON.parse(r.stdout));
  }
  return expected.get(bytes);
}

async function transfer(target, ctx, bytes) {
  const id = nextId++;
  const want = await expectFor(bytes);
  // Bounded so a slow peer cannot eat the quick profile's 3 minutes; a timeout flags the run.
  const timeoutMs = ctx.settings.mode === 'quick' ? 60_000 : 180_000;
  const sender = runPinned('bulk send', bulkTool().path, ['send', String(target.port), String(bytes), String(id)], { cpu: ctx.cpus.loadgen, timeoutMs });
  const rec = target.upstream.record(id, timeoutMs);
  const [s, sinkRec] = await Promise.all([sender, rec]);
  if (s.code !== 0) throw new Error(`bulk sender exited ${s.code}${s.timedOut ? ' (timed out)' : ''}: ${s.stderr.slice(-500)}`);
  const snd = JSON.parse(s.stdout);
  const errors = {};
  const notes = [];
  if (snd.sent !== bytes) errors.short_send = 1;
  if (sinkRec.bytes !== bytes) {
    errors.byte_count = 1;
    notes.push(`sink received ${sinkRec.bytes} of ${bytes} bytes`);
  }
  if (sinkRec.a !== want.a || sinkRec.b !== want.b) {
    errors.checksum = 1;
    notes.push(`checksum ${sinkRec.a}/${sinkRec.b}, expected ${want.a}/${want.b}`);
  }
  const secs = (sinkRec.t_last_ns - snd.t_connected_ns) / 1e9;
  return { secs, errors, notes, sinkRec };
}

export default {
  name: 'tcp-bulk',
  title: 'TCP bulk, 1 GiB on one connection',
  layer: 'l4',
  layerLabel: 'L4 (tcp_proxy)',
  quick: true,
  upstream: { kind: 'bulk-sink', endpoint: 'tcp' },
  requires() {
    const b = bulkTool();
    return b.ok ? null : b.reason;
  },
  warmup: true,
  primary: { key: 'mb_s', label: 'MB/s', unit: 'MB/s', better: 'higher' },
  latency: null,
  cpu: { key: 'cpu_s_per_gib', label: 'CPU s / GiB', per: (m) => m.bytes / 2 ** 30 },
  columns: [
    { key: 'mb_s', label: 'MB/s', digits: 0 },
    { key: 'seconds', label: 'seconds', digits: 3 },
    { key: 'cpu_s_per_gib', label: 'CPU s/GiB', digits: 3 },
    { key: 'cpu_util', label: 'proxy CPU (cores)', digits: 2 },
  ],
  describe: (s) =>
    `bench/tools/bulk.c sends ${s.bulkBytes} bytes (a fixed pseudo-random pattern) on one connection and half-closes; the sink counts the bytes and checks a position-sensitive 64-bit checksum. ` +
    'MB/s = 10^6 bytes per second from connect to last byte at the sink. A short count or a wrong checksum flags the run.',
  async preflight(target, ctx) {
    const r = await transfer(target, ctx, 1 << 20);
    const bad = Object.keys(r.errors);
    if (bad.length) throw new Error(`preflight 1 MiB transfer failed: ${bad.join(', ')} ${r.notes.join('; ')}`);
    return {};
  },
  async warm(target, ctx) {
    await transfer(target, ctx, Math.min(ctx.settings.bulkBytes, 128 << 20));
  },
  async run(target, ctx) {
    const bytes = ctx.settings.bulkBytes;
    const r = await transfer(target, ctx, bytes);
    return {
      metrics: { mb_s: bytes / 1e6 / r.secs, seconds: r.secs, bytes },
      errors: r.errors,
      notes: r.notes,
      command: `bulk send <port> ${bytes} <id>`,
    };
  },
};
