import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { effectiveTimeoutMs, grpcTimeoutMs, HttpRouteTable, rewritePath, streamDurationMs, upstreamGrpcTimeout, type HttpRequestView } from '../../../src/router/http_route_table.js';

const KNOWN = new Set(['a', 'b', 'c', 'd', 'e']);

function table(rc: object): HttpRouteTable {
  const errors: FieldError[] = [];
  const t = HttpRouteTable.compile(rc, 'rc', KNOWN, errors);
  if (errors.length) throw new Error(JSON.stringify(errors));
  return t;
}

function req(host: string, path: string, headers: Record<string, string> = {}, method = 'GET'): HttpRequestView {
  return { host, path, method, header: (n) => headers[n] };
}

function clusterOf(t: HttpRouteTable, r: HttpRequestView): string | null {
  const m = t.route(r);
  if (!m) return null;
  if (m.action.kind !== 'forward') return m.action.kind;
  return m.action.clusters!.pick(0);
}

describe('HTTP route table', () => {
  const vh = (name: string, domains: string[], cluster: string) => ({ name, domains, routes: [{ match: { prefix: '/' }, route: { cluster } }] });

  it('selects virtual hosts: exact, then longest suffix wildcard, then prefix wildcard, then *', () => {
    const t = table({
      virtual_hosts: [vh('any', ['*'], 'e'), vh('pre', ['example.*'], 'd'), vh('suf', ['*.example.com'], 'b'), vh('suf2', ['*.api.example.com'], 'c'), vh('exact', ['www.example.com', 'host:8080'], 'a')],
    });
    expect(clusterOf(t, req('www.example.com', '/'))).toBe('a');
    expect(clusterOf(t, req('WWW.Example.COM', '/'))).toBe('a');
    expect(clusterOf(t, req('host:8080', '/'))).toBe('a');
    expect(clusterOf(t, req('x.example.com', '/'))).toBe('b');
    expect(clusterOf(t, req('v1.api.example.com', '/'))).toBe('c');
    expect(clusterOf(t, req('example.org', '/'))).toBe('d');
    // A wildcard never matches the empty string.
    expect(clusterOf(t, req('.example.com', '/'))).toBe('e');
    expect(clusterOf(t, req('other', '/'))).toBe('e');
  });

  it('a lone * virtual host answers every host without reading it; with any other domain, hosts are looked up', () => {
    const lone = table({ virtual_hosts: [vh('any', ['*'], 'e')] });
    for (const h of ['a.com', 'A.COM:80', '']) expect(clusterOf(lone, req(h, '/'))).toBe('e');
    const two = table({ virtual_hosts: [vh('any', ['*'], 'e'), vh('x', ['x.com'], 'a')] });
    expect([clusterOf(two, req('x.com', '/')), clusterOf(two, req('y.com', '/')), clusterOf(two, req('X.com', '/'))]).toEqual(['a', 'e', 'a']);
  });

  it('returns null with no virtual host and no * domain', () => {
    const t = table({ virtual_hosts: [vh('x', ['x.com'], 'a')] });
    expect(t.route(req('y.com', '/'))).toBeNull();
  });

  it('matches prefix, path, safe_regex, case-insensitively when asked, ignoring the query', () => {
    const t = table({
      virtual_hosts: [
        {
          name: 'v',
          domains: ['*'],
          routes: [
            { match: { path: '/exact' }, route: { cluster: 'a' } },
            { match: { safe_regex: { regex: '/items/[0-9]+' } }, route: { cluster: 'b' } },
            { match: { prefix: '/CI/', case_sensitive: false }, route: { cluster: 'c' } },
            { match: { path_separated_prefix: '/seg' }, route: { cluster: 'd' } },
            { match: { prefix: '/' }, route: { cluster: 'e' } },
          ],
        },
      ],
    });
    expect(clusterOf(t, req('h', '/exact?q=1'))).toBe('a');
    expect(clusterOf(t, req('h', '/exact/more'))).toBe('e');
    expect(clusterOf(t, req('h', '/items/42'))).toBe('b');
    expect(clusterOf(t, req('h', '/items/42x'))).toBe('e');
    expect(clusterOf(t, req('h', '/ci/x'))).toBe('c');
    expect(clusterOf(t, req('h', '/seg/x'))).toBe('d');
    expect(clusterOf(t, req('h', '/segx'))).toBe('e');
  });

  it('matches headers (exact, prefix, regex, present, invert) and query parameters', () => {
    const t = table({
      virtual_hosts: [
        {
          name: 'v',
          domains: ['*'],
          routes: [
            { match: { prefix: '/', headers: [{ name: 'x-env', string_match: { exact: 'canary' } }] }, route: { cluster: 'a' } },
            { match: { prefix: '/', headers: [{ name: 'x-ver', string_match: { prefix: 'v2' } }, { name: 'x-block', present_match: true, invert_match: true }] }, route: { cluster: 'b' } },
            { match: { prefix: '/', query_parameters: [{ name: 'debug', string_match: { exact: 'on' } }] }, route: { cluster: 'c' } },
            { match: { prefix: '/', query_parameters: [{ name: 'trace', present_match: true }] }, route: { cluster: 'd' } },
            { match: { prefix: '/', grpc: {} }, route: { cluster: 'e' } },
          ],
        },
      ],
    });
    expect(clusterOf(t, req('h', '/', { 'x-env': 'canary' }))).toBe('a');
    expect(clusterOf(t, req('h', '/', { 'x-env': 'prod', 'x-ver': 'v2.1' }))).toBe('b');
    expect(clusterOf(t, req('h', '/', { 'x-ver': 'v2.1', 'x-block': '1' }))).toBeNull();
    expect(clusterOf(t, req('h', '/p?debug=on'))).toBe('c');
    expect(clusterOf(t, req('h', '/p?debug=off'))).toBeNull();
    expect(clusterOf(t, req('h', '/p?a=1&trace'))).toBe('d');
    expect(clusterOf(t, req('h', '/svc/M', { 'content-type': 'application/grpc+proto' }))).toBe('e');
  });

  it('merges header mutations route, vhost, then route_config', () => {
    const t = table({
      request_headers_to_add: [{ header: { key: 'x-level', value: 'global' } }],
      response_headers_to_remove: ['x-secret'],
      virtual_hosts: [
        {
          name: 'v',
          domains: ['*'],
          request_headers_to_add: [{ header: { key: 'x-level', value: 'vhost' } }],
          routes: [{ match: { prefix: '/' }, route: { cluster: 'a' }, request_headers_to_add: [{ header: { key: 'X-Level', value: 'route' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }] }],
        },
      ],
    });
    const r = t.route(req('h', '/'))!;
    expect(r.requestHeaders.add.map((a) => `${a.name}=${a.value}:${a.action}`)).toEqual([
      'x-level=route:OVERWRITE_IF_EXISTS_OR_ADD',
      'x-level=vhost:APPEND_IF_EXISTS_OR_ADD',
      'x-level=global:APPEND_IF_EXISTS_OR_ADD',
    ]);
    expect(r.responseHeaders.remove).toEqual(['x-secret']);
  });

  it('rewrites prefixes and regexes, keeping the query', () => {
    expect(rewritePath('/api/v1/users?x=1', '/api/v1', '/v2', null)).toBe('/v2/users?x=1');
    expect(rewritePath('/a/b/c', null, null, { re: /\/b\//g, substitution: '/B/' })).toBe('/a/B/c');
  });

  it('reports every unsupported or invalid field with its path', () => {
    const errors: FieldError[] = [];
    HttpRouteTable.compile(
      {
        vhds: {},
        virtual_hosts: [
          { name: 'v', domains: ['*', 'a*b'], routes: [{ match: { prefix: '/', runtime_fraction: {} }, route: { cluster: 'nope', hedge_policy: { initial_requests: 2 }, retry_policy: { retry_on: 'bogus' } } }] },
          { name: 'w', domains: ['*'], routes: [{ match: { safe_regex: { regex: '(' } }, direct_response: { status: 200 } }] },
        ],
      },
      'rc',
      KNOWN,
      errors,
    );
    const paths = errors.map((e) => e.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'rc.vhds',
        'rc.virtual_hosts[0].routes[0].match.runtime_fraction',
        'rc.virtual_hosts[0].routes[0].route.hedge_policy.initial_requests',
        'rc.virtual_hosts[0].routes[0].route.cluster',
        'rc.virtual_hosts[0].routes[0].route.retry_policy.retry_on',
        'rc.virtual_hosts[0].domains[1]',
        'rc.virtual_hosts[1].domains[0]',
        'rc.virtual_hosts[1].routes[0].match.safe_regex.regex',
      ]),
    );
  });
});

describe('grpc-timeout on a route', () => {
  function action(route: object) {
    const t = table({ virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'a', timeout: '5s', ...route } }] }] });
    const a = t.route(req('h', '/'))!.action;
    if (a.kind !== 'forward') throw new Error('not forward');
    return a;
  }

  it('parses the header units and rejects malformed values', () => {
    expect([grpcTimeoutMs('1H'), grpcTimeoutMs('2M'), grpcTimeoutMs('3S'), grpcTimeoutMs('250m'), grpcTimeoutMs('5000u'), grpcTimeoutMs('7000000n')]).toEqual([3_600_000, 120_000, 3000, 250, 5, 7]);
    expect([grpcTimeoutMs(undefined), grpcTimeoutMs('10'), grpcTimeoutMs('-1S'), grpcTimeoutMs('123456789S'), grpcTimeoutMs('1x')]).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('is ignored without grpc_timeout_header_max or max_grpc_timeout, as in Envoy', () => {
    expect(effectiveTimeoutMs(action({}), true, '100m')).toBe(5000);
  });

  it('on a route with max_stream_duration the router has no timeout: neither `timeout` nor a grpc-timeout', () => {
    // Envoy's router ignores `timeout` on such a route (its "new timeouts"); the stream's duration limits it.
    const unlimited = action({ max_stream_duration: { grpc_timeout_header_max: '0s' } });
    expect([effectiveTimeoutMs(unlimited, true, '100m'), effectiveTimeoutMs(unlimited, true, undefined), effectiveTimeoutMs(unlimited, false, '100m')]).toEqual([0, 0, 0]);
    // The deprecated max_grpc_timeout stays the router's: it also limits a call without the header.
    // Offset first, then the cap, in that order as Envoy's router (the newer fields cap first).
    expect(effectiveTimeoutMs(action({ max_grpc_timeout: '2s', grpc_timeout_offset: '0.5s' }), true, '1M')).toBe(2000);
    expect(effectiveTimeoutMs(action({ max_grpc_timeout: '2s', grpc_timeout_offset: '0.5s' }), true, '1S')).toBe(500);
    expect(effectiveTimeoutMs(action({ max_grpc_timeout: '2s' }), true, '100m')).toBe(100);
    expect(effectiveTimeoutMs(action({ max_grpc_timeout: '2s' }), true, undefined)).toBe(2000);
    expect(effectiveTimeoutMs(action({ max_grpc_timeout: '2s' }), false, undefined)).toBe(5000);
    // ... and is not read on a route with max_stream_duration.
    const both = action({ max_grpc_timeout: '2s', max_stream_duration: {} });
    expect([both.grpcTimeout, effectiveTimeoutMs(both, true, '1M')]).toEqual([null, 0]);
  });

  it('max_stream_duration: a capped grpc-timeout, else the route\'s duration, else the connection manager\'s', () => {
    const capped = action({ max_stream_duration: { grpc_timeout_header_max: '1s', grpc_timeout_header_offset: '0.05s' } });
    expect([streamDurationMs(capped, 500, '10S'), streamDurationMs(capped, 500, '200m'), streamDurationMs(capped, 500, undefined)]).toEqual([950, 150, 500]);
    // An offset larger than the deadline leaves nothing: the stream ends at once.
    expect(streamDurationMs(capped, 500, '20m')).toBe(1);
    const unlimited = action({ max_stream_duration: { grpc_timeout_header_max: '0s', max_stream_duration: '3s' } });
    expect([unlimited.maxStreamMs, streamDurationMs(unlimited, 500, '1M'), streamDurationMs(unlimited, 500, 'bad'), streamDurationMs(unlimited, 500, undefined)]).toEqual([3000, 60_000, 3000, 3000]);
    const off = action({ max_stream_duration: { max_stream_duration: '0s' } });
    expect([off.maxStreamMs, off.limitsStream, streamDurationMs(off, 500, '1S')]).toEqual([0, true, 0]);
    const unset = action({});
    expect([unset.maxStreamMs, unset.limitsStream, streamDurationMs(unset, 500, '100m'), streamDurationMs(unset, 0, undefined)]).toEqual([null, false, 500, 0]);
    // The grpc-timeout the upstream gets: the limit in Envoy's units, or null to forward the client's.
    expect([upstreamGrpcTimeout(capped, 0, '10S'), upstreamGrpcTimeout(capped, 0, '200m'), upstreamGrpcTimeout(unset, 0, '1S'), upstreamGrpcTimeout(off, 500, '1S')]).toEqual(['950m', '150m', null, null]);
    const long = action({ max_stream_duration: { max_stream_duration: '200000s' } });
    expect([upstreamGrpcTimeout(long, 0, undefined), upstreamGrpcTimeout(action({ max_stream_duration: { max_stream_duration: '200000000s' } }), 0, undefined)]).toEqual(['200000S', '3333333M']);
    // Any duration is accepted now (it used to be refused unless 0s).
    const errors: FieldError[] = [];
    HttpRouteTable.compile({ virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'a', max_stream_duration: { max_stream_duration: '1s' } } }] }] }, 'rc', KNOWN, errors);
    expect(errors).toEqual([]);
  });
});

describe('hedge_policy', () => {
  function compile(vh: object, route: object) {
    const errors: FieldError[] = [];
    const t = HttpRouteTable.compile({ virtual_hosts: [{ name: 'v', domains: ['*'], ...vh, routes: [{ match: { prefix: '/' }, route: { cluster: 'a', ...route } }] }] }, 'rc', KNOWN, errors);
    return { errors, t };
  }

  it('takes hedge_on_per_try_timeout from the route, else from its virtual host', () => {
    const fwd = (vh: object, route: object) => {
      const a = compile(vh, route).t.route(req('h', '/'))!.action;
      if (a.kind !== 'forward') throw new Error('not forward');
      return a.hedgeOnPerTryTimeout;
    };
    expect(fwd({}, {})).toBe(false);
    expect(fwd({ hedge_policy: { hedge_on_per_try_timeout: true } }, {})).toBe(true);
    expect(fwd({ hedge_policy: { hedge_on_per_try_timeout: true } }, { hedge_policy: { hedge_on_per_try_timeout: false } })).toBe(false);
    expect(fwd({}, { hedge_policy: { hedge_on_per_try_timeout: true, initial_requests: 1 } })).toBe(true);
  });

  it('refuses what Envoy does not implement either, with its path', () => {
    expect(compile({ hedge_policy: { initial_requests: 3 } }, {}).errors.map((e) => e.path)).toEqual(['rc.virtual_hosts[0].hedge_policy.initial_requests']);
    expect(compile({}, { hedge_policy: { additional_request_chance: { numerator: 10 } } }).errors.map((e) => e.path)).toEqual(['rc.virtual_hosts[0].routes[0].route.hedge_policy.additional_request_chance']);
  });
});

describe('typed_per_filter_config', () => {
  const BPR = 'type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute';
  function compile(vh: object, route: object) {
    const errors: FieldError[] = [];
    const t = HttpRouteTable.compile({ virtual_hosts: [{ name: 'v', domains: ['*'], ...vh, routes: [{ match: { prefix: '/' }, route: { cluster: 'a' }, ...route }] }] }, 'rc', KNOWN, errors);
    return { errors, route: errors.length ? null : t.route(req('h', '/')) };
  }

  it('takes the buffer filter override from the route, else its virtual host', () => {
    expect(compile({}, {}).route!.bufferMaxBytes).toBeNull();
    expect(compile({ typed_per_filter_config: { 'envoy.filters.http.buffer': { '@type': BPR, disabled: true } } }, {}).route!.bufferMaxBytes).toBe(0);
    expect(compile({ typed_per_filter_config: { 'envoy.filters.http.buffer': { '@type': BPR, disabled: true } } }, { typed_per_filter_config: { 'envoy.filters.http.buffer': { '@type': BPR, buffer: { max_request_bytes: 10 } } } }).route!.bufferMaxBytes).toBe(10);
  });

  it('refuses unknown per-route types and a bad override with their paths', () => {
    expect(compile({}, { typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': 'x' } } }).errors.map((e) => e.path)).toEqual(['rc.virtual_hosts[0].routes[0].typed_per_filter_config["envoy.filters.http.fault"]["@type"]']);
    expect(compile({ typed_per_filter_config: { b: { '@type': BPR, buffer: { max_request_bytes: 0 } } } }, {}).errors.map((e) => e.path)).toEqual(['rc.virtual_hosts[0].typed_per_filter_config["b"].buffer.max_request_bytes']);
  });
});

describe('request_mirror_policies', () => {
  const compile = (rc: object) => {
    const errors: FieldError[] = [];
    const t = HttpRouteTable.compile(rc, 'rc', KNOWN, errors);
    return { errors: errors.map((e) => `${e.path}: ${e.message}`), t };
  };
  const vh = (routeMirrors: unknown, extra: object = {}) => ({ virtual_hosts: [{ name: 'v', domains: ['*'], ...extra, routes: [{ match: { prefix: '/' }, route: { cluster: 'a', ...(routeMirrors ? { request_mirror_policies: routeMirrors } : {}) } }] }] });

  it('takes a cluster or a cluster_header, not both and not neither', () => {
    expect(compile(vh([{ cluster_header: 'X-Mirror' }])).errors).toEqual([]);
    const a = compile(vh([{ cluster_header: 'X-Mirror' }])).t.route(req('h', '/'))!.action;
    expect(a.kind === 'forward' && a.mirrors).toEqual([expect.objectContaining({ cluster: '', clusterHeader: 'x-mirror' })]);
    expect(compile(vh([{ cluster: 'a', cluster_header: 'x' }])).errors).toEqual(['rc.virtual_hosts[0].routes[0].route.request_mirror_policies[0].cluster_header: cannot be combined with cluster']);
    expect(compile(vh([{}])).errors).toEqual(['rc.virtual_hosts[0].routes[0].route.request_mirror_policies[0].cluster: is required (or cluster_header)']);
  });

  it('inherits the most specific non-empty list: route, then virtual host, then route configuration', () => {
    const rc = { ...vh(null, { request_mirror_policies: [{ cluster: 'b' }] }), request_mirror_policies: [{ cluster: 'a' }] };
    const mirrorsOf = (x: object) => {
      const a = compile(x).t.route(req('h', '/'))!.action;
      return a.kind === 'forward' ? a.mirrors?.map((m) => m.cluster) : undefined;
    };
    expect(mirrorsOf(rc)).toEqual(['b']);
    expect(mirrorsOf({ ...vh(null), request_mirror_policies: [{ cluster: 'a' }] })).toEqual(['a']);
    expect(mirrorsOf({ ...vh([{ cluster: 'a' }, { cluster: 'a' }], { request_mirror_policies: [{ cluster: 'b' }] }) })).toEqual(['a', 'a']);
    expect(compile({ ...vh(null), request_mirror_policies: [{ cluster: 'zz' }] }).errors).toEqual(['rc.request_mirror_policies[0].cluster: unknown cluster "zz"']);
  });
});
