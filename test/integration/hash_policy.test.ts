import http from 'node:http';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { httpUpstream, hcmListener, type TestUpstream } from '../helpers/http.js';
import { tagServer } from '../helpers/net.js';
import { ADMIN, runCli, startStrait, staticCluster, tcpListener, tmpDir, type StraitProcess } from '../helpers/strait.js';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** A STATIC cluster over the upstreams; `md` gives each endpoint's envoy.lb metadata (YAML flow map body). */
function cluster(name: string, ups: TestUpstream[], extra: string, md?: string[]): string {
  const eps = ups
    .map((u, i) => {
      const m = md ? `\n          metadata: { filter_metadata: { envoy.lb: { ${md[i]} } } }` : '';
      return `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${u.port} } } }${m}`;
    })
    .join('\n');
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

const RING = '    lb_policy: RING_HASH\n    ring_hash_lb_config: { minimum_ring_size: 1024 }\n';
const MAGLEV = '    lb_policy: MAGLEV\n';

async function get(port: number, p: string, headers: Record<string, string> = {}): Promise<{ status: number; tag: string; setCookie: string | undefined }> {
  const r = await request(`http://127.0.0.1:${port}${p}`, { headers });
  await r.body.text();
  const sc = r.headers['set-cookie'];
  return { status: r.statusCode, tag: String(r.headers['x-upstream'] ?? ''), setCookie: Array.isArray(sc) ? sc[0] : sc };
}

/** Where each key lands, asking `rounds` times; throws if one key moves. */
async function placement(keys: string[], rounds: number, send: (key: string) => Promise<string>): Promise<Map<string, string>> {
  const where = new Map<string, string>();
  for (let r = 0; r < rounds; r++) {
    for (const k of keys) {
      const tag = await send(k);
      expect(tag, `key ${k}`).not.toBe('');
      const prev = where.get(k);
      if (prev === undefined) where.set(k, tag);
      else expect(tag, `key ${k} moved`).toBe(prev);
    }
  }
  return where;
}

const KEYS = Array.from({ length: 40 }, (_, i) => `user-${i}`);

describe('route hash_policy with RING_HASH and MAGLEV (HTTP/1.1 and HTTP/2)', () => {
  const ups: TestUpstream[] = [];
  let p: StraitProcess;
  let port = 0;
  beforeAll(async () => {
    for (const t of ['a', 'b', 'c', 'd']) ups.push(await httpUpstream(t));
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/rh" }
    route: { cluster: rh, hash_policy: [{ header: { header_name: x-user } }] }
  - match: { prefix: "/mg" }
    route: { cluster: mg, hash_policy: [{ header: { header_name: x-user } }] }
  - match: { prefix: "/query" }
    route: { cluster: mg, hash_policy: [{ query_parameter: { name: user } }] }
  - match: { prefix: "/cookie" }
    route: { cluster: rh, hash_policy: [{ cookie: { name: sticky, ttl: 60s, path: / } }] }
  - match: { prefix: "/chain" }
    route:
      cluster: rh
      hash_policy:
      - { header: { header_name: x-missing }, terminal: true }
      - { header: { header_name: x-user }, terminal: true }
      - { connection_properties: { source_ip: true } }
  - match: { prefix: "/ip" }
    route: { cluster: mg, hash_policy: [{ connection_properties: { source_ip: true } }] }`;
    p = await startStrait(`${ADMIN}static_resources:
  listeners:
${hcmListener('web', routes, '          codec_type: AUTO\n')}
  clusters:
${cluster('rh', ups, RING)}
${cluster('mg', ups, MAGLEV)}`);
    port = await p.port('web');
  });
  afterAll(async () => {
    await p?.stop();
    for (const u of ups) await u.close();
  });

  for (const [name, prefix] of [
    ['RING_HASH', '/rh'],
    ['MAGLEV', '/mg'],
  ] as const) {
    it(`${name}: a header key always lands on the same upstream, and keys spread over every host`, async () => {
      const where = await placement(KEYS, 4, async (k) => (await get(port, prefix, { 'x-user': k })).tag);
      expect(new Set(where.values())).toEqual(new Set(['a', 'b', 'c', 'd']));
    });
  }

  it('a query parameter key sticks (MAGLEV) and spreads', async () => {
    const where = await placement(KEYS, 3, async (k) => (await get(port, `/query?x=1&user=${k}&y=2`)).tag);
    expect(new Set(where.values()).size).toBeGreaterThanOrEqual(3);
  });

  it('several policies fold in order; terminal stops at the first that yields a key', async () => {
    // x-missing yields nothing, x-user is terminal: the source IP (the same for every request
    // here) is never folded in, so keys still spread over the hosts.
    const where = await placement(KEYS, 3, async (k) => (await get(port, '/chain', { 'x-user': k })).tag);
    expect(new Set(where.values()).size).toBeGreaterThanOrEqual(3);
    // So each key lands exactly where x-user alone puts it on the same cluster (/rh); folding
    // the IP in as well would move most keys.
    for (const k of KEYS) expect((await get(port, '/rh', { 'x-user': k })).tag, `key ${k}`).toBe(where.get(k));
  });

  it('source_ip: every request from this client lands on one host', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add((await get(port, '/ip')).tag);
    expect(seen.size).toBe(1);
  });

  it('a cookie policy with ttl sets Set-Cookie on the first response, then the cookie sticks', async () => {
    const first = await get(port, '/cookie');
    expect(first.status).toBe(200);
    expect(first.setCookie).toMatch(/^sticky="[0-9a-f]{16}"; Max-Age=60; Path=\/; HttpOnly$/);
    const cookie = first.setCookie!.split(';')[0]!;
    const seen = new Set<string>([first.tag]);
    for (let i = 0; i < 20; i++) {
      const r = await get(port, '/cookie', { cookie: `other=1; ${cookie}` });
      expect(r.setCookie).toBeUndefined();
      seen.add(r.tag);
    }
    expect(seen).toEqual(new Set([first.tag]));
    // Different cookie values spread over the hosts.
    const where = await placement(KEYS, 2, async (k) => (await get(port, '/cookie', { cookie: `sticky=${k}` })).tag);
    expect(new Set(where.values()).size).toBeGreaterThanOrEqual(3);
  });

  it('HTTP/2 requests hash the same way: a key sticks, keys spread, and Set-Cookie comes back', async () => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    const h2get = (p0: string, headers: Record<string, string>) =>
      new Promise<{ tag: string; setCookie: string | undefined }>((resolve, reject) => {
        const r = s.request({ ':path': p0, ...headers });
        r.on('response', (h) => {
          r.resume();
          r.on('end', () => resolve({ tag: String(h['x-upstream'] ?? ''), setCookie: (h['set-cookie'] as string[] | undefined)?.[0] }));
        });
        r.on('error', reject);
        r.end();
      });
    try {
      const where = await placement(KEYS, 3, async (k) => (await h2get('/mg', { 'x-user': k })).tag);
      expect(new Set(where.values())).toEqual(new Set(['a', 'b', 'c', 'd']));
      // The same key over HTTP/1.1 lands where HTTP/2 put it: one hash for both codecs.
      for (const k of KEYS.slice(0, 10)) expect((await get(port, '/mg', { 'x-user': k })).tag).toBe(where.get(k));
      const c = await h2get('/cookie', {});
      expect(c.setCookie).toMatch(/^sticky="[0-9a-f]{16}"; Max-Age=60; Path=\/; HttpOnly$/);
      const cookie = c.setCookie!.split(';')[0]!;
      for (let i = 0; i < 10; i++) expect((await h2get('/cookie', { cookie })).tag).toBe(c.tag);
    } finally {
      s.close();
    }
  });
});

describe('hash_policy key stability when a host leaves', () => {
  // Envoy's ring gives each host ceil(minimum_ring_size / hosts) points, so with the default
  // size a survivor gains points when a host leaves and those capture some keys from the other
  // survivors (Envoy does the same). A size of 9 keeps 3 points per host for 4 or 3 hosts, which
  // makes survivors' keys exactly stable; Maglev keeps them with its default table.
  // `hash_key` metadata fixes each host's hash key, so placements do not depend on the ports.
  for (const [name, lb] of [
    ['RING_HASH', '    lb_policy: RING_HASH\n    ring_hash_lb_config: { minimum_ring_size: 9 }\n'],
    ['MAGLEV', MAGLEV],
  ] as const) {
    it(`${name}: keys on the surviving hosts stay where they were after a health check removes one host`, async () => {
      const ups: TestUpstream[] = [];
      for (const t of ['a', 'b', 'c', 'd']) ups.push(await httpUpstream(t));
      const hc = `    health_checks:
    - timeout: 0.5s
      interval: 0.1s
      no_traffic_interval: 0.1s
      unhealthy_threshold: 1
      healthy_threshold: 1
      tcp_health_check: {}
`;
      const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: c, hash_policy: [{ header: { header_name: x-user } }] }`;
      const p = await startStrait(`${ADMIN}static_resources:
  listeners:
${hcmListener('web', routes)}
  clusters:
${cluster('c', ups, lb + hc, ['hash_key: a', 'hash_key: b', 'hash_key: c', 'hash_key: d'])}`);
      try {
        const port = await p.port('web');
        await p.waitStat('cluster.c.health_check.healthy', (v) => v === 4);
        const keys = Array.from({ length: 60 }, (_, i) => `k${i}`);
        const before = await placement(keys, 2, async (k) => (await get(port, '/', { 'x-user': k })).tag);
        expect(new Set(before.values())).toEqual(new Set(['a', 'b', 'c', 'd']));
        const onB = [...before.values()].filter((t) => t === 'b').length;
        await ups[1]!.close(); // "b" goes away
        await p.waitStat('cluster.c.health_check.healthy', (v) => v === 3);
        const after = await placement(keys, 2, async (k) => (await get(port, '/', { 'x-user': k })).tag);
        for (const k of keys) {
          const was = before.get(k)!;
          if (was !== 'b') expect(after.get(k), `key ${k} was on ${was}`).toBe(was);
          else expect(['a', 'c', 'd']).toContain(after.get(k));
        }
        expect(onB).toBeGreaterThan(0);
      } finally {
        await p.stop();
        for (const u of ups) await u.close().catch(() => {});
      }
    });
  }
});

describe('HTTP route metadata_match (subset load balancing)', () => {
  const ups: TestUpstream[] = [];
  let p: StraitProcess;
  let port = 0;
  const mm = (v: string) => `{ filter_metadata: { envoy.lb: { version: ${v} } } }`;
  beforeAll(async () => {
    for (const t of ['v1a', 'v1b', 'v2']) ups.push(await httpUpstream(t));
    const md = ['version: v1', 'version: v1', 'version: v2'];
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/strict", headers: [{ name: x-version, string_match: { exact: v3 } }] }
    route: { cluster: strict, metadata_match: ${mm('v3')} }
  - match: { prefix: "/", headers: [{ name: x-version, string_match: { exact: v2 } }] }
    route: { cluster: dflt, metadata_match: ${mm('v2')} }
  - match: { prefix: "/", headers: [{ name: x-version, string_match: { exact: v3 } }] }
    route: { cluster: dflt, metadata_match: ${mm('v3')} }
  - match: { prefix: "/weighted" }
    route:
      weighted_clusters:
        clusters:
        - { name: strict, weight: 1, metadata_match: ${mm('v2')} }
  - match: { prefix: "/hashed" }
    route: { cluster: strict, metadata_match: ${mm('v1')}, hash_policy: [{ header: { header_name: x-user } }] }
  - match: { prefix: "/" }
    route: { cluster: dflt }`;
    p = await startStrait(`${ADMIN}static_resources:
  listeners:
${hcmListener('web', routes)}
  clusters:
${cluster('dflt', ups, '    lb_subset_config:\n      fallback_policy: DEFAULT_SUBSET\n      default_subset: { version: v1 }\n      subset_selectors: [{ keys: [version] }]\n', md)}
${cluster('strict', ups, '    lb_policy: RING_HASH\n    lb_subset_config:\n      subset_selectors: [{ keys: [version] }]\n', md)}`);
    port = await p.port('web');
  });
  afterAll(async () => {
    await p?.stop();
    for (const u of ups) await u.close();
  });

  async function tags(p0: string, headers: Record<string, string>, n: number): Promise<Set<string>> {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await get(port, p0, headers);
      seen.add(r.status === 200 ? r.tag : String(r.status));
    }
    return seen;
  }

  it('a header route with metadata_match version=v2 goes to the v2 subset only', async () => {
    expect(await tags('/', { 'x-version': 'v2' }, 20)).toEqual(new Set(['v2']));
    expect(await p.stat('cluster.dflt.lb_subsets_selected')).toBe(20);
  });

  it('an unknown version falls back to the default subset (DEFAULT_SUBSET), and so does a route without criteria', async () => {
    expect(await tags('/', { 'x-version': 'v3' }, 20)).toEqual(new Set(['v1a', 'v1b']));
    expect(await tags('/', {}, 20)).toEqual(new Set(['v1a', 'v1b']));
  });

  it('with NO_FALLBACK an unmatched request gets 503 (no healthy upstream)', async () => {
    expect(await tags('/strict', { 'x-version': 'v3' }, 3)).toEqual(new Set(['503']));
    expect(await p.stat('cluster.strict.upstream_cx_none_healthy')).toBe(3);
  });

  it('a weighted cluster entry carries its own metadata_match', async () => {
    expect(await tags('/weighted', {}, 15)).toEqual(new Set(['v2']));
  });

  it('hash_policy and metadata_match together: keys stick inside the subset', async () => {
    const where = await placement(KEYS, 3, async (k) => (await get(port, '/hashed', { 'x-user': k })).tag);
    expect(new Set(where.values())).toEqual(new Set(['v1a', 'v1b']));
  });
});

describe('hash_policy config errors name the field', () => {
  it('rejects a policy without a key source and a bad cookie name', async () => {
    const dir = tmpDir();
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: c, hash_policy: [{ terminal: true }, { cookie: { name: "bad name" } }] }`;
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, `static_resources:\n  listeners:\n${hcmListener('web', routes)}\n  clusters:\n${cluster('c', [{ port: 1 } as TestUpstream], RING)}`);
    const r = await runCli(['--config', file, '--mode', 'validate']);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('route.hash_policy[0]');
    expect(r.stderr + r.stdout).toContain('route.hash_policy[1].cookie.name');
  });
});

describe('tcp_proxy hash_policy source_ip', () => {
  /** A connection from `from` (any 127/8 address works on Linux loopback); resolves the upstream's tag. */
  function tagFrom(port: number, from: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
      const chunks: Buffer[] = [];
      s.on('data', (d) => chunks.push(d));
      s.on('error', reject);
      s.on('close', () => resolve(Buffer.concat(chunks).toString()));
    });
  }

  it('each client IP sticks to one host of a MAGLEV cluster, and IPs spread over the hosts', async () => {
    const tags = await Promise.all(['a', 'b', 'c', 'd'].map((t) => tagServer(t)));
    const p = await startStrait(`${ADMIN}static_resources:
  listeners:
${tcpListener('tcp', 'mg', '          hash_policy: [{ source_ip: {} }]\n')}
  clusters:
${staticCluster('mg', tags.map((t) => t.port), MAGLEV)}`);
    try {
      const port = await p.port('tcp');
      // 48 IPs: the ring follows the hosts' OS-chosen ports, and with 24 one host of the 4 got no
      // IP about once in 250 runs (4 x (3/4)^24); now about once in 100,000.
      const ips = Array.from({ length: 48 }, (_, i) => `127.0.0.${i + 2}`);
      const where = await placement(ips, 3, (ip) => tagFrom(port, ip));
      expect(new Set(where.values())).toEqual(new Set(['a', 'b', 'c', 'd']));
    } finally {
      await p.stop();
      for (const t of tags) await t.close();
    }
  });
});

describe('hash_policy with retries', () => {
  it('a retry steps away from the key\'s host, so nearly every key whose host fails is still served', async () => {
    const up = await httpUpstream('a');
    // A host that answers every request with 503 (a real listener: no free-port races).
    const bad = http.createServer((_req, res) => {
      res.writeHead(503, { 'x-upstream': 'bad' });
      res.end();
    });
    await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r));
    const dead = (bad.address() as net.AddressInfo).port;
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route:
      cluster: c
      hash_policy: [{ header: { header_name: x-user } }]
      retry_policy: { retry_on: 5xx, num_retries: 4, retry_back_off: { base_interval: 0.001s },
        # As Istio configures it: without a host predicate every retry asks for the key's host again.
        retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts }], host_selection_retry_max_attempts: 4 }`;
    const p = await startStrait(`${ADMIN}static_resources:
  listeners:
${hcmListener('web', routes)}
  clusters:
${cluster('c', [up, { port: dead } as TestUpstream], MAGLEV, ['hash_key: a', 'hash_key: dead'])}`);
    try {
      const port = await p.port('web');
      // A retry that lands on the tried host reselects at the next point of the table (Envoy's
      // scheme), which may belong to the bad host again: a key whose 5 points all do fails, the
      // same way each time. Without the predicate about half the keys (those on the bad host) would fail.
      const failed: string[][] = [[], []];
      for (let round = 0; round < 2; round++) {
        for (const k of KEYS) {
          const r = await get(port, '/', { 'x-user': k });
          if (r.status === 200) expect(r.tag).toBe('a');
          else failed[round]!.push(k);
        }
      }
      expect(failed[0]!.length).toBeLessThanOrEqual(4);
      expect(failed[1]).toEqual(failed[0]);
      // Keys did hash to the bad host first: their retries are what served them.
      expect(await p.stat('cluster.c.upstream_rq_retry')).toBeGreaterThan(10);
    } finally {
      await p.stop();
      await up.close();
      bad.closeAllConnections();
      await new Promise((r) => bad.close(r));
    }
  });
});
