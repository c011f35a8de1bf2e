import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { RpcRouteTable, type RpcRequestView } from '../../../src/router/rpc_route_table.js';

/** A request view that records which lazy fields the router asked for. */
function req(f: { iface: string; version?: string; group?: string; method?: string; headers?: Record<string, string> }) {
  const asked = new Set<string>();
  const view: RpcRequestView = {
    iface: () => f.iface,
    version: () => f.version ?? '',
    group: () => (asked.add('group'), f.group ?? ''),
    method: () => (asked.add('method'), f.method ?? ''),
    header: (n) => f.headers?.[n],
  };
  return { view, asked };
}

const CLUSTERS = new Set(['user_v1', 'user_v2', 'canary', 'fallback']);

function table(config: unknown[]) {
  const errors: FieldError[] = [];
  const t = RpcRouteTable.compile(config as Record<string, unknown>[], 'route_config', CLUSTERS, errors);
  return { t, errors };
}

describe('RPC route table', () => {
  const { t, errors } = table([
    {
      interface: 'com.example.UserService',
      version: '1.0',
      routes: [
        { match: { method: { name: { exact: 'hello' } } }, route: { cluster: 'user_v1', timeout: '0.5s' } },
        { match: { headers: [{ name: 'x-canary', string_match: { exact: 'yes' } }] }, route: { cluster: 'canary' } },
        { match: {}, route: { cluster: 'user_v2' } },
      ],
    },
    { interface: 'com.example.*', group: 'blue', routes: [{ match: {}, route: { cluster: 'canary' } }] },
    { interface: '*', routes: [{ match: {}, route: { cluster: 'fallback' } }] },
  ]);

  it('compiles without errors', () => expect(errors).toEqual([]));

  it('routes by interface, version and method, first match wins', () => {
    expect(t.route(req({ iface: 'com.example.UserService', version: '1.0', method: 'hello' }).view)?.clusters.pick()).toBe('user_v1');
    expect(t.route(req({ iface: 'com.example.UserService', version: '1.0', method: 'hello' }).view)?.timeoutMs).toBe(500);
    expect(t.route(req({ iface: 'com.example.UserService', version: '1.0', method: 'bye' }).view)?.clusters.pick()).toBe('user_v2');
    expect(t.route(req({ iface: 'com.example.UserService', version: '1.0', method: 'bye', headers: { 'x-canary': 'yes' } }).view)?.clusters.pick()).toBe('canary');
    expect(t.route(req({ iface: 'com.example.UserService', version: '2.0' }).view)?.clusters.pick()).toBe('fallback');
  });

  it('matches interface wildcards and groups', () => {
    expect(t.route(req({ iface: 'com.example.Orders', group: 'blue' }).view)?.clusters.pick()).toBe('canary');
    expect(t.route(req({ iface: 'com.example.Orders', group: 'green' }).view)?.clusters.pick()).toBe('fallback');
  });

  it('decodes lazy fields only when a route needs them', () => {
    // The first service matches on interface+version and its first route asks for the method;
    // no service before it asks for the group, so the group is never decoded.
    const r = req({ iface: 'com.example.UserService', version: '1.0', method: 'hello' });
    t.route(r.view);
    expect([...r.asked]).toEqual(['method']);
    const other = req({ iface: 'org.other.Api' });
    expect(t.route(other.view)?.clusters.pick()).toBe('fallback');
    expect(other.asked.size).toBe(0);
  });

  it('splits by weight', () => {
    const w = table([{ interface: '*', routes: [{ match: {}, route: { weighted_clusters: { clusters: [{ name: 'user_v1', weight: 90 }, { name: 'user_v2', weight: 10 }] } } }] }]).t;
    const route = w.route(req({ iface: 'a.B' }).view)!;
    expect(route.clusters.pick(0.5)).toBe('user_v1');
    expect(route.clusters.pick(0.95)).toBe('user_v2');
  });

  it('reports unknown clusters and bad matchers by path', () => {
    const { errors: e } = table([
      { interface: 'x', routes: [{ match: { method: { name: { safe_regex: { regex: '(' } } } }, route: { cluster: 'nope' } }] },
    ]);
    expect(e.map((x) => x.path)).toEqual(['route_config[0].routes[0].match.method.name.safe_regex.regex', 'route_config[0].routes[0].route.cluster']);
  });

  it('returns null when nothing matches', () => {
    const only = table([{ interface: 'a.B', routes: [{ match: {}, route: { cluster: 'user_v1' } }] }]).t;
    expect(only.route(req({ iface: 'c.D' }).view)).toBeNull();
  });
});
