import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { durationMs } from '../../src/config/values.js';
import type { FieldError } from '../../src/errors.js';
import { StatsStore } from '../../src/observability/stats.js';
import { buildStatsSettings } from '../../src/observability/stats_config.js';
import { buildStatsSinks, STATSD_DATAGRAM_BYTES, StatsFlusher, type StatsdSinkSpec } from '../../src/observability/stats_sinks.js';
import { REPO } from '../helpers/strait.js';

const socks: dgram.Socket[] = [];
afterEach(() => {
  for (const s of socks.splice(0)) s.close();
});

async function collector(): Promise<{ port: number; grams: Buffer[]; lines: () => string[] }> {
  const sock = dgram.createSocket('udp4');
  socks.push(sock);
  const grams: Buffer[] = [];
  sock.on('message', (m) => grams.push(m));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return { port: sock.address().port, grams, lines: () => grams.flatMap((g) => g.toString().split('\n')) };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const sink = (port: number, over: Partial<StatsdSinkSpec> = {}): StatsdSinkSpec => ({ kind: 'statsd', host: '127.0.0.1', port, prefix: 'envoy', maxBytes: STATSD_DATAGRAM_BYTES, ...over });

describe('statsd flush', () => {
  it('sends counter deltas and used gauges, packed into datagrams under the size limit', async () => {
    const c = await collector();
    const store = new StatsStore();
    const counters = Array.from({ length: 200 }, (_, i) => store.root.scope('cluster').scope(`c${i}`, 'envoy_cluster_name').counter('upstream_rq_total'));
    store.root.scope('server').counter('never');
    const g = store.root.scope('server').gauge('live');
    for (const k of counters) k.value = 2;
    g.value = 1;
    const f = new StatsFlusher(store, { sinks: [sink(c.port)], flushMs: 60_000 });
    await f.flush();
    await until(() => c.lines().length >= 201, 'the first flush');
    expect(c.grams.length).toBeGreaterThan(1);
    for (const d of c.grams) expect(d.length).toBeLessThanOrEqual(STATSD_DATAGRAM_BYTES);
    expect(c.lines()).toContain('envoy.cluster.c7.upstream_rq_total:2|c');
    expect(c.lines()).toContain('envoy.server.live:1|g');
    expect(c.lines().some((l) => l.startsWith('envoy.server.never'))).toBe(false);

    c.grams.length = 0;
    counters[7]!.value += 3;
    g.value = 0;
    // stop() sends what changed since the last flush before closing.
    await f.stop();
    await until(() => c.lines().length >= 201, 'the last flush');
    expect(c.lines()).toContain('envoy.cluster.c7.upstream_rq_total:3|c');
    expect(c.lines()).toContain('envoy.cluster.c8.upstream_rq_total:0|c');
    expect(c.lines()).toContain('envoy.server.live:0|g');
    // After stop, nothing more.
    await f.flush();
  });

  it('DogStatsD: tag-extracted names with tags, one metric per datagram by default', async () => {
    const c = await collector();
    const store = new StatsStore(buildStatsSettings({ stats_tags: [{ tag_name: 'mesh', fixed_value: 'm|1' }] }, 'stats_config', []), true);
    store.root.scope('cluster').scope('a', 'envoy_cluster_name').counter('upstream_rq_total').value = 4;
    store.root.scope('listener').scope('127.0.0.1_80', 'envoy_listener_address').gauge('downstream_cx_active').value = 2;
    const f = new StatsFlusher(store, { sinks: [sink(c.port, { kind: 'dog_statsd', prefix: 'p', maxBytes: 1 })], flushMs: 60_000 });
    await f.flush();
    await until(() => c.grams.length >= 2, 'two datagrams');
    expect(c.grams.map(String).sort()).toEqual(['p.cluster.upstream_rq_total:4|c|#envoy.cluster_name:a,mesh:m_1', 'p.listener.downstream_cx_active:2|g|#envoy.listener_address:127.0.0.1_80,mesh:m_1']);
    await f.stop();
  });

  it('only sends stats the matcher keeps', async () => {
    const c = await collector();
    const store = new StatsStore(buildStatsSettings({ stats_matcher: { inclusion_list: { patterns: [{ prefix: 'server.' }] } } }, 'stats_config', []));
    store.root.scope('server').counter('a').value = 1;
    store.root.scope('cluster').counter('b').value = 1;
    const f = new StatsFlusher(store, { sinks: [sink(c.port)], flushMs: 60_000 });
    await f.flush();
    await until(() => c.grams.length >= 1, 'a datagram');
    expect(c.lines()).toEqual(['envoy.server.a:1|c']);
    await f.stop();
  });
});

describe('statsd histogram samples', () => {
  it('sends each sample as a timer, in full datagrams as they fill and the rest at the flush', async () => {
    const c = await collector();
    const store = new StatsStore(buildStatsSettings({ stats_matcher: { exclusion_list: { patterns: [{ prefix: 'cluster.hidden.' }] } } }, 'stats_config', []));
    const before = store.root.scope('cluster').scope('a').histogram('upstream_rq_time');
    const f = new StatsFlusher(store, { sinks: [sink(c.port)], flushMs: 60_000 });
    const after = store.root.scope('http').scope('in').histogram('downstream_rq_time');
    const hidden = store.root.scope('cluster').scope('hidden').histogram('upstream_rq_time');
    // 200 samples of ~35 bytes: several datagrams fill before any flush.
    for (let i = 0; i < 200; i++) before.record(i + 0.25);
    after.record(1.23456);
    hidden.record(5);
    await until(() => c.grams.length >= 3, 'datagrams sent as they filled');
    for (const d of c.grams) expect(d.length).toBeLessThanOrEqual(STATSD_DATAGRAM_BYTES);
    await f.flush();
    await until(() => c.lines().filter((l) => l.endsWith('|ms')).length === 201, 'every sample');
    const timers = c.lines().filter((l) => l.endsWith('|ms'));
    expect(timers.filter((l) => l.startsWith('envoy.cluster.a.upstream_rq_time:')).map((l) => Number(l.slice(l.indexOf(':') + 1, -3)))).toEqual(Array.from({ length: 200 }, (_, i) => i + 0.25));
    expect(timers).toContain('envoy.http.in.downstream_rq_time:1.235|ms');
    expect(timers.some((l) => l.includes('hidden'))).toBe(false);
    // The histogram itself still counts; after stop nothing is sent for it.
    expect(before.count).toBe(200);
    await f.stop();
    const n = c.grams.length;
    before.record(1);
    await sleep(50);
    expect(c.grams.length).toBe(n);
  });
});

describe('statsd timer', () => {
  it('does not keep the process alive', async () => {
    const c = await collector();
    // A process whose only work is a running flusher (interval far longer than the deadline)
    // must end by itself; the flush timer and the socket are unref'd.
    const mod = path.join(REPO, 'dist/observability');
    const script = `
      const { StatsStore } = await import(${JSON.stringify(path.join(mod, 'stats.js'))});
      const { StatsFlusher } = await import(${JSON.stringify(path.join(mod, 'stats_sinks.js'))});
      const store = new StatsStore();
      store.root.scope('server').counter('x').value = 1;
      const f = new StatsFlusher(store, { sinks: [{ kind: 'statsd', host: '127.0.0.1', port: ${c.port}, prefix: 'envoy', maxBytes: 1400 }], flushMs: 60000 });
      f.start();
      await f.flush();
    `;
    const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve, reject) => {
      const t = setTimeout(() => {
        p.kill('SIGKILL');
        reject(new Error('the flusher kept the process alive'));
      }, 10_000);
      p.on('exit', (code) => {
        clearTimeout(t);
        resolve(code);
      });
    });
    expect(code, stderr).toBe(0);
    await until(() => c.lines().includes('envoy.server.x:1|c'), 'the flush');
  });
});

describe('stats_sinks config', () => {
  it('reads statsd and DogStatsD sinks, the interval, and names bad fields', () => {
    const errors: FieldError[] = [];
    const warnings: FieldError[] = [];
    const addr = { socket_address: { address: '::1', port_value: 8125 } };
    const spec = buildStatsSinks(
      {
        stats_flush_interval: '0.250s',
        stats_sinks: [
          { name: 'envoy.stat_sinks.statsd', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink', address: addr } },
          { name: 'envoy.stat_sinks.dog_statsd', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink', address: addr, prefix: 'x', max_bytes_per_datagram: 512 } },
          { name: 'envoy.stat_sinks.hystrix', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.HystrixSink' } },
        ],
      },
      errors,
      warnings,
      durationMs,
    );
    expect(errors).toEqual([]);
    expect(spec).toEqual({
      flushMs: 250,
      sinks: [
        { kind: 'statsd', host: '::1', port: 8125, prefix: 'envoy', maxBytes: STATSD_DATAGRAM_BYTES },
        { kind: 'dog_statsd', host: '::1', port: 8125, prefix: 'x', maxBytes: 512 },
      ],
    });
    expect(warnings.map((w) => w.path)).toEqual(['stats_sinks[2]']);

    const bad: FieldError[] = [];
    buildStatsSinks(
      {
        stats_flush_on_admin: true,
        stats_flush_interval: '0s',
        stats_sinks: [
          { name: 'envoy.stat_sinks.statsd', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink', address: { socket_address: { address: '127.0.0.1' } } } },
          { name: 'envoy.stat_sinks.statsd', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink', address: { pipe: { path: '/x' } } } },
        ],
      },
      bad,
      [],
      durationMs,
    );
    expect(bad.map((e) => e.path)).toEqual(['stats_flush_on_admin', 'stats_flush_interval', 'stats_sinks[0].typed_config.address.socket_address.port_value', 'stats_sinks[1].typed_config.address']);
  });
});
