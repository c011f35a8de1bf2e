import crypto from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blackholePort } from '../helpers/blackhole.js';
import { closedWithin, connect, deadPort, echoServer, readAll, sha256, tagServer } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, staticCluster, tcpListener, type StraitProcess } from '../helpers/strait.js';

describe.each(ENGINES)('tcp_proxy on the %s engine', (engine) => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let strait: StraitProcess;

  beforeAll(async () => {
    echo = await echoServer();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${tcpListener('echo', 'echo')}
${tcpListener('echo_uds', 'echo', '', '{ pipe: { path: "{{TMP}}/echo.sock" } }')}
${tcpListener('idle', 'echo', '          idle_timeout: 0.3s\n')}
  clusters:
${staticCluster('echo', [echo.port])}`,
      { engine },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    await echo?.close();
  });

  it('forwards bytes exactly, both ways', async () => {
    const port = await strait.port('echo');
    const payload = crypto.randomBytes(16 * 1024 * 1024);
    const s = await connect(port);
    const got = readAll(s);
    s.end(payload);
    const back = await got;
    expect(back.length).toBe(payload.length);
    expect(sha256(back)).toBe(sha256(payload));
    await strait.waitStat('tcp.echo.downstream_cx_rx_bytes_total', (v) => v >= payload.length);
    expect(await strait.stat('tcp.echo.downstream_cx_tx_bytes_total')).toBeGreaterThanOrEqual(payload.length);
    expect(await strait.stat('cluster.echo.upstream_cx_tx_bytes_total')).toBeGreaterThanOrEqual(payload.length);
  });

  it('carries half-close from the client to the upstream and back', async () => {
    // The upstream answers only after it sees EOF, then closes: both halves must travel.
    const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (d) => chunks.push(d));
      s.on('end', () => s.end(`got ${Buffer.concat(chunks).length} bytes`));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const up = (upstream.address() as net.AddressInfo).port;
    const p = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${tcpListener('hc', 'hc')}\n  clusters:\n${staticCluster('hc', [up])}`, { engine });
    try {
      const s = await connect(await p.port('hc'));
      const reply = readAll(s);
      s.write('x'.repeat(1000));
      s.end();
      expect((await reply).toString()).toBe('got 1000 bytes');
      await p.waitStat('listener.127.0.0.1_' + (await p.port('hc')) + '.downstream_cx_destroy', (v) => v === 1);
    } finally {
      await p.stop();
      upstream.close();
    }
  });

  it('keeps the upstream-to-client half open after the client half-closes', async () => {
    // Upstream sends data for a while after client EOF.
    const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('end', () => {
        let n = 0;
        const t = setInterval(() => {
          s.write(`tick${n}\n`);
          if (++n === 5) {
            clearInterval(t);
            s.end();
          }
        }, 20);
      });
      s.resume();
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const up = (upstream.address() as net.AddressInfo).port;
    const p = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${tcpListener('hc2', 'hc2')}\n  clusters:\n${staticCluster('hc2', [up])}`, { engine });
    try {
      const s = await connect(await p.port('hc2'));
      const reply = readAll(s);
      s.end('bye');
      expect((await reply).toString()).toBe('tick0\ntick1\ntick2\ntick3\ntick4\n');
    } finally {
      await p.stop();
      upstream.close();
    }
  });

  it('serves a unix-socket (pipe) listener', async () => {
    const s = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect({ path: path.join(strait.dir, 'echo.sock'), allowHalfOpen: true }, () => resolve(c));
      c.once('error', reject);
    });
    const got = readAll(s);
    s.end('over a unix socket');
    expect((await got).toString()).toBe('over a unix socket');
  });

  it('closes a connection idle longer than idle_timeout and counts it', async () => {
    const s = await connect(await strait.port('idle'));
    s.write('ping');
    await new Promise((r) => s.once('data', r));
    const t0 = Date.now();
    expect(await closedWithin(s, 5000)).toBe('closed');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    await strait.waitStat('tcp.idle.idle_timeout', (v) => v === 1);
  });

  it('counts a refused upstream connect and closes the client', async () => {
    const dead = await deadPort();
    const p = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${tcpListener('dead', 'dead')}\n  clusters:\n${staticCluster('dead', [dead])}`, { engine });
    try {
      const s = await connect(await p.port('dead'));
      expect(await closedWithin(s, 5000)).toBe('closed');
      expect(await p.waitStat('cluster.dead.upstream_cx_connect_fail', (v) => v === 1)).toBe(1);
      expect(await p.stat('cluster.dead.upstream_cx_total')).toBe(1);
      expect(await p.stat('cluster.dead.upstream_cx_active')).toBe(0);
    } finally {
      await p.stop();
    }
  });

  it('times out a hanging connect after connect_timeout and counts it', async () => {
    const hole = await blackholePort();
    const cluster = staticCluster('hole', [hole.port]).replace('connect_timeout: 1s', 'connect_timeout: 0.25s');
    const p = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${tcpListener('hole', 'hole')}\n  clusters:\n${cluster}`, { engine });
    try {
      const s = await connect(await p.port('hole'));
      const t0 = Date.now();
      expect(await closedWithin(s, 5000)).toBe('closed');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
      expect(await p.waitStat('cluster.hole.upstream_cx_connect_timeout', (v) => v === 1)).toBe(1);
    } finally {
      await p.stop();
      hole.close();
    }
  });

  it('retries the connect on another host up to max_connect_attempts', async () => {
    const dead = await deadPort();
    const live = await tagServer('live');
    const cfg = `${ADMIN}static_resources:
  listeners:
${tcpListener('retry', 'mixed', '          max_connect_attempts: 3\n')}
  clusters:
${staticCluster('mixed', [dead, live.port])}`;
    const p = await startStrait(cfg, { engine });
    try {
      const port = await p.port('retry');
      // Round robin alternates: every connection either lands on `live` first or after one failed attempt.
      for (let i = 0; i < 6; i++) {
        const s = await connect(port);
        expect((await readAll(s)).toString()).toBe('live');
      }
      expect(await p.stat('cluster.mixed.upstream_cx_connect_fail')).toBeGreaterThanOrEqual(2);
      expect(await p.stat('cluster.mixed.upstream_cx_connect_attempts_exceeded')).toBe(0);
    } finally {
      await p.stop();
      await live.close();
    }
  });

  it('splits connections across weighted_clusters', async () => {
    const a = await tagServer('a');
    const b = await tagServer('b');
    const cfg = `${ADMIN}static_resources:
  listeners:
  - name: split
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: split
          weighted_clusters:
            clusters: [{ name: a, weight: 80 }, { name: b, weight: 20 }]
  clusters:
${staticCluster('a', [a.port])}${staticCluster('b', [b.port])}`;
    const p = await startStrait(cfg, { engine });
    try {
      const port = await p.port('split');
      const seen = { a: 0, b: 0 } as Record<string, number>;
      const { fetchTag } = await import('../helpers/net.js');
      for (let i = 0; i < 300; i++) seen[await fetchTag(port)]!++;
      expect(seen.a! + seen.b!).toBe(300);
      // 80/20 over 300 draws: b is 60 ± ~4σ (σ ≈ 6.9).
      expect(seen.b).toBeGreaterThan(30);
      expect(seen.b).toBeLessThan(95);
    } finally {
      await p.stop();
      await a.close();
      await b.close();
    }
  });
});
