import fs from 'node:fs';
import path from 'node:path';
import { Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpUpstream, type TestUpstream } from '../helpers/http.js';
import { startStrait, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { adsBootstrap, eventually, startXdsServer, type XdsServerProcess } from '../helpers/xds.js';

const HOST = 'reviews.default.svc.cluster.local';

const serviceEntry = (ports: Record<string, number>) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [${HOST}]
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints:
${Object.entries(ports).map(([v, p]) => `  - { address: 127.0.0.1, ports: { http: ${p} }, labels: { app: reviews, version: ${v} } }`).join('\n')}
`;

/** Subsets by name; `name=version` selects another version under a new subset name. */
const destinationRule = (subsets: string[]) => `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } }
  subsets:
${subsets.map((s) => s.split('=')).map(([n, v]) => `  - { name: ${n}, labels: { version: ${v ?? n} } }`).join('\n')}
`;

/** Bookinfo's "jason sees v2", everyone else 90/10 between v1 and v2. */
const JASON_VS = `apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - match: [{ headers: { end-user: { exact: jason } } }]
    route: [{ destination: { host: reviews, subset: v2 } }]
  - route:
    - { destination: { host: reviews, subset: v1 }, weight: 90 }
    - { destination: { host: reviews, subset: v2 }, weight: 10 }
`;

const allTo = (subset: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - route: [{ destination: { host: reviews, subset: ${subset} } }]
`;
const ALL_V3_VS = allTo('v3');

/** Requests with x-break: yes are aborted with 503 by a fault; the rest go to v1. */
const FAULT_VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - match: [{ headers: { x-break: { exact: "yes" } } }]
    fault: { abort: { httpStatus: 503, percentage: { value: 100 } } }
    route: [{ destination: { host: reviews, subset: v1 } }]
  - route: [{ destination: { host: reviews, subset: v1 } }]
`;

/** A CORS policy on the route: preflights from https://app.example are answered by the sidecar. */
const CORS_VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - corsPolicy:
      allowOrigins: [{ exact: "https://app.example" }]
      allowMethods: [GET, PUT]
      exposeHeaders: [x-upstream]
      maxAge: 1m
    route: [{ destination: { host: reviews, subset: v1 } }]
`;

/** Whether a /config_dump shows the route table sending to `subset`. */
const routedTo = (dump: string, subset: string) => new RegExp(`"cluster":\\s*"outbound\\|9080\\|${subset}\\|`).test(dump);

/** Atomic write, as deploy tools do: the server never reads half a file. */
function write(dir: string, file: string, text: string): void {
  const tmp = path.join(dir, `.${file}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, path.join(dir, file));
}

describe.each(['DELTA_GRPC', 'GRPC'] as const)('Istio ServiceEntry + DestinationRule + VirtualService served to Strait (%s)', (apiType) => {
  let dir: string;
  let xs: XdsServerProcess;
  let strait: StraitProcess;
  let pool: Pool;
  const up: Record<string, TestUpstream> = {};

  /** One GET through the outbound listener as the app would send it: by service name. */
  async function get(headers: Record<string, string> = {}): Promise<{ status: number; upstream: string }> {
    const r = await pool.request({ method: 'GET', path: '/reviews/1', headers: { host: `reviews:9080`, ...headers } });
    await r.body.dump();
    return { status: r.statusCode, upstream: String(r.headers['x-upstream'] ?? '') };
  }

  beforeAll(async () => {
    for (const v of ['v1', 'v2', 'v3']) up[v] = await httpUpstream(v);
    dir = tmpDir('strait-istio-dir-');
    write(dir, 'se.yaml', serviceEntry({ v1: up.v1!.port, v2: up.v2!.port, v3: up.v3!.port }));
    write(dir, 'dr.yaml', destinationRule(['v1', 'v2']));
    write(dir, 'vs.yaml', JASON_VS);
    // Outbound listeners on 127.0.0.1, each on a free port instead of 9080.
    xs = await startXdsServer(dir, { args: ['--outbound-bind', '127.0.0.1', '--listener-address', '127.0.0.1:0'] });
    strait = await startStrait(adsBootstrap(xs.port, apiType), { args: ['--log-level', 'info'] });
    const port = await eventually(() => strait.port('127.0.0.1_9080'), (p) => p > 0, 15_000, 'outbound listener up');
    pool = new Pool(`http://127.0.0.1:${port}`, { connections: 4 });
    await eventually(() => get(), (r) => r.status === 200, 15_000, 'routes served');
  });

  afterAll(async () => {
    await pool?.close();
    await strait?.stop();
    await xs?.stop();
    await Promise.all(Object.values(up).map((u) => u.close()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('routes as the VirtualService says: end-user jason to v2, the rest 90/10 over v1/v2', async () => {
    for (let i = 0; i < 20; i++) expect(await get({ 'end-user': 'jason' })).toEqual({ status: 200, upstream: 'v2' });
    const seen: Record<string, number> = {};
    for (let i = 0; i < 200; i++) {
      const r = await get();
      expect(r.status).toBe(200);
      seen[r.upstream] = (seen[r.upstream] ?? 0) + 1;
    }
    // Both subsets get traffic, v1 by far the most, and v3 (no subset routes to it) none.
    expect(seen.v1).toBeGreaterThan(seen.v2 ?? 0);
    expect(seen.v2).toBeGreaterThan(0);
    expect(seen.v3).toBeUndefined();
    expect(xs.logs.filter((l) => l.msg === 'xds NACK')).toEqual([]);
  });

  it('moves all traffic to a subset added in the same change, under load, without a single failed request', async () => {
    const statuses = new Map<number, number>();
    let stop = false;
    let v3Seen = 0;
    const worker = async () => {
      while (!stop) {
        const r = await get();
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.upstream === 'v3') v3Seen++;
      }
    };
    const workers = [worker(), worker(), worker()];
    try {
      await eventually(async () => statuses.get(200) ?? 0, (n) => n >= 20, 15_000, 'load running');
      // The rule with the new subset first, then the routes that use it: one debounced change.
      write(dir, 'dr.yaml', destinationRule(['v1', 'v2', 'v3']));
      write(dir, 'vs.yaml', ALL_V3_VS);
      await eventually(async () => v3Seen, (n) => n >= 50, 20_000, 'traffic on v3');
      // More of the same: each round a brand-new subset cluster takes all traffic and the
      // previous one goes, so both the add-before-route and the remove-after-route steps run.
      let prev = 'v3';
      for (let round = 1; round <= 4; round++) {
        const next = `r${round}`;
        write(dir, 'dr.yaml', destinationRule(['v1', 'v2', prev === 'v3' ? 'v3' : `${prev}=v3`, `${next}=v3`].filter((x, i, a) => a.indexOf(x) === i)));
        write(dir, 'vs.yaml', allTo(next));
        await eventually(() => strait.get('/config_dump'), (d) => routedTo(d.text, next), 20_000, `routes on ${next}`);
        const at = statuses.get(200) ?? 0;
        await eventually(async () => statuses.get(200) ?? 0, (n) => n >= at + 30, 20_000, 'traffic after the change');
        // The previous subset goes from the rule: its cluster leaves only after the routes did.
        write(dir, 'dr.yaml', destinationRule(['v1', 'v2', `${next}=v3`]));
        prev = next;
      }
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    // Had the routes reached Strait before a new cluster and its endpoints, or a cluster gone
    // before the routes left it, requests in between would have been answered 503 (no cluster).
    // (Checked: with clusters, endpoints and routes pushed at once, both runs see 503s.)
    expect(Object.fromEntries(statuses)).toEqual({ 200: expect.any(Number) });
    expect((await strait.stat('http.outbound_127.0.0.1_9080.no_cluster')) ?? 0).toBe(0);
    for (let i = 0; i < 10; i++) expect(await get({ 'end-user': 'jason' })).toEqual({ status: 200, upstream: 'v3' });
    expect(xs.logs.filter((l) => l.msg === 'xds NACK')).toEqual([]);
    // Back to plain v3 for what follows.
    write(dir, 'dr.yaml', destinationRule(['v1', 'v2', 'v3']));
    write(dir, 'vs.yaml', ALL_V3_VS);
    await eventually(() => strait.get('/config_dump'), (d) => routedTo(d.text, 'v3'), 20_000, 'routes back on v3');
  });

  it('reports a broken VirtualService by file and field; the last good version keeps serving', async () => {
    let from = xs.logs.length;
    // Valid YAML, invalid field: everything else of the change is refused with the file.
    write(dir, 'vs.yaml', ALL_V3_VS.replace('subset: v3 }', 'subset: v1 }, weight: lots'));
    const bad = await xs.waitLog((l) => l.level === 40 && l.file === 'vs.yaml' && l.path === 'spec.http[0].route[0].weight', from);
    expect(bad.msg).toBe('must be a non-negative integer, got "lots"');
    await xs.waitLog((l) => l.file === 'vs.yaml' && l.msg === 'invalid; its last good version keeps serving', from);
    for (let i = 0; i < 10; i++) expect(await get()).toEqual({ status: 200, upstream: 'v3' });

    // Not even YAML: same, the server keeps running and serving.
    from = xs.logs.length;
    write(dir, 'vs.yaml', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: { hosts: [reviews\n');
    await xs.waitLog((l) => l.level === 40 && l.file === 'vs.yaml' && /YAML syntax error/.test(l.msg), from);
    await xs.waitLog((l) => l.file === 'vs.yaml' && l.msg === 'invalid; its last good version keeps serving', from);
    for (let i = 0; i < 10; i++) expect(await get()).toEqual({ status: 200, upstream: 'v3' });

    // Fixed: the new version applies.
    write(dir, 'vs.yaml', JASON_VS);
    await eventually(() => get(), (r) => r.upstream === 'v1', 15_000, 'fixed VirtualService applied');
    expect(await get({ 'end-user': 'jason' })).toEqual({ status: 200, upstream: 'v2' });
  });

  it("injects a VirtualService fault on its route only (Istio's shape: empty fault filter, per-route HTTPFault)", async () => {
    write(dir, 'vs.yaml', FAULT_VS);
    // The listener already has the (empty) fault filter: only the routes change.
    const probe = async (headers: Record<string, string>) => {
      const r = await request(`http://127.0.0.1:${await strait.port('127.0.0.1_9080')}/reviews/1`, { headers: { host: 'reviews:9080', connection: 'close', ...headers } });
      const body = await r.body.text();
      return { status: r.statusCode, upstream: String(r.headers['x-upstream'] ?? ''), fault: body === 'fault filter abort' };
    };
    await eventually(() => probe({ 'x-break': 'yes' }), (r) => r.status === 503 && r.fault, 20_000, 'fault route served');
    expect(await probe({})).toEqual({ status: 200, upstream: 'v1', fault: false });
    expect(xs.logs.filter((l) => l.msg === 'xds NACK')).toEqual([]);
  });

  it('answers CORS preflights for a VirtualService corsPolicy and marks the allowed responses', async () => {
    write(dir, 'vs.yaml', CORS_VS);
    const send = async (method: string, headers: Record<string, string>) => {
      const r = await request(`http://127.0.0.1:${await strait.port('127.0.0.1_9080')}/reviews/1`, { method: method as 'GET', headers: { host: 'reviews:9080', connection: 'close', ...headers } });
      await r.body.text();
      return { status: r.statusCode, upstream: String(r.headers['x-upstream'] ?? ''), allow: r.headers['access-control-allow-origin'], methods: r.headers['access-control-allow-methods'], maxAge: r.headers['access-control-max-age'], expose: r.headers['access-control-expose-headers'] };
    };
    const preflight = { origin: 'https://app.example', 'access-control-request-method': 'PUT' };
    // The sidecar answers the preflight itself: no upstream saw it.
    const pf = await eventually(() => send('OPTIONS', preflight), (r) => r.allow === 'https://app.example', 20_000, 'cors route served');
    expect(pf).toMatchObject({ status: 200, upstream: '', methods: 'GET,PUT', maxAge: '60' });
    expect(await send('GET', { origin: 'https://app.example' })).toMatchObject({ status: 200, upstream: 'v1', allow: 'https://app.example', expose: 'x-upstream' });
    expect(await send('GET', { origin: 'https://evil.example' })).toMatchObject({ status: 200, upstream: 'v1', allow: undefined });
    expect(xs.logs.filter((l) => l.msg === 'xds NACK')).toEqual([]);
  });
});
