import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, REPO, runCli, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { HttpRouteTable } from '../../src/router/http_route_table.js';
import type { FieldError } from '../../src/errors.js';

/** An upstream answering every request with `status`, counting requests per `x-rid`. */
interface CountingUpstream {
  readonly tag: string;
  readonly port: number;
  readonly hits: Map<string, number>;
  close(): Promise<void>;
}

async function countingUpstream(tag: string, status: number): Promise<CountingUpstream> {
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const rid = String(req.headers['x-rid'] ?? '');
    hits.set(rid, (hits.get(rid) ?? 0) + 1);
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'x-upstream': tag, 'content-type': 'text/plain' });
      res.end(tag);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    tag,
    port: (server.address() as net.AddressInfo).port,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * A STATIC cluster over the upstreams. ROUND_ROBIN weighs the two failing hosts 2 and the good
 * one 1, so three consecutive picks can repeat a failing host (plain rotation over equal weights
 * would never repeat one within three tries, and the test would prove nothing). RING_HASH places
 * hosts by `hash_key`, so the ring (and which keys land where) is the same in every run whatever
 * ports the upstreams got. The ring has one point per host: a reselect takes the next point, so
 * five reselects surely reach the one host not tried yet. On a 1024-point ring the next points
 * are near random draws, and a key whose five next points all belong to tried hosts keeps the
 * last one and fails (Envoy behaves the same), which would make "every request" a matter of luck.
 */
function cluster(name: string, ups: CountingUpstream[], lb: 'ROUND_ROBIN' | 'RING_HASH'): string {
  const eps = ups
    .map((u, i) => {
      const weight = lb === 'ROUND_ROBIN' ? `\n          load_balancing_weight: ${i < 2 ? 2 : 1}` : '';
      return `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${u.port} } } }${weight}
          metadata: { filter_metadata: { envoy.lb: { hash_key: ${u.tag} } } }`;
    })
    .join('\n');
  const extra = lb === 'RING_HASH' ? '    lb_policy: RING_HASH\n    ring_hash_lb_config: { minimum_ring_size: 3 }\n' : '    lb_policy: ROUND_ROBIN\n';
  return `  - name: ${name}
    type: STATIC
    connect_timeout: 1s
${extra}    load_assignment:
      cluster_name: ${name}
      endpoints:
      - lb_endpoints:
${eps}
`;
}

const PREDICATE = `retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts, typed_config: { "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } }], host_selection_retry_max_attempts: 5`;

/** Routes /rr and /ring; with `predicate`, retries avoid the hosts already tried (as Istio configures every route). */
function routes(predicate: boolean): string {
  const retry = `retry_policy: { retry_on: 5xx, num_retries: 2, retry_back_off: { base_interval: 0.001s, max_interval: 0.002s }${predicate ? `, ${PREDICATE}` : ''} }`;
  return `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/rr" }
    route: { cluster: rr, ${retry} }
  - match: { prefix: "/ring" }
    route:
      cluster: ring
      hash_policy: [{ header: { header_name: x-user } }]
      ${retry}`;
}

type Send = (port: number, p: string, headers: Record<string, string>) => Promise<number>;

const h1: Send = async (port, p, headers) => {
  const r = await request(`http://127.0.0.1:${port}${p}`, { headers });
  await r.body.text();
  return r.statusCode;
};

/** HTTP/2 with prior knowledge (h2c) to the same listener; one session per request keeps it simple. */
const h2: Send = async (port, p, headers) => {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  try {
    return await new Promise<number>((resolve, reject) => {
      const s = session.request({ ':method': 'GET', ':path': p, ...headers });
      let status = 0;
      s.on('response', (h) => (status = Number(h[':status'])));
      s.on('data', () => {});
      s.on('end', () => resolve(status));
      s.on('error', reject);
      s.end();
    });
  } finally {
    session.close();
  }
};

describe('retry_host_predicate previous_hosts (HTTP retries avoid the hosts already tried)', () => {
  const rr: CountingUpstream[] = [];
  const ring: CountingUpstream[] = [];
  let p: StraitProcess;
  let on = 0;
  let off = 0;
  let seq = 0;

  beforeAll(async () => {
    for (const [list, prefix] of [
      [rr, 'rr'],
      [ring, 'ring'],
    ] as const) {
      list.push(await countingUpstream(`${prefix}-bad1`, 503), await countingUpstream(`${prefix}-bad2`, 503), await countingUpstream(`${prefix}-good`, 200));
    }
    p = await startStrait(`${ADMIN}static_resources:
  listeners:
${hcmListener('on', routes(true))}${hcmListener('off', routes(false))}  clusters:
${cluster('rr', rr, 'ROUND_ROBIN')}${cluster('ring', ring, 'RING_HASH')}`);
    on = await p.port('on');
    off = await p.port('off');
  });

  afterAll(async () => {
    await p?.stop();
    await Promise.all([...rr, ...ring].map((u) => u.close()));
  });

  /**
   * Sends `n` requests (RING_HASH: one key each) and returns, per request, its status and how
   * many times each upstream saw it.
   */
  async function run(send: Send, port: number, route: 'rr' | 'ring', n: number): Promise<Array<{ status: number; perHost: number[] }>> {
    const ups = route === 'rr' ? rr : ring;
    const out: Array<{ status: number; perHost: number[] }> = [];
    for (let i = 0; i < n; i++) {
      const rid = `r${seq++}`;
      const status = await send(port, `/${route}`, { 'x-rid': rid, 'x-user': `user-${i}` });
      out.push({ status, perHost: ups.map((u) => u.hits.get(rid) ?? 0) });
    }
    return out;
  }

  const cases: Array<[string, Send, 'rr' | 'ring']> = [
    ['HTTP/1.1, ROUND_ROBIN', h1, 'rr'],
    ['HTTP/1.1, RING_HASH', h1, 'ring'],
    ['HTTP/2, ROUND_ROBIN', h2, 'rr'],
    ['HTTP/2, RING_HASH', h2, 'ring'],
  ];

  it.each(cases)('%s: every request succeeds and no host is tried twice for one request', async (_what, send, route) => {
    const before = (await p.stat(`cluster.${route}.upstream_rq_retry`)) ?? 0;
    const results = await run(send, on, route, 30);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    for (const r of results) {
      expect(Math.max(...r.perHost), `per-host tries ${r.perHost.join(',')}`).toBe(1);
      // The good host answered: it is the last one tried.
      expect(r.perHost[2]).toBe(1);
    }
    // Failing hosts were hit first often enough that retries did the work.
    expect(((await p.stat(`cluster.${route}.upstream_rq_retry`)) ?? 0) - before).toBeGreaterThan(10);
  });

  it.each(cases)('%s without the predicate: some requests go back to a failing host and fail', async (_what, send, route) => {
    const results = await run(send, off, route, 30);
    const failed = results.filter((r) => r.status !== 200);
    expect(failed.length).toBeGreaterThan(0);
    // Every failure tried one failing host more than once: what the predicate prevents.
    for (const r of failed) expect(Math.max(r.perHost[0]!, r.perHost[1]!)).toBeGreaterThan(1);
  });
});

describe('retry_host_predicate omit_canary_hosts and omit_host_metadata', () => {
  const ups: CountingUpstream[] = [];
  let p: StraitProcess;
  let port = 0;

  beforeAll(async () => {
    ups.push(await countingUpstream('plain', 200), await countingUpstream('canary', 200), await countingUpstream('draining', 200));
    const md = ['hash_key: plain', 'canary: true', 'stage: drain'];
    const eps = ups
      .map((u, i) => `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${u.port} } } }\n          metadata: { filter_metadata: { envoy.lb: { ${md[i]} } } }`)
      .join('\n');
    const route = (prefix: string, predicate: string) =>
      `  - match: { prefix: "${prefix}" }\n    route: { cluster: c, retry_policy: { retry_on: 5xx, num_retries: 1${predicate ? `, retry_host_predicate: [${predicate}], host_selection_retry_max_attempts: 5` : ''} } }`;
    const rc = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
${route('/canary', '{ name: envoy.retry_host_predicates.omit_canary_hosts }')}
${route('/meta', '{ name: envoy.retry_host_predicates.omit_host_metadata, typed_config: { "@type": type.googleapis.com/envoy.extensions.retry.host.omit_host_metadata.v3.OmitHostMetadataConfig, metadata_match: { filter_metadata: { envoy.lb: { stage: drain } } } } }')}
${route('/plain', '')}`;
    p = await startStrait(`${ADMIN}static_resources:
  listeners:
${hcmListener('web', rc)}  clusters:
  - name: c
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
${eps}
`);
    port = await p.port('web');
  });

  afterAll(async () => {
    await p?.stop();
    await Promise.all(ups.map((u) => u.close()));
  });

  /** Requests per upstream for `n` requests to `path` (the predicate applies to the first try too, as in Envoy). */
  async function spread(path: string, n: number): Promise<number[]> {
    const before = ups.map((u) => [...u.hits.values()].reduce((a, b) => a + b, 0));
    for (let i = 0; i < n; i++) expect(await h1(port, path, { 'x-rid': `${path}-${i}` })).toBe(200);
    return ups.map((u, i) => [...u.hits.values()].reduce((a, b) => a + b, 0) - before[i]!);
  }

  it('a route with omit_canary_hosts never picks the canary host; one without the predicate does', async () => {
    const [plain, canary, draining] = await spread('/canary', 24);
    expect(canary).toBe(0);
    expect(plain! + draining!).toBe(24);
    expect((await spread('/plain', 24))[1]).toBeGreaterThan(0);
  });

  it('a route with omit_host_metadata never picks a host whose envoy.lb metadata matches', async () => {
    const [plain, canary, draining] = await spread('/meta', 24);
    expect(draining).toBe(0);
    expect(plain! + canary!).toBe(24);
    expect((await spread('/plain', 24))[2]).toBeGreaterThan(0);
  });
});

/**
 * The rest of what Istio puts on every route next to the predicate: `refused-stream` in
 * `retry_on` and the virtual host's `include_request_attempt_count`.
 */
describe('Istio route retry options: refused-stream, include_request_attempt_count, include_attempt_count_in_response', () => {
  let h2up: http2.Http2Server;
  let h1up: http.Server;
  let p: StraitProcess;
  let port = 0;
  /** Streams (HTTP/2) or requests (HTTP/1.1) seen per x-rid, and the attempt counts they carried. */
  const seen = new Map<string, string[]>();
  const note = (rid: string, attempt: string | string[] | undefined) => {
    const list = seen.get(rid) ?? [];
    list.push(String(attempt ?? '-'));
    seen.set(rid, list);
    return list.length;
  };

  beforeAll(async () => {
    // HTTP/2 upstream: refuses the first stream of each request id (REFUSED_STREAM: not processed).
    h2up = http2.createServer();
    h2up.on('stream', (stream, headers) => {
      const n = note(String(headers['x-rid']), headers['x-envoy-attempt-count']);
      stream.on('error', () => {}); // closing with a code is reported as a stream error here too
      if (n === 1) {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      stream.respond({ ':status': 200, 'x-seen-attempt': String(headers['x-envoy-attempt-count'] ?? '-') });
      stream.end('ok');
    });
    await new Promise<void>((r) => h2up.listen(0, '127.0.0.1', r));
    // HTTP/1.1 upstream: answers the first request of each request id with 503.
    h1up = http.createServer((req, res) => {
      const n = note(String(req.headers['x-rid']), req.headers['x-envoy-attempt-count']);
      req.resume();
      res.writeHead(n === 1 ? 503 : 200, { 'x-seen-attempt': String(req.headers['x-envoy-attempt-count'] ?? '-') });
      res.end();
    });
    await new Promise<void>((r) => h1up.listen(0, '127.0.0.1', r));
    const h2port = (h2up.address() as net.AddressInfo).port;
    const h1port = (h1up.address() as net.AddressInfo).port;
    // A port nothing listens on: every try fails to connect.
    const gone = http.createServer();
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
    const deadPort = (gone.address() as net.AddressInfo).port;
    await new Promise<void>((r) => gone.close(() => r()));
    const rc = `name: local
virtual_hosts:
- name: answered
  domains: ["answered"]
  include_attempt_count_in_response: true
  routes:
  - match: { prefix: "/refused" }
    route: { cluster: h2, retry_policy: { retry_on: "refused-stream", num_retries: 2 } }
  - match: { prefix: "/h1" }
    route: { cluster: h1, retry_policy: { retry_on: "retriable-status-codes", num_retries: 2, retriable_status_codes: [503] } }
  - match: { prefix: "/dead" }
    route: { cluster: dead, retry_policy: { retry_on: "connect-failure", num_retries: 2 } }
- name: counted
  domains: ["counted"]
  include_request_attempt_count: true
  routes:
  - match: { prefix: "/refused" }
    route: { cluster: h2, retry_policy: { retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", num_retries: 2, retriable_status_codes: [503], ${PREDICATE} } }
  - match: { prefix: "/status-only" }
    route: { cluster: h2, retry_policy: { retry_on: "retriable-status-codes", num_retries: 2, retriable_status_codes: [503] } }
  - match: { prefix: "/h1" }
    route: { cluster: h1, retry_policy: { retry_on: "retriable-status-codes", num_retries: 2, retriable_status_codes: [503] } }
- name: plain
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: h1, retry_policy: { retry_on: "retriable-status-codes", num_retries: 2, retriable_status_codes: [503] } }`;
    p = await startStrait(`${ADMIN}static_resources:
  listeners:
${hcmListener('web', rc)}  clusters:
${staticCluster('h2', [h2port], '    http2_protocol_options: {}\n')}${staticCluster('h1', [h1port])}${staticCluster('dead', [deadPort])}`);
    port = await p.port('web');
  });

  afterAll(async () => {
    await p?.stop();
    await new Promise<void>((r) => h1up.close(() => r()));
    await new Promise<void>((r) => h2up.close(() => r()));
  });

  async function get(host: string, path: string, rid: string): Promise<{ status: number; attempt: string }> {
    const r = await request(`http://127.0.0.1:${port}${path}`, { headers: { host, 'x-rid': rid, 'x-envoy-attempt-count': '9' } });
    await r.body.text();
    return { status: r.statusCode, attempt: String(r.headers['x-seen-attempt'] ?? '') };
  }

  it('retries a stream the HTTP/2 upstream refused when retry_on has refused-stream, and not otherwise', async () => {
    expect(await get('counted', '/refused', 'a1')).toEqual({ status: 200, attempt: '2' });
    expect(seen.get('a1')).toEqual(['1', '2']);
    expect((await get('counted', '/status-only', 'a2')).status).toBe(503);
    expect(seen.get('a2')).toEqual(['1']);
  });

  it('include_request_attempt_count numbers each try, replacing what the client sent; other virtual hosts pass it through', async () => {
    expect(await get('counted', '/h1', 'b1')).toEqual({ status: 200, attempt: '2' });
    expect(seen.get('b1')).toEqual(['1', '2']);
    expect(await get('other', '/x', 'b2')).toEqual({ status: 200, attempt: '9' });
    expect(seen.get('b2')).toEqual(['9', '9']);
  });

  it('an HTTP/2 client gets the same: refused stream retried, tries numbered', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    const get2 = (p: string, rid: string) =>
      new Promise<{ status: number; attempt: string }>((resolve, reject) => {
        const s = session.request({ ':method': 'GET', ':path': p, ':authority': 'counted', 'x-rid': rid, 'x-envoy-attempt-count': '9' });
        let out = { status: 0, attempt: '' };
        s.on('response', (h) => (out = { status: Number(h[':status']), attempt: String(h['x-seen-attempt'] ?? '') }));
        s.on('data', () => {});
        s.on('end', () => resolve(out));
        s.on('error', reject);
        s.end();
      });
    try {
      expect(await get2('/refused', 'c1')).toEqual({ status: 200, attempt: '2' });
      expect(seen.get('c1')).toEqual(['1', '2']);
      expect(await get2('/h1', 'c2')).toEqual({ status: 200, attempt: '2' });
      expect(seen.get('c2')).toEqual(['1', '2']);
      expect((await get2('/status-only', 'c3')).status).toBe(503);
    } finally {
      session.close();
    }
  });

  it('include_attempt_count_in_response tells the client how many tries were made, on every path', async () => {
    const h1 = async (path: string, rid: string, host = 'answered') => {
      const r = await request(`http://127.0.0.1:${port}${path}`, { headers: { host, 'x-rid': rid } });
      await r.body.text();
      return { status: r.statusCode, count: r.headers['x-envoy-attempt-count'] };
    };
    // HTTP/1.1 upstream retried once on 503, HTTP/2 upstream retried once on a refused stream.
    expect(await h1('/h1', 'd1')).toEqual({ status: 200, count: '2' });
    expect(await h1('/refused', 'd2')).toEqual({ status: 200, count: '2' });
    // The router's own reply once every try failed to connect (1 + num_retries).
    expect(await h1('/dead', 'd3')).toEqual({ status: 503, count: '3' });
    // A virtual host without the option adds nothing.
    expect(await h1('/x', 'd4', 'other')).toEqual({ status: 200, count: undefined });

    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    const h2 = (p: string, rid: string) =>
      new Promise<{ status: number; count: unknown }>((resolve, reject) => {
        const st = session.request({ ':method': 'GET', ':path': p, ':authority': 'answered', 'x-rid': rid });
        let out = { status: 0, count: undefined as unknown };
        st.on('response', (h) => (out = { status: Number(h[':status']), count: h['x-envoy-attempt-count'] }));
        st.on('data', () => {});
        st.on('end', () => resolve(out));
        st.on('error', reject);
        st.end();
      });
    try {
      expect(await h2('/refused', 'd5')).toEqual({ status: 200, count: '2' });
      expect(await h2('/h1', 'd6')).toEqual({ status: 200, count: '2' });
      expect(await h2('/dead', 'd7')).toEqual({ status: 503, count: '3' });
    } finally {
      session.close();
    }
  });

  it('the route configurations of the Istio corpus config dumps compile without errors', () => {
    const corpus = path.resolve(REPO, '../shared/corpus/istio');
    let checked = 0;
    for (const f of ['istio-gateway-http-route-prefix-configdump.json', 'k8s-gateway-http-route-path-prefix-configdump.json']) {
      const dump = JSON.parse(fs.readFileSync(path.join(corpus, f), 'utf8')) as Record<string, any>;
      const rcs: Array<Record<string, any>> = [];
      const clusters = new Set<string>();
      const walk = (o: unknown): void => {
        if (!o || typeof o !== 'object') return;
        const r = o as Record<string, any>;
        if (r.route_config?.virtual_hosts) rcs.push(r.route_config);
        if (typeof r.cluster === 'string') clusters.add(r.cluster);
        for (const v of Object.values(r)) walk(v);
      };
      walk(dump);
      for (const rc of rcs) {
        const errors: FieldError[] = [];
        HttpRouteTable.compile(rc, f, clusters, errors);
        expect(errors, f).toEqual([]);
        if (JSON.stringify(rc).includes('previous_hosts')) checked++;
      }
    }
    expect(checked).toBe(2);
  });
});

describe('retry_host_predicate config', () => {
  const dir = tmpDir();
  const routeWith = (retry: string) => `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: a, retry_policy: { retry_on: 5xx, ${retry} } }`;

  async function validate(name: string, retry: string) {
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(file, `static_resources:\n  listeners:\n${hcmListener('l', routeWith(retry))}  clusters:\n${staticCluster('a', [9])}`);
    return runCli(['--config', file, '--mode', 'validate']);
  }

  it('accepts previous_hosts, omit_canary_hosts and omit_host_metadata', async () => {
    const r = await validate(
      'ok',
      `retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts }, { name: envoy.retry_host_predicates.omit_canary_hosts }, { name: envoy.retry_host_predicates.omit_host_metadata, typed_config: { "@type": type.googleapis.com/envoy.extensions.retry.host.omit_host_metadata.v3.OmitHostMetadataConfig, metadata_match: { filter_metadata: { envoy.lb: { stage: drain } } } } }], host_selection_retry_max_attempts: 3`,
    );
    expect(r.code, r.stderr).toBe(0);
  });

  it('refuses an unknown predicate, a bad host_selection_retry_max_attempts and retry_priority with their field paths', async () => {
    const r = await validate(
      'bad',
      `retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts }, { name: example.retry_host_predicates.sticky }], host_selection_retry_max_attempts: 1000, retry_priority: { name: envoy.retry_priorities.previous_priorities, typed_config: { "@type": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig, update_frequency: 2 } }`,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('routes[0].route.retry_policy.retry_host_predicate[1].name');
    expect(r.stderr).toContain('example.retry_host_predicates.sticky');
    expect(r.stderr).toContain('routes[0].route.retry_policy.host_selection_retry_max_attempts');
    expect(r.stderr).toContain('routes[0].route.retry_policy.retry_priority');
  });
});
