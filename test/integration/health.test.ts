import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchTag } from '../helpers/net.js';
import { ADMIN, startStrait, tcpListener, type StraitProcess } from '../helpers/strait.js';
import { healthzServer, RestartableTag } from '../helpers/upstreams.js';

/** Fast checks; no_traffic_interval too, or an idle cluster would be checked once a minute (Envoy's default). */
const FAST = `      timeout: 0.5s
      interval: 0.1s
      no_traffic_interval: 0.1s
      unhealthy_threshold: 2
      healthy_threshold: 2
`;

function cluster(name: string, endpoints: Array<{ port: number; priority?: number }>, hc: string): string {
  const byPriority = new Map<number, number[]>();
  for (const e of endpoints) byPriority.set(e.priority ?? 0, [...(byPriority.get(e.priority ?? 0) ?? []), e.port]);
  const localities = [...byPriority.entries()]
    .map(
      ([p, ports]) =>
        `      - priority: ${p}\n        lb_endpoints:\n` +
        ports.map((port) => `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } }`).join('\n'),
    )
    .join('\n');
  return `  - name: ${name}
    type: STATIC
    connect_timeout: 1s
    health_checks:
    - ${hc.trimStart()}    load_assignment:
      cluster_name: ${name}
      endpoints:
${localities}
`;
}

async function spread(port: number, n: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const t = await fetchTag(port);
    seen[t] = (seen[t] ?? 0) + 1;
  }
  return seen;
}

describe('active health checks: TCP', () => {
  const ups = ['a', 'b', 'c'].map((t) => new RestartableTag(t));
  let p: StraitProcess;
  let port: number;

  beforeAll(async () => {
    for (const u of ups) await u.start();
    p = await startStrait(`${ADMIN}static_resources:
  listeners:
${tcpListener('l', 'tcp')}
  clusters:
${cluster('tcp', ups.map((u) => ({ port: u.port })), `${FAST}      tcp_health_check: {}\n`)}`);
    port = await p.port('l');
  });
  afterAll(async () => {
    await p?.stop();
    for (const u of ups) await u.stop();
  });

  it('starts with every host checked and healthy', async () => {
    // Cluster warming waits for the first round, so /ready means the hosts are known healthy.
    expect(await p.stat('cluster.tcp.health_check.healthy')).toBe(3);
    expect(await spread(port, 30)).toEqual({ a: 10, b: 10, c: 10 });
  });

  it('takes a dead host out of rotation after unhealthy_threshold failures and brings it back', async () => {
    const failuresBefore = (await p.stat('cluster.tcp.health_check.network_failure'))!;
    await ups[1]!.stop();
    await p.waitStat('cluster.tcp.health_check.healthy', (v) => v === 2);
    expect(await p.stat('cluster.tcp.health_check.network_failure')).toBeGreaterThanOrEqual(failuresBefore + 2);
    expect(await p.stat('cluster.tcp.membership_healthy')).toBe(2);
    const clusters = (await p.get('/clusters')).text;
    expect(clusters).toContain(`tcp::127.0.0.1:${ups[1]!.port}::health_flags::/failed_active_hc`);
    expect(clusters).toContain(`tcp::127.0.0.1:${ups[0]!.port}::health_flags::healthy`);
    // No client connection is sent to the dead host any more.
    expect(await spread(port, 20)).toEqual({ a: 10, c: 10 });

    await ups[1]!.start();
    await p.waitStat('cluster.tcp.health_check.healthy', (v) => v === 3);
    const back = await spread(port, 30);
    expect(back.b).toBe(10);
    expect(await p.stat('cluster.tcp.health_check.attempt')).toBeGreaterThan(await p.stat('cluster.tcp.health_check.success') as number);
  });
});

describe('active health checks: TCP payloads, HTTP and priorities', () => {
  it('a TCP check with send/receive payloads fails hosts that answer the wrong bytes', async () => {
    // The tag servers answer their tag whatever is sent: "a" (61) passes, "b" (62) does not.
    const ups = ['a', 'b'].map((t) => new RestartableTag(t));
    for (const u of ups) await u.start();
    const p = await startStrait(`${ADMIN}static_resources:
  listeners:
${tcpListener('l', 'pl')}
  clusters:
${cluster('pl', ups.map((u) => ({ port: u.port })), `${FAST}      reuse_connection: false\n      tcp_health_check: { send: { text: "70696e67" }, receive: [{ text: "61" }] }\n`)}`);
    try {
      expect(await p.stat('cluster.pl.health_check.healthy')).toBe(1);
      expect(await spread(await p.port('l'), 10)).toEqual({ a: 10 });
    } finally {
      await p.stop();
      for (const u of ups) await u.stop();
    }
  });

  it('HTTP: path, host, expected_statuses; an unexpected status fails at once; degraded is reported', async () => {
    const a = await healthzServer('a');
    const b = await healthzServer('b');
    const p = await startStrait(`${ADMIN}static_resources:
  listeners:
${tcpListener('l', 'web')}
  clusters:
${cluster('web', [{ port: a.port }, { port: b.port }], `${FAST.replace('unhealthy_threshold: 2', 'unhealthy_threshold: 1000')}      http_health_check: { path: /healthz, host: health.internal, expected_statuses: [{ start: 200, end: 300 }] }\n`)}`);
    try {
      expect(await p.stat('cluster.web.health_check.healthy')).toBe(2);
      expect(a.hosts[0]).toBe('health.internal');
      b.status = 204; // still expected
      const checks = b.checks;
      await p.waitStat('cluster.web.health_check.attempt', (v) => v > 0 && b.checks > checks + 1);
      expect(await p.stat('cluster.web.health_check.healthy')).toBe(2);
      // 503 is an answer, not a network problem: out at once. (1000 failures at 0.1 s would
      // take longer than waitStat waits, so passing here proves the immediate rule.)
      b.status = 503;
      await p.waitStat('cluster.web.health_check.healthy', (v) => v === 1);
      expect(await p.stat('cluster.web.health_check.network_failure')).toBe(0);
      b.status = 200;
      await p.waitStat('cluster.web.health_check.healthy', (v) => v === 2);
      a.degraded = true;
      await p.waitStat('cluster.web.health_check.degraded', (v) => v === 1);
      expect(await p.stat('cluster.web.health_check.healthy')).toBe(1);
      const j = JSON.parse((await p.get('/clusters?format=json')).text);
      const hs = j.cluster_statuses.find((c: { name: string }) => c.name === 'web').host_statuses;
      const ha = hs.find((h: any) => h.address.socket_address.port_value === a.port);
      expect(ha.health_status.failed_active_degraded_check).toBe(true);
    } finally {
      await p.stop();
      await a.close();
      await b.close();
    }
  });

  it('HTTP: a host slower than the timeout fails after unhealthy_threshold timeouts and recovers when fast again', async () => {
    const a = await healthzServer('a');
    const p = await startStrait(`${ADMIN}static_resources:
  clusters:
${cluster('slow', [{ port: a.port }], `${FAST.replace('timeout: 0.5s', 'timeout: 0.2s')}      http_health_check: { path: /healthz }\n`)}`);
    try {
      expect(await p.stat('cluster.slow.health_check.healthy')).toBe(1);
      a.delayMs = 1000;
      await p.waitStat('cluster.slow.health_check.healthy', (v) => v === 0);
      // Timeouts are network failures: they needed the threshold (2), not a single miss.
      expect(await p.stat('cluster.slow.health_check.network_failure')).toBeGreaterThanOrEqual(2);
      a.delayMs = 0;
      await p.waitStat('cluster.slow.health_check.healthy', (v) => v === 1);
    } finally {
      await p.stop();
      await a.close();
    }
  });

  it('slow start: a host back from failed checks takes a small share first (min_weight_percent), not a third', async () => {
    const ups = ['a', 'b', 'c'].map((t) => new RestartableTag(t));
    for (const u of ups) await u.start();
    const slow = '    round_robin_lb_config: { slow_start_config: { slow_start_window: 3600s, min_weight_percent: { value: 10 } } }\n';
    const p = await startStrait(`${ADMIN}static_resources:
  listeners:
${tcpListener('l', 'warm')}
  clusters:
${cluster('warm', ups.map((u) => ({ port: u.port })), `${FAST}      tcp_health_check: {}\n`).replace('    health_checks:', `${slow}    health_checks:`)}`);
    try {
      const port = await p.port('l');
      // The first membership starts level: equal weights, equal shares.
      expect(await spread(port, 30)).toEqual({ a: 10, b: 10, c: 10 });
      await ups[1]!.stop();
      await p.waitStat('cluster.warm.health_check.healthy', (v) => v === 2);
      await ups[1]!.start();
      await p.waitStat('cluster.warm.health_check.healthy', (v) => v === 3);
      // Back in rotation at 10% weight for the first minutes of an hour-long window: ~5 of 105.
      const s = await spread(port, 105);
      expect(s.b).toBeGreaterThanOrEqual(1);
      expect(s.b).toBeLessThanOrEqual(15);
      expect(s.a).toBeGreaterThanOrEqual(40);
      expect(s.c).toBeGreaterThanOrEqual(40);
    } finally {
      await p.stop();
      for (const u of ups) await u.stop();
    }
  });

  it('fails over to priority 1 when priority 0 hosts fail their checks, and fails back', async () => {
    const ups = ['p0a', 'p0b', 'p1'].map((t) => new RestartableTag(t));
    for (const u of ups) await u.start();
    const p = await startStrait(`${ADMIN}static_resources:
  listeners:
${tcpListener('l', 'prio')}
  clusters:
${cluster('prio', [{ port: ups[0]!.port }, { port: ups[1]!.port }, { port: ups[2]!.port, priority: 1 }], `${FAST}      tcp_health_check: {}\n`)}`);
    try {
      const port = await p.port('l');
      expect(await spread(port, 20)).toEqual({ p0a: 10, p0b: 10 });
      // One of two down: 50% × 1.4 = 70% stays on priority 0, 30% spills to priority 1.
      await ups[0]!.stop();
      await p.waitStat('cluster.prio.health_check.healthy', (v) => v === 2);
      const half = await spread(port, 100);
      expect(half.p0a).toBeUndefined();
      expect(half.p1).toBeGreaterThan(10);
      expect(half.p0b).toBeGreaterThan(half.p1!);
      await ups[1]!.stop();
      await p.waitStat('cluster.prio.health_check.healthy', (v) => v === 1);
      expect(await spread(port, 10)).toEqual({ p1: 10 });
      await ups[0]!.start();
      await ups[1]!.start();
      await p.waitStat('cluster.prio.health_check.healthy', (v) => v === 3);
      expect(await spread(port, 20)).toEqual({ p0a: 10, p0b: 10 });
    } finally {
      await p.stop();
      for (const u of ups) await u.stop();
    }
  });
});
