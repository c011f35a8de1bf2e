import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { connect, echoServer } from '../helpers/net.js';
import { holdServer, type HoldServer } from '../helpers/hold.js';
import { ADMIN, ENGINES, runCli, startStrait, staticCluster, tcpListener, tmpDir, type StraitProcess } from '../helpers/strait.js';
import fs from 'node:fs';
import path from 'node:path';

const BREAKERS = `    circuit_breakers:
      thresholds:
      - { priority: DEFAULT, max_requests: 1 }
      - { priority: HIGH, max_requests: 5 }
`;

function routes(): string {
  return `          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/high" }
                route: { cluster: slow, priority: HIGH }
              - match: { prefix: "/" }
                route: { cluster: slow }`;
}

describe.each(ENGINES.slice(0, 1))('circuit breakers per priority on the %s engine', (engine) => {
  let up: HoldServer;
  let strait: StraitProcess;
  let url = '';

  beforeAll(async () => {
    up = await holdServer();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: h
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{{TMP}}/access.log"
              log_format: { text_format: "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS%\\n" }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
${routes()}
  clusters:
${staticCluster('slow', [up.port], BREAKERS)}`,
      { engine },
    );
    url = `http://127.0.0.1:${await strait.port('h')}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('answers DEFAULT overflow locally with 503 while a HIGH route still passes, and shows the open gauges', async () => {
    // One slow DEFAULT request holds the only DEFAULT request slot.
    const first = request(`${url}/default/1`);
    await up.arrived(1);

    const over = await request(`${url}/default/2`);
    expect(over.statusCode).toBe(503);
    expect(over.headers['x-envoy-overloaded']).toBe('true');
    await over.body.text();

    // HIGH has its own thresholds: it reaches the (slow) upstream while DEFAULT is full.
    const high = request(`${url}/high/1`);
    await up.arrived(2);
    expect(up.arrivals).toEqual(['/default/1', '/high/1']);

    expect(await strait.stat('cluster.slow.upstream_rq_pending_overflow')).toBe(1);
    expect(await strait.stat('cluster.slow.circuit_breakers.default.rq_open')).toBe(1);
    expect(await strait.stat('cluster.slow.circuit_breakers.high.rq_open')).toBe(0);
    expect(await strait.stat('cluster.slow.circuit_breakers.default.cx_open')).toBe(0);
    const prom = (await strait.get('/stats/prometheus')).text;
    expect(prom).toContain('envoy_cluster_circuit_breakers_default_rq_open{envoy_cluster_name="slow"} 1\n');
    expect(prom).toContain('envoy_cluster_circuit_breakers_high_rq_open{envoy_cluster_name="slow"} 0\n');
    expect(prom).toMatch(/envoy_cluster_circuit_breakers_high_rq_pending_open\{envoy_cluster_name="slow"\} 0\n/);

    const log = path.join(strait.dir, 'access.log');
    for (let i = 0; i < 100 && !(fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('/default/2')); i++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.readFileSync(log, 'utf8')).toContain('/default/2 503 UO\n');

    const clusters = (await strait.get('/clusters')).text;
    expect(clusters).toContain('slow::default_priority::max_requests::1\n');
    expect(clusters).toContain('slow::high_priority::max_requests::5\n');
    expect(clusters).toContain('slow::high_priority::max_retries::3\n');

    up.releaseAll();
    const [r1, r2] = await Promise.all([first, high]);
    expect(r1.statusCode).toBe(200);
    expect(r2.statusCode).toBe(200);
    await r1.body.text();
    await r2.body.text();
    // The slot is back: the gauge closes and DEFAULT traffic flows again.
    await strait.waitStat('cluster.slow.circuit_breakers.default.rq_open', (v) => v === 0);
    const again = request(`${url}/default/3`);
    await up.arrived(3);
    up.releaseAll();
    expect((await again).statusCode).toBe(200);
  });
});

describe.each(ENGINES.slice(0, 1))('max_retries per priority on the %s engine', (engine) => {
  it('lets DEFAULT routes retry while HIGH, at max_retries 0, overflows and answers the first failure', async () => {
    const paths: string[] = [];
    const failing = http.createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(503).end('down');
    });
    await new Promise<void>((r) => failing.listen(0, '127.0.0.1', r));
    const port = (failing.address() as AddressInfo).port;
    const strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: r
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: r
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/high" }
                route: { cluster: failing, priority: HIGH, retry_policy: { retry_on: 5xx, num_retries: 1, retry_back_off: { base_interval: 0.001s } } }
              - match: { prefix: "/" }
                route: { cluster: failing, retry_policy: { retry_on: 5xx, num_retries: 1, retry_back_off: { base_interval: 0.001s } } }
  clusters:
${staticCluster('failing', [port], `    circuit_breakers: { thresholds: [{ priority: HIGH, max_retries: 0 }] }\n`)}`,
      { engine },
    );
    try {
      const url = `http://127.0.0.1:${await strait.port('r')}`;
      const d = await request(`${url}/default`);
      await d.body.text();
      expect(d.statusCode).toBe(503);
      expect(paths).toEqual(['/default', '/default']);
      const h = await request(`${url}/high`);
      await h.body.text();
      expect(h.statusCode).toBe(503);
      expect(paths).toEqual(['/default', '/default', '/high']);
      expect(await strait.stat('cluster.failing.upstream_rq_retry_overflow')).toBe(1);
      expect(await strait.stat('cluster.failing.circuit_breakers.high.rq_retry_open')).toBe(1);
      expect(await strait.stat('cluster.failing.circuit_breakers.default.rq_retry_open')).toBe(0);
    } finally {
      await strait.stop();
      failing.closeAllConnections();
      await new Promise<void>((r) => failing.close(() => r()));
    }
  });
});

describe.each(ENGINES.slice(0, 1))('tcp_proxy max_connections on the %s engine', (engine) => {
  it('closes a downstream connection beyond the cluster max_connections at once and counts upstream_cx_overflow', async () => {
    const echo = await echoServer();
    const strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${tcpListener('t', 'echo')}
  clusters:
${staticCluster('echo', [echo.port], `    circuit_breakers: { thresholds: [{ max_connections: 1 }] }\n`)}`,
      { engine },
    );
    try {
      const port = await strait.port('t');
      const a = await connect(port);
      const firstEcho = new Promise<string>((r) => a.once('data', (d) => r(String(d))));
      a.write('one');
      expect(await firstEcho).toBe('one');

      const b = await connect(port);
      const bClosed = new Promise<string>((r) => {
        let got = '';
        b.on('error', () => {});
        b.on('data', (d) => (got += d));
        // The socket allows half-open: the proxy's FIN shows as 'end'.
        b.on('end', () => r(got));
        b.on('close', () => r(got));
      });
      b.write('two');
      expect(await bClosed).toBe('');
      expect(await strait.stat('cluster.echo.upstream_cx_overflow')).toBe(1);
      expect(await strait.stat('cluster.echo.circuit_breakers.default.cx_open')).toBe(1);

      // The first connection is untouched; once it ends its slot is free again.
      const stillEcho = new Promise<string>((r) => a.once('data', (d) => r(String(d))));
      a.write('three');
      expect(await stillEcho).toBe('three');
      a.end();
      await strait.waitStat('cluster.echo.circuit_breakers.default.cx_open', (v) => v === 0);
      const c = await connect(port);
      const cEcho = new Promise<string>((r) => c.once('data', (d) => r(String(d))));
      c.write('four');
      expect(await cEcho).toBe('four');
      c.destroy();
    } finally {
      await strait.stop();
      await echo.close();
    }
  });
});

describe('circuit_breakers config errors', () => {
  it('names the field path of a priority given twice in circuit_breakers.thresholds', async () => {
    const dir = tmpDir();
    const cfg = path.join(dir, 'bad.yaml');
    fs.writeFileSync(
      cfg,
      `static_resources:
  listeners:
  - name: h
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
${routes()}
  clusters:
${staticCluster('slow', [1], `    circuit_breakers: { thresholds: [{ priority: HIGH, max_requests: 1 }, { priority: HIGH, max_retries: 2 }] }\n`)}`,
    );
    const r = await runCli(['--config', cfg, '--mode', 'validate']);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('circuit_breakers.thresholds[1].priority');
  });
});
