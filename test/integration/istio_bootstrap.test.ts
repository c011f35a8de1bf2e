// Istio's own sidecar bootstrap (the corpus's default_golden.json, as pilot-agent writes it) runs
// as Strait's configuration: only its fixed ports are moved to ones the OS gives, and its
// prometheus_stats cluster points at a test server. Its Prometheus listener carries three
// compressor filters (brotli, zstd, gzip), which refused the whole bootstrap before; they
// compress now, the client's preferred coding winning among brotli and gzip (zstd is accepted
// and never chosen: Node.js has no zstd).
import http from 'node:http';
import type net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, REPO, startStraitFile, type StraitProcess } from '../helpers/strait.js';

type Obj = Record<string, any>;

const GOLDEN = path.resolve(REPO, '../shared/corpus/istio/default_golden.json');

function bootstrap(statsPort: number): string {
  const b = JSON.parse(fs.readFileSync(GOLDEN, 'utf8')) as Obj;
  b.admin.address.socket_address.port_value = 0;
  for (const l of b.static_resources.listeners as Obj[]) l.address.socket_address.port_value = 0;
  const stats = (b.static_resources.clusters as Obj[]).find((c) => c.name === 'prometheus_stats')!;
  stats.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = statsPort;
  return JSON.stringify(b);
}

/** What a Prometheus endpoint serves: text/plain, long enough to compress. */
const METRICS = Buffer.from(Array.from({ length: 300 }, (_, i) => `envoy_cluster_upstream_rq_total{cluster_name="c${i}"} ${i * 3}\n`).join(''));

describe.each(ENGINES)("Istio's sidecar bootstrap on the %s engine", (engine) => {
  let up: http.Server;
  let strait: StraitProcess;
  /** The Accept-Encoding each request reached the stats server with. */
  const seen: Array<string | undefined> = [];

  beforeAll(async () => {
    up = http.createServer((req, res) => {
      seen.push(req.headers['accept-encoding']);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': METRICS.length });
      res.end(METRICS);
    });
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
    // Not /ready: with no istiod on its xds-grpc socket the first fetch never completes
    // (initial_fetch_timeout 0s), as for Envoy; the static listeners serve meanwhile.
    strait = await startStraitFile('bootstrap.json', bootstrap((up.address() as net.AddressInfo).port), { engine, waitReady: false });
    await strait.waitAdmin();
  });

  afterAll(async () => {
    await strait?.stop();
    await new Promise<void>((r) => (up ? up.close(() => r()) : r()));
  });

  it("starts and serves the Prometheus listener compressed with the client's preferred coding", async () => {
    let port = 0;
    for (let i = 0; i < 200 && !port; i++) port = await strait.port('0.0.0.0_15090').catch(async () => (await new Promise((r) => setTimeout(r, 50)), 0));
    const get = async (ae: string) => {
      const r = await request(`http://127.0.0.1:${port}/stats/prometheus`, { headers: { 'accept-encoding': ae } });
      return { status: r.statusCode, headers: r.headers, body: Buffer.from(await r.body.arrayBuffer()) };
    };
    const br = await get('br, gzip');
    expect(br.status).toBe(200);
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toBe('Accept-Encoding');
    expect(zlib.brotliDecompressSync(br.body).equals(METRICS)).toBe(true);
    // zstd first: never chosen here, so the client's next choice.
    const gz = await get('zstd, gzip;q=0.9, br;q=0.5');
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(gz.body).equals(METRICS)).toBe(true);
    // The client's preference reaches the upstream untouched (no remove_accept_encoding_header).
    expect(seen.slice(-2)).toEqual(['br, gzip', 'zstd, gzip;q=0.9, br;q=0.5']);
    // Istio's stats_config keeps the compressor's counters out (its inclusion list, next test);
    // http_compressor.test.ts counts them without one.
    expect(await strait.stat('http.stats.compressor.stats_brotli.brotli.response.compressed')).toBeUndefined();
    // What the zstd filter cannot do is said at start-up.
    expect(strait.stderr).toContain('zstd compression is not available');
  });

  it("applies its stats_config: Istio's label names, only the stats its inclusion list names", async () => {
    const text = (await strait.get('/stats/prometheus')).text;
    // xds-grpc has alt_stat_name "xds-grpc;", which Istio's cluster_name regex needs.
    expect(text).toMatch(/^envoy_cluster_upstream_cx_total\{cluster_name="xds-grpc"\} \d+$/m);
    expect(text).toMatch(/^envoy_server_live \d$/m);
    expect(text).not.toContain('envoy_cluster_name=');
    // prometheus_stats and the listeners are outside the inclusion list.
    expect(text).not.toContain('prometheus_stats');
    expect(text).not.toMatch(/^envoy_listener_(?!manager_)/m);
    expect(text).toMatch(/^envoy_listener_manager_/m);
    expect(strait.stderr).not.toContain('stats_config');
  });
});
