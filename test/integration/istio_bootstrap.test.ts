// Istio's own sidecar bootstrap (the corpus's default_golden.json, as pilot-agent writes it) runs
// as Strait's configuration: only its fixed ports are moved to ones the OS gives, and its
// prometheus_stats cluster points at a test server. Its Prometheus listener carries three
// compressor filters (brotli, zstd, gzip), which refused the whole bootstrap before; they are
// accepted without compressing, and say so at start-up.
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpUpstream, type Echo, type TestUpstream } from '../helpers/http.js';
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

describe.each(ENGINES)("Istio's sidecar bootstrap on the %s engine", (engine) => {
  let up: TestUpstream;
  let strait: StraitProcess;

  beforeAll(async () => {
    up = await httpUpstream('prometheus');
    // Not /ready: with no istiod on its xds-grpc socket the first fetch never completes
    // (initial_fetch_timeout 0s), as for Envoy; the static listeners serve meanwhile.
    strait = await startStraitFile('bootstrap.json', bootstrap(up.port), { engine, waitReady: false });
    await strait.waitAdmin();
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('starts, says the compressors do not compress, and serves the Prometheus listener uncompressed', async () => {
    let port = 0;
    for (let i = 0; i < 200 && !port; i++) port = await strait.port('0.0.0.0_15090').catch(async () => (await new Promise((r) => setTimeout(r, 50)), 0));
    const r = await request(`http://127.0.0.1:${port}/stats/prometheus`, { headers: { 'accept-encoding': 'br, zstd, gzip' } });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-encoding']).toBeUndefined();
    const echo = (await r.body.json()) as Echo;
    expect(echo.url).toBe('/stats/prometheus');
    // The client's preference reaches the upstream untouched: it may still compress on its own.
    expect(echo.headers['accept-encoding']).toBe('br, zstd, gzip');
    // What the filters would do and Strait does not is said at start-up, one line per filter.
    for (const enc of ['br', 'zstd', 'gzip']) expect(strait.stderr).toContain(`compression is not performed yet: responses pass uncompressed (no \\"${enc}\\" content-encoding)`);
  });
});
