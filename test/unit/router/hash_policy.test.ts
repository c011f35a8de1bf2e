import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { compileHashPolicies, compileRouteLb, fillRouteLb, HttpLbContext, type RouteLb } from '../../../src/router/hash_policy.js';
import { LbContext } from '../../../src/upstream/lb/context.js';
import { MetadataMatch } from '../../../src/upstream/subset/metadata_match.js';

type Obj = Record<string, any>;

function lb(hashPolicy: Obj[], action: Obj = { cluster: 'c' }): RouteLb {
  const errors: FieldError[] = [];
  const r = compileRouteLb({ ...action, hash_policy: hashPolicy }, 'route', errors);
  expect(errors).toEqual([]);
  return r.lb!;
}

function run(l: RouteLb, headers: Record<string, string>, target = '/', ip = '10.1.2.3', port = 5555): HttpLbContext {
  const ctx = new HttpLbContext();
  fillRouteLb(l, ctx, (n) => headers[n], target, ip, port);
  return ctx;
}

/** The hash a lone key gives, folded the way the context folds. */
function hashOf(...keys: string[]): [number, number] {
  const c = new LbContext();
  for (const k of keys) c.addString(k);
  return [c.hashHi, c.hashLo];
}

const h = (c: LbContext): [number, number] | null => (c.hasHash ? [c.hashHi, c.hashLo] : null);

describe('HTTP route hash_policy', () => {
  it('hashes a header; no header, no hash', () => {
    const l = lb([{ header: { header_name: 'X-User' } }]);
    expect(h(run(l, { 'x-user': 'ann' }))).toEqual(hashOf('ann'));
    expect(h(run(l, {}))).toBeNull();
  });

  it('applies a header regex_rewrite before hashing', () => {
    const l = lb([{ header: { header_name: 'x-path', regex_rewrite: { pattern: { regex: '^/users/(\\d+)/.*$' }, substitution: '\\1' } } }]);
    expect(h(run(l, { 'x-path': '/users/42/orders' }))).toEqual(hashOf('42'));
  });

  it('folds several policies in order and stops at a terminal one that produced a hash', () => {
    const both = lb([{ header: { header_name: 'a' } }, { header: { header_name: 'b' } }]);
    expect(h(run(both, { a: '1', b: '2' }))).toEqual(hashOf('1', '2'));
    expect(h(run(both, { a: '1', b: '2' }))).not.toEqual(hashOf('1'));
    const term = lb([{ header: { header_name: 'a' }, terminal: true }, { header: { header_name: 'b' } }]);
    expect(h(run(term, { a: '1', b: '2' }))).toEqual(hashOf('1'));
    // A terminal policy that found nothing does not stop the walk.
    expect(h(run(term, { b: '2' }))).toEqual(hashOf('2'));
  });

  it('reads a cookie among others, quoted or not', () => {
    const l = lb([{ cookie: { name: 'sticky' } }]);
    expect(h(run(l, { cookie: 'a=1; sticky="abc"; b=2' }))).toEqual(hashOf('abc'));
    expect(h(run(l, { cookie: 'sticky=abc' }))).toEqual(hashOf('abc'));
    expect(h(run(l, { cookie: 'flag; sticky=abc' }))).toEqual(hashOf('abc'));
    expect(h(run(l, { cookie: 'notsticky=abc' }))).toBeNull();
    expect(run(l, {}).setCookie).toBeNull();
  });

  it('generates a cookie when ttl is set and the client sent none, and hashes the new value', () => {
    const l = lb([{ cookie: { name: 'sticky', ttl: '3600s', path: '/api', attributes: [{ name: 'SameSite', value: 'Lax' }] } }]);
    const c = run(l, {});
    expect(c.setCookie).toMatch(/^sticky="([0-9a-f]{16})"; Max-Age=3600; Path=\/api; SameSite=Lax; HttpOnly$/);
    const value = /"(.*)"/.exec(c.setCookie!)![1]!;
    expect(h(c)).toEqual(hashOf(value));
    // The same client address gets the same value; a session cookie (ttl 0) has no Max-Age.
    expect(run(l, {}).setCookie).toBe(c.setCookie);
    expect(run(lb([{ cookie: { name: 's', ttl: '0s' } }]), {}).setCookie).toMatch(/^s="[0-9a-f]{16}"; HttpOnly$/);
  });

  it('hashes the first value of a query parameter, matching whole names only', () => {
    const l = lb([{ query_parameter: { name: 'user' } }]);
    expect(h(run(l, {}, '/p?a=1&user=bob&user=al'))).toEqual(hashOf('bob'));
    expect(h(run(l, {}, '/p?username=x'))).toBeNull();
    expect(h(run(l, {}, '/p'))).toBeNull();
  });

  it('hashes the source IP, and nothing for a unix-socket client', () => {
    const l = lb([{ connection_properties: { source_ip: true } }]);
    expect(h(run(l, {}, '/', '10.9.9.9'))).toEqual(hashOf('10.9.9.9'));
    expect(h(run(l, {}, '/', ''))).toBeNull();
  });

  it('reports bad policies with their field paths', () => {
    const errors: FieldError[] = [];
    compileHashPolicies(
      [
        { terminal: true },
        { header: { header_name: 'a' }, cookie: { name: 'b' } },
        { cookie: { name: 'bad name' } },
        { header: { header_name: 'x', regex_rewrite: { pattern: { regex: '(' }, substitution: '' } } },
        { filter_state: { key: 'k' } },
        { connection_properties: { source_ip: false } },
        { query_parameter: {} },
      ],
      'r.hash_policy',
      errors,
    );
    expect(errors.map((e) => e.path)).toEqual([
      'r.hash_policy[0]',
      'r.hash_policy[1]',
      'r.hash_policy[2].cookie.name',
      'r.hash_policy[3].header.regex_rewrite.pattern.regex',
      'r.hash_policy[4].filter_state',
      'r.hash_policy[5].connection_properties.source_ip',
      'r.hash_policy[6].query_parameter.name',
    ]);
  });
});

describe('HTTP route metadata_match', () => {
  const md = (o: Obj) => ({ filter_metadata: { 'envoy.lb': o } });

  it('puts the route criteria on the context', () => {
    const errors: FieldError[] = [];
    const r = compileRouteLb({ cluster: 'c', metadata_match: md({ version: 'v2' }) }, 'route', errors);
    const c = new HttpLbContext();
    expect(fillRouteLb(r.lb!, c, () => undefined, '/', '', 0)).toBeNull();
    expect(c.metadataMatch!.key).toBe(MetadataMatch.fromStruct({ version: 'v2' })!.key);
    expect(c.hasHash).toBe(false);
  });

  it('picks a weighted entry with its own criteria merged over the route', () => {
    const errors: FieldError[] = [];
    const r = compileRouteLb(
      {
        metadata_match: md({ stage: 'prod', version: 'v1' }),
        weighted_clusters: { clusters: [{ name: 'c', weight: 90, metadata_match: md({ version: 'v1' }) }, { name: 'c', weight: 10, metadata_match: md({ version: 'v2' }) }, { name: 'd', weight: 0 }] },
      },
      'route',
      errors,
    );
    expect(errors).toEqual([]);
    // The shared cluster picker gets the entries without metadata_match.
    expect((r.action.weighted_clusters.clusters as Obj[]).every((e) => e.metadata_match === undefined)).toBe(true);
    const c = new HttpLbContext();
    expect(fillRouteLb(r.lb!, c, () => undefined, '/', '', 0, 0.95)).toBe('c');
    expect(c.metadataMatch!.key).toBe(MetadataMatch.fromStruct({ stage: 'prod', version: 'v2' })!.key);
    fillRouteLb(r.lb!, c, () => undefined, '/', '', 0, 0.1);
    expect(c.metadataMatch!.key).toBe(MetadataMatch.fromStruct({ stage: 'prod', version: 'v1' })!.key);
  });

  it('adds nothing to an action that neither hashes nor selects a subset', () => {
    expect(compileRouteLb({ cluster: 'c' }, 'route', []).lb).toBeNull();
  });
});

describe('rpc_proxy route hash_policy (compile)', () => {
  it('compiles fields, headers and source_ip, and names bad entries by path', async () => {
    const { RpcRouteTable } = await import('../../../src/router/rpc_route_table.js');
    const errors: FieldError[] = [];
    const known = new Set(['c']);
    const table = RpcRouteTable.compile(
      [{ interface: 'x', routes: [{ match: {}, route: { cluster: 'c', hash_policy: [{ field: 'METHOD' }, { header: 'uid', terminal: true }, { source_ip: true }] } }] }],
      'rc',
      known,
      errors,
    );
    expect(errors).toEqual([]);
    const route = table.route({ iface: () => 'x', version: () => '', group: () => '', method: () => 'm', header: () => undefined });
    expect(route!.hash).toEqual([
      { kind: 'field', field: 'METHOD', terminal: false },
      { kind: 'header', name: 'uid', terminal: true },
      { kind: 'source_ip', terminal: false },
    ]);
    RpcRouteTable.compile([{ routes: [{ match: {}, route: { cluster: 'c', hash_policy: [{ field: 'ARGS' }, {}, { header: 'a', source_ip: true }] } }] }], 'rc', known, errors);
    expect(errors.map((e) => e.path)).toEqual(['rc[0].routes[0].route.hash_policy[0].field', 'rc[0].routes[0].route.hash_policy[1]', 'rc[0].routes[0].route.hash_policy[2]']);
  });
});
