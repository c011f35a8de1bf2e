import fs from 'node:fs';
import path from 'node:path';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { holdServer, type HoldServer } from '../helpers/hold.js';
import { connect } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const FILTER = `          - name: strait.filters.http.priority_ratelimit
            typed_config:
              "@type": type.googleapis.com/strait.priority_ratelimit.v1.PriorityRateLimit
              priority_from_route: true
              rate_limit:
                max_concurrent: 1
                levels: 2
                priority_key: x-priority
                source_app_key: x-app
                max_queue_per_level: 2
                max_wait: 20s`;

describe.each(ENGINES.slice(0, 1))('strait.filters.http.priority_ratelimit on the %s engine', (engine) => {
  let up: HoldServer;
  let strait: StraitProcess;
  let url = '';

  beforeAll(async () => {
    up = await holdServer();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: p
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: p
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{{TMP}}/access.log"
              log_format: { text_format: "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS%\\n" }
          http_filters:
${FILTER}
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/vip" }
                route: { cluster: up, priority: HIGH }
              - match: { prefix: "/" }
                route: { cluster: up }
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    url = `http://127.0.0.1:${await strait.port('p')}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  const send = (path: string, app: string, priority?: string, extra: Record<string, string> = {}) =>
    request(`${url}${path}`, { headers: { 'x-app': app, ...(priority === undefined ? {} : { 'x-priority': priority }), ...extra } }).then(async (r) => ({
      status: r.statusCode,
      headers: r.headers,
      body: await r.body.text(),
    }));

  it('serves queued high-priority requests first, bounds each queue with 429, and limits each source app on its own', async () => {
    const waiting = 'http.p.app.a.priority_ratelimit.waiting';
    // a/0 takes app a's only permit and stays at the slow upstream.
    const r0 = send('/a/0', 'a', '1');
    await up.arrived(1);

    // Two low-priority requests fill level 1's queue; a third is refused at once.
    const l1 = send('/a/L1', 'a', '1');
    const l2 = send('/a/L2', 'a', '1');
    await strait.waitStat(waiting, (v) => v === 2);
    const l3 = await send('/a/L3', 'a', '1');
    expect(l3.status).toBe(429);
    expect(l3.body).toBe('priority_rate_limited');
    expect(await strait.stat('http.p.priority_ratelimit.rate_limited')).toBe(1);
    expect(await strait.stat('http.p.app.a.priority_ratelimit.queue_overflow')).toBe(1);
    // Envoy's response flag for a rate-limited request.
    const log = path.join(strait.dir, 'access.log');
    for (let i = 0; i < 100 && !(fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('/a/L3')); i++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.readFileSync(log, 'utf8')).toContain('/a/L3 429 RL\n');

    // gRPC clients read the refusal as RESOURCE_EXHAUSTED.
    const g = await send('/a/G', 'a', '1', { 'content-type': 'application/grpc' });
    expect(g.headers['grpc-status']).toBe('8');

    // A high-priority request queues behind nothing of its level; the route's HIGH priority
    // counts as level 0 when the header is absent.
    const h1 = send('/a/H1', 'a', '0');
    const v1 = send('/vip/a', 'a');
    await strait.waitStat(waiting, (v) => v === 4);

    // Another application has its own limiter: it goes straight through.
    const b0 = send('/b/0', 'b', '1');
    await up.arrived(2);
    expect(up.arrivals[1]).toBe('/b/0');
    up.release('/b/0');
    expect((await b0).status).toBe(200);

    // Each finished request hands the permit to the best waiter: level 0 first, FIFO within.
    const order = ['/a/0', '/a/H1', '/vip/a', '/a/L1', '/a/L2'];
    for (let i = 0; i < order.length; i++) {
      await up.arrived(i + 2);
      expect(up.arrivals[i === 0 ? 0 : i + 1]).toBe(order[i]); // index 1 is /b/0
      up.release(order[i]!);
    }
    const done = await Promise.all([r0, h1, v1, l1, l2]);
    expect(done.map((d) => d.status)).toEqual([200, 200, 200, 200, 200]);
    expect(up.arrivals).toEqual(['/a/0', '/b/0', '/a/H1', '/vip/a', '/a/L1', '/a/L2']);
    expect(await strait.stat('http.p.app.a.priority_ratelimit.granted_after_wait')).toBe(4);
    expect(await strait.stat('http.p.app.a.priority_ratelimit.waiting')).toBe(0);
  });

  it('holds HTTP/2 requests in the same queues and refuses gRPC with RESOURCE_EXHAUSTED', async () => {
    const base = up.arrivals.length;
    const s = http2.connect(url);
    const call = (path: string, priority: string, grpc = false) =>
      new Promise<{ status: number; grpc: string | undefined; body: string }>((resolve, reject) => {
        const rq = s.request({ ':method': 'GET', ':path': path, 'x-app': 'h2', 'x-priority': priority, ...(grpc ? { 'content-type': 'application/grpc' } : {}) });
        let body = '';
        let head: http2.IncomingHttpHeaders = {};
        rq.on('response', (h) => (head = h));
        rq.on('trailers', (t) => (head = { ...head, ...t }));
        rq.on('data', (d) => (body += d));
        rq.on('end', () => resolve({ status: Number(head[':status']), grpc: head['grpc-status'] as string | undefined, body }));
        rq.on('error', reject);
        rq.end();
      });
    try {
      const first = call('/h2/0', '1');
      await up.arrived(base + 1);
      const low = [call('/h2/L1', '1'), call('/h2/L2', '1')];
      await strait.waitStat('http.p.app.h2.priority_ratelimit.waiting', (v) => v === 2);
      const refused = await call('/h2/G', '1', true);
      expect(refused.status).toBe(200);
      expect(refused.grpc).toBe('8');
      const high = call('/h2/H', '0');
      await strait.waitStat('http.p.app.h2.priority_ratelimit.waiting', (v) => v === 3);
      for (const [i, p] of ['/h2/0', '/h2/H', '/h2/L1', '/h2/L2'].entries()) {
        await up.arrived(base + i + 1);
        expect(up.arrivals[base + i]).toBe(p);
        up.release(p);
      }
      const all = await Promise.all([first, high, ...low]);
      expect(all.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    } finally {
      s.close();
    }
  });

  it('withdraws a queued request whose client left, so it never reaches the upstream', async () => {
    const r0 = send('/c/0', 'c', '1');
    const base = up.arrivals.length;
    await up.arrived(base + 1);
    // A raw client that resets its connection while queued (a half-close would still await the answer).
    const gone = await connect(Number(new URL(url).port));
    gone.on('error', () => {});
    gone.write('GET /c/gone HTTP/1.1\r\nhost: x\r\nx-app: c\r\nx-priority: 1\r\n\r\n');
    await strait.waitStat('http.p.app.c.priority_ratelimit.waiting', (v) => v === 1);
    gone.resetAndDestroy();
    await strait.waitStat('http.p.app.c.priority_ratelimit.waiting', (v) => v === 0);
    const next = send('/c/1', 'c', '1');
    await strait.waitStat('http.p.app.c.priority_ratelimit.waiting', (v) => v === 1);
    up.release('/c/0');
    await up.arrived(base + 2);
    expect(up.arrivals.at(-1)).toBe('/c/1');
    up.release('/c/1');
    expect((await r0).status).toBe(200);
    expect((await next).status).toBe(200);
    expect(up.arrivals).not.toContain('/c/gone');
  });
});
