import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { HttpRouteTable, regexLiteralPrefix, type HttpRequestView } from '../../../src/router/http_route_table.js';
import { rng } from '../../helpers/rng.js';

// The indexed lookup (radix tree over literal path matchers, wildcard domains by length) must
// return exactly the route the configured-order scan returns. The scan is kept on the table as
// routeByScan, the reference these tests compare against.

const KNOWN = new Set(['c']);


function compile(rc: object): HttpRouteTable {
  const errors: FieldError[] = [];
  const t = HttpRouteTable.compile(rc, 'rc', KNOWN, errors);
  if (errors.length) throw new Error(JSON.stringify(errors.slice(0, 3)));
  return t;
}

function req(host: string, path: string, headers: Record<string, string> = {}): HttpRequestView {
  return { host, path, method: 'GET', header: (n) => headers[n] };
}

// Few, overlapping pieces so literals share prefixes, end inside each other and split tree edges.
const SEGS = ['a', 'ab', 'api', 'API', 'Api', 'v1', 'v10', 'v2', 'x', 'users', ''];
// Literal prefixes (indexed), ones a quantifier or alternation must cut, and none at all.
const REGEXES = ['/a.*', '/api/v[0-9]+(/.*)?', '/[a-z]+', '.*', '/API/.*', '/ab?/x', '/api/v1?', '/ap*i/.*', '/a|/x.*', '/api|/v2', '/v1\\.?0', '/api\\/v[12]', '/x{0,2}', '/users/[0-9]+', '/ab(/x)?', '(/api)?/v1', '/api/v1/users'];

function randomPath(r: () => number): string {
  const n = Math.floor(r() * 4);
  let p = '';
  for (let i = 0; i < n; i++) p += `/${SEGS[Math.floor(r() * SEGS.length)]}`;
  // Sometimes cut mid-segment, so prefixes like "/ap" and "/api/v" appear.
  if (p.length > 1 && r() < 0.3) p = p.slice(0, 1 + Math.floor(r() * (p.length - 1)));
  if (r() < 0.05) return '';
  return p || '/';
}

function randomRoute(r: () => number, i: number): object {
  const match: Record<string, unknown> = {};
  const k = r();
  if (k < 0.4) match.prefix = r() < 0.1 ? (r() < 0.5 ? '' : '/') : randomPath(r);
  else if (k < 0.65) match.path = randomPath(r);
  else if (k < 0.8) match.path_separated_prefix = randomPath(r).replace(/\/$/, '') || '/a';
  else match.safe_regex = { regex: REGEXES[Math.floor(r() * REGEXES.length)] };
  if (r() < 0.2) match.case_sensitive = false;
  if (r() < 0.2) match.headers = [r() < 0.5 ? { name: 'x-h', string_match: { exact: '1' } } : { name: 'x-h', present_match: true, invert_match: r() < 0.5 }];
  if (r() < 0.1) match.query_parameters = [{ name: 'q', present_match: true }];
  if (r() < 0.05) match.grpc = {};
  return { name: `r${i}`, match, route: { cluster: 'c' } };
}

function randomTable(r: () => number, nRoutes: number): { rc: object; hosts: string[] } {
  const hosts: string[] = ['unknown.org', 'x', ''];
  const vhosts: object[] = [];
  const used = new Set<string>();
  const nv = 1 + Math.floor(r() * 4);
  // Up to 20 wildcards of each kind, so both the scan and the by-length maps are exercised.
  const nWild = Math.floor(r() * 21);
  for (let v = 0; v < nv; v++) {
    const domains: string[] = [];
    const add = (d: string) => {
      if (used.has(d)) return;
      used.add(d);
      domains.push(d);
    };
    for (let w = 0; w < nWild / nv + 1; w++) {
      const base = `${['s', 'api', 'www', 'a-b'][Math.floor(r() * 4)]}${Math.floor(r() * 6)}.example.com`;
      const kind = r();
      if (kind < 0.35) {
        add(base);
        hosts.push(base, base.toUpperCase());
      } else if (kind < 0.55) {
        add(`*.${base}`);
        hosts.push(`q.${base}`, `.${base}`);
      } else if (kind < 0.7) {
        // Suffix wildcard without a dot: matches "x-bar..." and "bar..." ends alike.
        add(`*${base}`);
        hosts.push(`z${base}`, `zz.${base}`);
      } else {
        const pre = base.split('.')[0]!;
        add(`${pre}.*`);
        hosts.push(`${pre}.org`, `${pre}.`, `${pre}.example.com`);
      }
    }
    if (v === nv - 1 && r() < 0.5) add('*');
    if (domains.length === 0) add(`vh${v}.example.com`);
    const routes: object[] = [];
    for (let i = 0; i < nRoutes; i++) routes.push(randomRoute(r, i));
    vhosts.push({ name: `vh${v}`, domains, routes });
  }
  return { rc: { virtual_hosts: vhosts }, hosts };
}

function randomRequest(r: () => number, hosts: string[]): HttpRequestView {
  const host = hosts[Math.floor(r() * hosts.length)]!;
  let path = randomPath(r);
  if (r() < 0.2) path = path.toUpperCase();
  if (r() < 0.2) path += r() < 0.5 ? '?q=1' : '?x=/api/v1';
  if (r() < 0.05) path = `?q=${path}`;
  const headers: Record<string, string> = {};
  if (r() < 0.4) headers['x-h'] = r() < 0.5 ? '1' : '2';
  if (r() < 0.1) headers['content-type'] = 'application/grpc';
  return req(host, path, headers);
}

describe('HTTP route index', () => {
  it('keeps the last path\'s answer only in virtual hosts whose routes look at nothing but the path, and it stays the scan\'s', () => {
    let kept = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed * 7919);
      const { rc, hosts } = randomTable(r, 1 + Math.floor(r() * 30));
      const vhosts = (rc as { virtual_hosts: Array<{ routes: Array<{ match: Record<string, unknown> }> }> }).virtual_hosts;
      // Half the tables look at the path alone; in the rest some routes match on more.
      if (seed % 2 === 0) for (const v of vhosts) for (const rt of v.routes) for (const k of ['headers', 'query_parameters', 'grpc']) delete rt.match[k];
      const t = compile(rc);
      const seen: HttpRequestView[] = [];
      for (let q = 0; q < 300; q++) {
        // Requests repeat (same host and path, other headers): what a kept answer would serve.
        const rq = seen.length > 0 && r() < 0.5 ? { ...seen[Math.floor(r() * seen.length)]!, header: randomRequest(r, hosts).header } : randomRequest(r, hosts);
        seen.push(rq);
        const want = t.routeByScan(rq);
        const got = t.route(rq);
        if (got !== want) throw new Error(`seed ${seed}: host ${JSON.stringify(rq.host)} path ${JSON.stringify(rq.path)}: got ${got?.name ?? null}, scan ${want?.name ?? null}\n${JSON.stringify(rc)}`);
        const last = t.lastTargetOf(rq.host);
        if (last !== undefined) {
          expect(last).toBe(rq.path);
          kept++;
        }
      }
    }
    expect(kept).toBeGreaterThan(10_000);
    // A header matcher anywhere in the virtual host: no answer is kept there.
    const t = compile({ virtual_hosts: [{ name: 'h', domains: ['*'], routes: [{ match: { prefix: '/', headers: [{ name: 'x-v', string_match: { exact: '2' } }] }, route: { cluster: 'c' } }, { match: { prefix: '/' }, route: { cluster: 'c' }, name: 'rest' }] }] });
    expect(t.route(req('a', '/x', { 'x-v': '2' }))?.name).toBe('');
    expect(t.route(req('a', '/x'))?.name).toBe('rest');
    expect(t.lastTargetOf('a')).toBeUndefined();
  });


  it('returns the same route as the in-order scan for random tables and requests', () => {
    let matched = 0;
    let total = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const { rc, hosts } = randomTable(r, 1 + Math.floor(r() * 60));
      const t = compile(rc);
      for (let q = 0; q < 200; q++) {
        const rq = randomRequest(r, hosts);
        const want = t.routeByScan(rq);
        const got = t.route(rq);
        if (got !== want) {
          throw new Error(`seed ${seed}: host ${JSON.stringify(rq.host)} path ${JSON.stringify(rq.path)}: index gave ${got?.name ?? null}, scan ${want?.name ?? null}\n${JSON.stringify(rc)}`);
        }
        total++;
        if (want) matched++;
      }
    }
    // The generator must produce real matches, not only misses that agree trivially.
    expect(matched).toBeGreaterThan(total / 4);
    expect(matched).toBeLessThan(total);
  });

  it('indexes a regex by the literal text every match starts with, and only that', () => {
    expect(regexLiteralPrefix('/api/v[0-9]+/.*')).toBe('/api/v');
    expect(regexLiteralPrefix('/api/v1?/x')).toBe('/api/v');
    expect(regexLiteralPrefix('/a\\.b/.*')).toBe('/a.b/');
    expect(regexLiteralPrefix('/a\\.?b')).toBe('/a');
    expect(regexLiteralPrefix('/users/\\d+')).toBe('/users/');
    expect(regexLiteralPrefix('/api|/v2')).toBe(null);
    expect(regexLiteralPrefix('a*')).toBe(null);
    expect(regexLiteralPrefix('^/api')).toBe(null);
    expect(regexLiteralPrefix('(/api)?/v1')).toBe(null);
    expect(regexLiteralPrefix('.*')).toBe(null);
  });

  it('keeps first-match order across indexed and unindexed routes', () => {
    const t = compile({
      virtual_hosts: [
        {
          name: 'v',
          domains: ['*'],
          routes: [
            { name: 'deep', match: { prefix: '/api/v1/users' }, route: { cluster: 'c' } },
            { name: 'regex', match: { safe_regex: { regex: '/api/.*' } }, route: { cluster: 'c' } },
            { name: 'shallow', match: { prefix: '/api/' }, route: { cluster: 'c' } },
            { name: 'ci', match: { prefix: '/API/V2', case_sensitive: false }, route: { cluster: 'c' } },
            { name: 'v2', match: { prefix: '/api/v2' }, route: { cluster: 'c' } },
            { name: 'exact', match: { path: '/api' }, route: { cluster: 'c' } },
            { name: 'all', match: { prefix: '/' }, route: { cluster: 'c' } },
          ],
        },
      ],
    });
    const name = (p: string) => t.route(req('h', p))?.name ?? null;
    expect(name('/api/v1/users/7')).toBe('deep');
    // The regex route comes before the shorter indexed prefix and the later deeper one.
    expect(name('/api/v1/other')).toBe('regex');
    expect(name('/api/v2/x')).toBe('regex');
    expect(name('/api')).toBe('exact');
    expect(name('/apix')).toBe('all');
    expect(name('/nothing')).toBe('all');
    expect(name('')).toBe(null);
    // A literal matches the path, never the query.
    expect(name('/x?/api/v1/users')).toBe('all');
  });

  it('evaluates only the routes that can match in a 5,000-route virtual host', () => {
    const routes: object[] = [];
    for (let i = 0; i < 5000; i++) routes.push({ name: `p${i}`, match: i % 2 ? { path: `/svc${i}/get` } : { prefix: `/svc${i}/` }, route: { cluster: 'c' } });
    routes.push({ name: 'regex', match: { safe_regex: { regex: '/re/.*' } }, route: { cluster: 'c' } });
    routes.push({ name: 'unindexed', match: { safe_regex: { regex: '[/]re2/.*' } }, route: { cluster: 'c' } });
    routes.push({ name: 'last', match: { prefix: '/' }, route: { cluster: 'c' } });
    const t = compile({ virtual_hosts: [{ name: 'v', domains: ['*'], routes }] });
    const hit = req('h', '/svc4998/items?id=1');
    expect(t.route(hit)?.name).toBe('p4998');
    expect(t.route(req('h', '/svc4999/get'))?.name).toBe('p4999');
    expect(t.route(req('h', '/re/x'))?.name).toBe('regex');
    expect(t.route(req('h', '/re2/x'))?.name).toBe('unindexed');
    expect(t.route(req('h', '/missing'))?.name).toBe('last');
    // The prefix itself, the unindexed regex and the catch-all: not the 5,003 a scan would try.
    expect(t.candidateCount('h', '/svc4998/items?id=1')).toBe(3);
    expect(t.candidateCount('h', '/missing')).toBe(2);
  });

  it('selects virtual hosts through the by-length wildcard maps as the scan does', () => {
    const vhosts: object[] = [];
    for (let i = 0; i < 30; i++) {
      vhosts.push({ name: `s${i}`, domains: [`*.d${i}.example.com`, `p${i}.*`], routes: [{ name: `s${i}`, match: { prefix: '/' }, route: { cluster: 'c' } }] });
    }
    vhosts.push({ name: 'long', domains: ['*.x.d3.example.com', '*-bar.d4.example.com'], routes: [{ name: 'long', match: { prefix: '/' }, route: { cluster: 'c' } }] });
    vhosts.push({ name: 'any', domains: ['*'], routes: [{ name: 'any', match: { prefix: '/' }, route: { cluster: 'c' } }] });
    const t = compile({ virtual_hosts: vhosts });
    const name = (h: string) => t.route(req(h, '/'))?.name ?? null;
    expect(name('a.d7.example.com')).toBe('s7');
    expect(name('A.D17.Example.COM')).toBe('s17');
    // Longest suffix wins.
    expect(name('y.x.d3.example.com')).toBe('long');
    expect(name('foo-bar.d4.example.com')).toBe('long');
    expect(name('foo.d4.example.com')).toBe('s4');
    // Suffix before prefix wildcards; a wildcard never matches the empty string.
    expect(name('p5.d6.example.com')).toBe('s6');
    expect(name('p5.org')).toBe('s5');
    expect(name('.d7.example.com')).toBe('any');
    expect(name('p5.')).toBe('any');
    for (const h of ['a.d7.example.com', 'y.x.d3.example.com', 'p5.org', '.d7.example.com', 'zzz']) {
      expect(t.route(req(h, '/'))).toBe(t.routeByScan(req(h, '/')));
    }
  });
});
