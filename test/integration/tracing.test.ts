import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { httpUpstream, simpleRoutes, type Echo, type TestUpstream } from '../helpers/http.js';
import { closeServer } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

interface Span {
  traceId: string;
  id: string;
  parentId?: string;
  name: string;
  kind: 'SERVER' | 'CLIENT';
  timestamp: number;
  duration: number;
  localEndpoint: { serviceName?: string };
  tags: Record<string, string>;
}

/** A Zipkin v2 collector: keeps every span POSTed to /api/v2/spans. */
async function zipkinCollector(): Promise<{ port: number; spans: Span[]; posts: number; close(): Promise<void> }> {
  const state = { spans: [] as Span[], posts: 0 };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/api/v2/spans' && req.headers['content-type'] === 'application/json') {
        state.posts++;
        state.spans.push(...(JSON.parse(body) as Span[]));
        res.writeHead(202).end();
      } else res.writeHead(400).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    get spans() {
      return state.spans;
    },
    get posts() {
      return state.posts;
    },
    close: () => closeServer(server),
  };
}

const TRACING = `          tracing:
            random_sampling: { value: 100 }
            provider:
              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin
                collector_endpoint: /api/v2/spans
                collector_endpoint_version: HTTP_JSON
`;

function hex(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += '0123456789abcdef'[Math.floor(Math.random() * 16)];
  return s.replace(/^0/, '1');
}

describe.each(ENGINES.slice(0, 1))('tracing in the HTTP connection manager on the %s engine', (engine) => {
  let a: TestUpstream;
  let zipkin: Awaited<ReturnType<typeof zipkinCollector>>;
  let strait: StraitProcess;
  let url = '';

  beforeAll(async () => {
    a = await httpUpstream('a');
    zipkin = await zipkinCollector();
    const rc = simpleRoutes('a')
      .split('\n')
      .map((l) => `            ${l}`)
      .join('\n');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: traced
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: traced
${TRACING}          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
${rc}
  clusters:
${staticCluster('a', [a.port])}${staticCluster('zipkin', [zipkin.port])}`,
      { engine },
    );
    url = `http://127.0.0.1:${await strait.port('traced')}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
    await zipkin?.close();
  });

  async function get(path: string, headers: Record<string, string>): Promise<Echo> {
    const r = await request(`${url}${path}`, { headers });
    expect(r.statusCode).toBe(200);
    return (await r.body.json()) as Echo;
  }

  /** Waits (no deadline of its own: the test timeout bounds it) until the collector holds spans of `traceId`. */
  async function spansOf(traceId: string, n: number): Promise<Span[]> {
    for (;;) {
      const s = zipkin.spans.filter((x) => x.traceId === traceId);
      if (s.length >= n) return s;
      await sleep(25);
    }
  }

  it('continues a W3C trace: server span under the caller, client span under it, the upstream under that', async () => {
    const traceId = hex(32);
    const caller = hex(16);
    const seen: Echo[] = [];
    // Three requests fill a batch (Envoy's min_flush_spans is 5), so the reporter posts at once.
    for (let i = 0; i < 3; i++) seen.push(await get(`/w3c/${i}?x=1`, { traceparent: `00-${traceId}-${caller}-01` }));
    for (const e of seen) {
      const tp = String(e.headers.traceparent);
      expect(tp).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
      expect(e.headers['x-b3-traceid']).toBe(traceId);
      expect(e.headers['x-b3-sampled']).toBe('1');
    }
    const spans = await spansOf(traceId, 6);
    expect(spans).toHaveLength(6);
    for (const e of seen) {
      const clientId = String(e.headers['x-b3-spanid']);
      expect(String(e.headers.traceparent).split('-')[2]).toBe(clientId);
      const client = spans.find((s) => s.id === clientId)!;
      expect(client.kind).toBe('CLIENT');
      expect(client.parentId).toBe(e.headers['x-b3-parentspanid']);
      const server = spans.find((s) => s.id === client.parentId)!;
      expect(server.kind).toBe('SERVER');
      expect(server.parentId).toBe(caller);
      expect(server.tags['http.status_code']).toBe('200');
      expect(server.tags['http.method']).toBe('GET');
      expect(client.tags.upstream_cluster).toBe('a');
      expect(server.localEndpoint.serviceName).toBe('traced');
      // The client span lies within the server span.
      expect(client.timestamp).toBeGreaterThanOrEqual(server.timestamp);
      expect(client.timestamp + client.duration).toBeLessThanOrEqual(server.timestamp + server.duration + 1000);
    }
    expect(spans.every((s) => s.name.endsWith(`/w3c/${s.name.split('/w3c/')[1]}`) && !s.name.includes('?'))).toBe(true);
  });

  it('continues B3 multi-header and single-header traces and honours a caller’s "not sampled"', async () => {
    const unsampled = hex(16);
    const e0 = await get('/b3/no', { 'x-b3-traceid': unsampled, 'x-b3-spanid': hex(16), 'x-b3-sampled': '0' });
    expect(e0.headers['x-b3-traceid']).toBe(unsampled);
    expect(e0.headers['x-b3-sampled']).toBe('0');
    expect(String(e0.headers.traceparent)).toMatch(/-00$/);

    const multi = hex(16);
    const parent = hex(16);
    const e1 = await get('/b3/multi', { 'x-b3-traceid': multi, 'x-b3-spanid': parent, 'x-b3-sampled': '1' });
    expect(e1.headers['x-b3-traceid']).toBe(multi);
    // A 64-bit B3 trace id travels in traceparent left-padded to 128 bits.
    expect(String(e1.headers.traceparent)).toBe(`00-${multi.padStart(32, '0')}-${e1.headers['x-b3-spanid']}-01`);

    const single = hex(32);
    const singleParent = hex(16);
    const e2 = await get('/b3/single', { b3: `${single}-${singleParent}-1` });
    const b3 = String(e2.headers.b3).split('-');
    expect(b3[0]).toBe(single);
    expect(b3[1]).toBe(e2.headers['x-b3-spanid']);
    expect(b3[2]).toBe('1');

    // One more fills the batch, so the reporter posts now rather than on its timer.
    await get('/b3/more', { 'x-b3-traceid': multi, 'x-b3-spanid': parent, 'x-b3-sampled': '1' });
    const s1 = await spansOf(multi, 2);
    expect(s1.find((s) => s.kind === 'SERVER')!.parentId).toBe(parent);
    const s2 = await spansOf(single, 2);
    expect(s2.find((s) => s.kind === 'SERVER')!.parentId).toBe(singleParent);
    // Spans are reported in order: by now the unsampled request's would have arrived too.
    expect(zipkin.spans.some((s) => s.traceId === unsampled)).toBe(false);
  });

  it('starts a new trace for a request without context', async () => {
    const e = await get('/fresh', {});
    const traceId = String(e.headers['x-b3-traceid']);
    expect(traceId).toMatch(/^[0-9a-f]{16}$/);
    // Two more to fill the batch.
    await get('/fresh', {});
    await get('/fresh', {});
    const spans = await spansOf(traceId, 2);
    const server = spans.find((s) => s.kind === 'SERVER')!;
    expect(server.parentId).toBeUndefined();
    expect(spans.find((s) => s.kind === 'CLIENT')!.parentId).toBe(server.id);
    expect(await strait.waitStat('tracing.zipkin.spans_sent', (v) => v >= 2)).toBeGreaterThanOrEqual(2);
  });

  it('traces HTTP/2 downstream requests the same way', async () => {
    const traceId = hex(32);
    const caller = hex(16);
    const client = http2.connect(url);
    try {
      const echo = await new Promise<Echo>((resolve, reject) => {
        const req = client.request({ ':path': '/h2', traceparent: `00-${traceId}-${caller}-01` });
        let body = '';
        req.on('data', (d: Buffer) => (body += d));
        req.on('end', () => resolve(JSON.parse(body) as Echo));
        req.on('error', reject);
        req.end();
      });
      expect(echo.headers['x-b3-traceid']).toBe(traceId);
      expect(String(echo.headers.traceparent)).toBe(`00-${traceId}-${echo.headers['x-b3-spanid']}-01`);
      for (let i = 0; i < 2; i++) await get('/fill', {});
      const spans = await spansOf(traceId, 2);
      const server = spans.find((x) => x.kind === 'SERVER')!;
      expect(server.parentId).toBe(caller);
      expect(spans.find((x) => x.kind === 'CLIENT')!.id).toBe(echo.headers['x-b3-spanid']);
    } finally {
      client.close();
    }
  });

  it('records downstream and upstream request times as histograms', async () => {
    const prom = (await strait.get('/stats/prometheus')).text;
    const count = (re: RegExp) => Number(re.exec(prom)?.[1] ?? -1);
    expect(count(/envoy_http_downstream_rq_time_count\{envoy_http_conn_manager_prefix="traced"\} (\d+)/)).toBeGreaterThanOrEqual(9);
    expect(count(/envoy_cluster_upstream_rq_time_count\{envoy_cluster_name="a"\} (\d+)/)).toBeGreaterThanOrEqual(9);
    expect(prom).toContain('envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="traced",le="+Inf"}');
    const text = (await strait.get('/stats?filter=rq_time')).text;
    expect(text).toMatch(/^cluster\.a\.upstream_rq_time: P0\(nan,[\d.]+\) P25/m);
    expect(text).toMatch(/^http\.traced\.downstream_rq_time: P0\(nan,[\d.]+\)/m);
  });
});
