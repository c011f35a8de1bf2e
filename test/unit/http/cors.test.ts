import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { corsFactory } from '../../../src/filters/http/cors/config.js';
import { CorsFilter } from '../../../src/filters/http/cors/filter.js';
import { CorsPolicy, LEGACY_CORS_KEY, parseCorsPolicy } from '../../../src/filters/http/cors/policy.js';
import { addResponseHeaders, type HttpFilterRequest } from '../../../src/filters/http/types.js';
import { applyHeaderObject, editHeaderLines } from '../../../src/filters/network/http_connection_manager/response_edits.js';
import { StatsStore } from '../../../src/observability/stats.js';
import { HttpRouteTable, type HeaderAdd, type HttpRoute } from '../../../src/router/http_route_table.js';

type Obj = Record<string, any>;

const POLICY = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy';
const FILTER_CONFIG = 'type.googleapis.com/envoy.config.route.v3.FilterConfig';
const NAME = 'envoy.filters.http.cors';
const typed = (o: Obj): Obj => ({ [NAME]: { '@type': POLICY, ...o } });

function parse(o: Obj): { policy: CorsPolicy | null; errors: FieldError[] } {
  const errors: FieldError[] = [];
  return { policy: parseCorsPolicy(o, 'p', errors), errors };
}

function table(rc: Obj): { errors: FieldError[]; route: (path: string) => HttpRoute | null } {
  const errors: FieldError[] = [];
  const t = HttpRouteTable.compile(rc, 'rc', new Set(['a']), errors);
  return { errors, route: (path) => t.route({ host: 'h', path, method: 'GET', header: () => undefined }) };
}

function request(route: HttpRoute | null, method: string, headers: Record<string, string>): HttpFilterRequest {
  return { method, path: '/', header: (n) => headers[n], grpc: false, perRoute: route?.perFilter ?? null };
}

function filter(random = () => 0.5): { f: CorsFilter; stat: (n: string) => number } {
  const store = new StatsStore();
  const f = new CorsFilter(store.root.scope('http').scope('s'), NAME, random);
  return { f, stat: (n) => (store.get(`http.s.cors.${n}`)?.value as number | undefined) ?? 0 };
}

const asObject = (m: HttpFilterRequest['responseHeaders']): Obj => {
  const o: Obj = {};
  if (m) applyHeaderObject(o, m);
  return o;
};

describe('CorsPolicy parsing', () => {
  it('reads every field, with Envoy defaults for the unset ones', () => {
    const { policy, errors } = parse({
      allow_origin_string_match: [{ exact: 'https://a.example' }, { suffix: '.b.example' }],
      allow_methods: 'GET,POST',
      allow_headers: 'x-a',
      expose_headers: 'x-b',
      max_age: '600',
      allow_credentials: true,
      allow_private_network_access: { value: true },
      forward_not_matching_preflights: false,
      filter_enabled: { default_value: { numerator: 50 }, runtime_key: 'cors.on' },
    });
    expect(errors).toEqual([]);
    expect(policy).toMatchObject({ allowMethods: 'GET,POST', allowHeaders: 'x-a', exposeHeaders: 'x-b', maxAge: '600', allowCredentials: true, allowPrivateNetworkAccess: true, forwardNotMatchingPreflights: false, enabled: 0.5, shadow: 0 });
    expect(policy!.allows('https://a.example')).toBe(true);
    expect(policy!.allows('https://x.b.example')).toBe(true);
    expect(policy!.allows('https://c.example')).toBe(false);
    const empty = parse({}).policy!;
    expect(empty).toMatchObject({ origins: null, allowCredentials: null, forwardNotMatchingPreflights: null, enabled: 1, shadow: 0 });
    expect(empty.forwardsNotMatching).toBe(true);
    expect(empty.allows('https://a.example')).toBe(false);
  });

  it('allows every origin when a matcher matches "*" itself, as Envoy does', () => {
    expect(parse({ allow_origin_string_match: [{ exact: '*' }] }).policy!.allows('https://any.example')).toBe(true);
    expect(parse({ allow_origin_string_match: [{ safe_regex: { regex: '.*' } }] }).policy!.allows('https://any.example')).toBe(true);
    expect(parse({ allow_origin_string_match: [{ prefix: 'https://' }] }).policy!.allows('http://a.example')).toBe(false);
  });

  it('reports every bad field by its path', () => {
    const { policy, errors } = parse({
      allow_origin_string_match: [{ exact: 'https://a.example' }, { safe_regex: { regex: '(unclosed' } }, {}],
      allow_methods: 'GET\r\nx-injected: 1',
      allow_credentials: 'yes',
    });
    expect(policy).toBeNull();
    expect(errors.map((e) => e.path)).toEqual(['p.allow_origin_string_match[1].safe_regex.regex', 'p.allow_origin_string_match[2]', 'p.allow_methods', 'p.allow_credentials']);
    expect(errors[0]!.message).toMatch(/invalid regex/);
  });

  it('names the route table path of a bad policy, typed or in the older fields', () => {
    const t = table({
      virtual_hosts: [
        {
          name: 'v',
          domains: ['*'],
          cors: { allow_origin_string_match: [{ safe_regex: { regex: '[' } }] },
          typed_per_filter_config: typed({ max_age: '1\n' }),
          routes: [{ match: { prefix: '/' }, route: { cluster: 'a', cors: { allow_origin_string_match: [{ safe_regex: { regex: '(' } }] } } }],
        },
      ],
    });
    expect(t.errors.map((e) => e.path)).toEqual([
      'rc.virtual_hosts[0].typed_per_filter_config["envoy.filters.http.cors"].max_age',
      'rc.virtual_hosts[0].cors.allow_origin_string_match[0].safe_regex.regex',
      'rc.virtual_hosts[0].routes[0].route.cors.allow_origin_string_match[0].safe_regex.regex',
    ]);
  });
});

describe('CORS policies merged per route', () => {
  const t = table({
    typed_per_filter_config: typed({ max_age: '100', allow_headers: 'x-rc' }),
    virtual_hosts: [
      {
        name: 'v',
        domains: ['*'],
        typed_per_filter_config: typed({ allow_origin_string_match: [{ exact: 'https://a.example' }], allow_methods: 'GET', allow_credentials: true, filter_enabled: { default_value: { numerator: 0 } } }),
        routes: [
          { match: { prefix: '/route' }, route: { cluster: 'a' }, typed_per_filter_config: typed({ allow_methods: 'PUT', allow_credentials: false }) },
          { match: { prefix: '/on' }, route: { cluster: 'a' }, typed_per_filter_config: { [NAME]: { '@type': FILTER_CONFIG, config: {} } } },
          { match: { prefix: '/direct' }, direct_response: { status: 200 } },
          { match: { prefix: '/' }, route: { cluster: 'a' } },
        ],
      },
    ],
  });
  const policyAt = (path: string): CorsPolicy | undefined => t.route(path)?.perFilter?.get(NAME) as CorsPolicy | undefined;
  const legacyRoute = (path: string): HttpRoute | null => tl.route({ host: 'legacy', path, method: 'GET', header: () => undefined });
  const tl = HttpRouteTable.compile(
    {
      typed_per_filter_config: typed({ max_age: '100' }),
      virtual_hosts: [
        {
          name: 'legacy',
          domains: ['legacy'],
          cors: { allow_origin_string_match: [{ exact: 'https://l.example' }], allow_methods: 'GET', max_age: '5' },
          routes: [
            { match: { prefix: '/own' }, route: { cluster: 'a', cors: { allow_methods: 'DELETE' } } },
            { match: { prefix: '/' }, route: { cluster: 'a' } },
          ],
        },
      ],
    },
    'rc',
    new Set(['a']),
    [],
  );

  it('takes each setting from the most specific level that sets it', () => {
    expect(t.errors).toEqual([]);
    const p = policyAt('/route')!;
    expect(p).toBeInstanceOf(CorsPolicy);
    // Route's methods and credentials (false counts: it is set), the virtual host's origins, the route configuration's max age.
    expect(p).toMatchObject({ allowMethods: 'PUT', allowCredentials: false, allowHeaders: 'x-rc', maxAge: '100' });
    expect(p.allows('https://a.example')).toBe(true);
    const v = policyAt('/other')!;
    expect(v).toMatchObject({ allowMethods: 'GET', allowCredentials: true, maxAge: '100' });
  });

  it('reads filter_enabled from the most specific policy alone', () => {
    // The virtual host turns CORS off; its route's policy says nothing of it, so it is on there.
    expect(policyAt('/other')!.enabled).toBe(0);
    expect(policyAt('/route')!.enabled).toBe(1);
  });

  it('keeps the policies below a FilterConfig that only turns the filter on', () => {
    expect(policyAt('/on')).toMatchObject({ allowMethods: 'GET', maxAge: '100' });
  });

  it('gives routes without a route entry (direct_response) no policy, as Envoy', () => {
    expect(t.route('/direct')!.perFilter?.get(NAME)).toBeUndefined();
  });

  it("uses the older cors fields, route over virtual host, only where no typed policy applies", () => {
    const own = legacyRoute('/own')!;
    // A typed policy at the route configuration level exists here: the older fields are kept but not used first.
    expect(own.perFilter!.get(NAME)).toMatchObject({ maxAge: '100' });
    expect(own.perFilter!.get(LEGACY_CORS_KEY)).toMatchObject({ allowMethods: 'DELETE', maxAge: '5' });
    const only = table({ virtual_hosts: [{ name: 'l', domains: ['*'], cors: { allow_origin_string_match: [{ exact: 'https://l.example' }], allow_methods: 'GET', max_age: '5' }, routes: [{ match: { prefix: '/own' }, route: { cluster: 'a', cors: { allow_methods: 'DELETE' } } }, { match: { prefix: '/' }, route: { cluster: 'a' } }] }] });
    expect(only.errors).toEqual([]);
    const { f } = filter();
    const pre = f.onRequest(request(only.route('/own'), 'OPTIONS', { origin: 'https://l.example', 'access-control-request-method': 'DELETE' }));
    expect(Object.fromEntries(pre!.reply!.headers!)).toMatchObject({ 'access-control-allow-methods': 'DELETE', 'access-control-max-age': '5' });
    // The typed policy wins over the older fields on the same route.
    const typedOne = f.onRequest(request(legacyRoute('/own'), 'OPTIONS', { origin: 'https://l.example', 'access-control-request-method': 'DELETE' }));
    // The typed policy (route configuration level) has no origins: the preflight is not matched, and is forwarded.
    expect(typedOne).toBeNull();
  });
});

describe('the cors filter', () => {
  const t = table({
    virtual_hosts: [
      {
        name: 'v',
        domains: ['*'],
        typed_per_filter_config: typed({
          allow_origin_string_match: [{ exact: 'https://a.example' }],
          allow_methods: 'GET,PUT',
          allow_headers: 'x-a',
          expose_headers: 'x-exposed',
          max_age: '60',
          allow_credentials: true,
          allow_private_network_access: true,
        }),
        routes: [
          { match: { prefix: '/strict' }, route: { cluster: 'a' }, typed_per_filter_config: typed({ forward_not_matching_preflights: false }) },
          { match: { prefix: '/star' }, route: { cluster: 'a' }, typed_per_filter_config: typed({ allow_methods: '*', allow_headers: '*', allow_credentials: false, expose_headers: '' }) },
          { match: { prefix: '/off' }, route: { cluster: 'a' }, typed_per_filter_config: typed({ filter_enabled: { default_value: { numerator: 0 } } }) },
          { match: { prefix: '/shadow' }, route: { cluster: 'a' }, typed_per_filter_config: typed({ filter_enabled: { default_value: { numerator: 0 } }, shadow_enabled: { default_value: { numerator: 100 } } }) },
          { match: { prefix: '/' }, route: { cluster: 'a' } },
        ],
      },
    ],
  });
  const preflight = (origin: string, extra: Record<string, string> = {}) => ({ origin, 'access-control-request-method': 'PUT', ...extra });

  it('answers a preflight from an allowed origin itself, with the policy and the echoed origin', () => {
    const { f, stat } = filter();
    const rq = request(t.route('/x'), 'OPTIONS', preflight('https://a.example', { 'access-control-request-private-network': 'true' }));
    const v = f.onRequest(rq)!;
    expect(v.reply!.status).toBe(200);
    expect(v.reply!.body).toBe('');
    expect(Object.fromEntries(v.reply!.headers!)).toEqual({
      'access-control-allow-origin': 'https://a.example',
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET,PUT',
      'access-control-allow-headers': 'x-a',
      'access-control-max-age': '60',
      'access-control-allow-private-network': 'true',
    });
    // The reply goes out through the response edits too (Envoy's encoder runs on it): expose-headers joins.
    expect(asObject(rq.responseHeaders)).toEqual({ 'access-control-allow-origin': 'https://a.example', 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'x-exposed' });
    expect([stat('origin_valid'), stat('origin_invalid')]).toEqual([1, 0]);
  });

  it('forwards a preflight from another origin, or answers it without allow-origin when told not to forward', () => {
    const { f, stat } = filter();
    const fwd = request(t.route('/x'), 'OPTIONS', preflight('https://evil.example'));
    expect(f.onRequest(fwd)).toBeNull();
    expect(fwd.responseHeaders).toBeUndefined();
    const strict = f.onRequest(request(t.route('/strict'), 'OPTIONS', preflight('https://evil.example')))!;
    expect(strict.reply!.status).toBe(200);
    const h = Object.fromEntries(strict.reply!.headers!);
    expect(h['access-control-allow-origin']).toBeUndefined();
    expect(h['access-control-allow-methods']).toBe('GET,PUT');
    expect([stat('origin_valid'), stat('origin_invalid')]).toEqual([0, 2]);
  });

  it('lets a simple request from an allowed origin through with response edits', () => {
    const { f } = filter();
    const rq = request(t.route('/x'), 'GET', { origin: 'https://a.example' });
    expect(f.onRequest(rq)).toBeNull();
    expect(asObject(rq.responseHeaders)).toEqual({ 'access-control-allow-origin': 'https://a.example', 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'x-exposed' });
    // An OPTIONS without Access-Control-Request-Method is no preflight.
    const opt = request(t.route('/x'), 'OPTIONS', { origin: 'https://a.example' });
    expect(f.onRequest(opt)).toBeNull();
    expect(opt.responseHeaders).toBeDefined();
  });

  it('echoes what the browser asked for when methods or headers are "*"', () => {
    const { f } = filter();
    const v = f.onRequest(request(t.route('/star'), 'OPTIONS', preflight('https://a.example', { 'access-control-request-headers': 'x-one,x-two' })))!;
    const h = Object.fromEntries(v.reply!.headers!);
    expect(h['access-control-allow-methods']).toBe('PUT');
    expect(h['access-control-allow-headers']).toBe('x-one,x-two');
    expect(h['access-control-allow-credentials']).toBeUndefined();
  });

  it('does nothing without an Origin, without a policy, or with filter_enabled at 0%', () => {
    const { f, stat } = filter();
    const none = request(t.route('/x'), 'OPTIONS', { 'access-control-request-method': 'GET' });
    expect(f.onRequest(none)).toBeNull();
    expect(none.responseHeaders).toBeUndefined();
    expect(f.onRequest(request(null, 'OPTIONS', preflight('https://a.example')))).toBeNull();
    const off = request(t.route('/off'), 'OPTIONS', preflight('https://a.example'));
    expect(f.onRequest(off)).toBeNull();
    expect(off.responseHeaders).toBeUndefined();
    expect([stat('origin_valid'), stat('origin_invalid')]).toEqual([0, 0]);
  });

  it('only counts in shadow mode', () => {
    const { f, stat } = filter();
    const rq = request(t.route('/shadow'), 'OPTIONS', preflight('https://a.example'));
    expect(f.onRequest(rq)).toBeNull();
    expect(rq.responseHeaders).toBeUndefined();
    expect(stat('origin_valid')).toBe(1);
  });

  it('samples filter_enabled per request', () => {
    const p = table({ virtual_hosts: [{ name: 'v', domains: ['*'], typed_per_filter_config: typed({ allow_origin_string_match: [{ exact: 'o' }], filter_enabled: { default_value: { numerator: 30 } } }), routes: [{ match: { prefix: '/' }, route: { cluster: 'a' } }] }] });
    const r = p.route('/')!;
    expect(filter(() => 0.1).f.onRequest(request(r, 'OPTIONS', preflight('o')))?.reply?.status).toBe(200);
    expect(filter(() => 0.9).f.onRequest(request(r, 'OPTIONS', preflight('o')))).toBeNull();
  });

  it('is a factory whose per-route parse reports by path', () => {
    const errors: FieldError[] = [];
    expect(corsFactory.perRoute.parse({ '@type': POLICY, allow_origin_string_match: [{ safe_regex: { regex: '*' } }] }, 'x', { errors, warnings: [] })).toBeNull();
    expect(errors.map((e) => e.path)).toEqual(['x.allow_origin_string_match[0].safe_regex.regex']);
  });
});

describe('response header edits from filters', () => {
  const add = (name: string, value: string, action: HeaderAdd['action'] = 'OVERWRITE_IF_EXISTS_OR_ADD'): HeaderAdd => ({ name, value, action, keepEmpty: false });

  it('puts a later filter’s edits first, so an earlier filter’s land last (Envoy encodes in reverse)', () => {
    const rq: HttpFilterRequest = { method: 'GET', path: '/', header: () => undefined, grpc: false };
    addResponseHeaders(rq, { add: [add('x-a', 'cors')], remove: [] });
    addResponseHeaders(rq, { add: [add('x-a', 'authz'), add('x-b', 'authz')], remove: [] });
    expect(asObject(rq.responseHeaders)).toEqual({ 'x-a': 'cors', 'x-b': 'authz' });
  });

  it('overwrites lines a route already added on an HTTP/1 head, and the head’s own fields', () => {
    const drop: string[] = [];
    const has = (n: string) => n === 'access-control-allow-origin' || n === 'x-up';
    const lines = editHeaderLines('server: envoy\r\nAccess-Control-Allow-Origin: *\r\nx-route: 1\r\n', { add: [add('access-control-allow-origin', 'https://a.example'), add('x-up', 'ignored', 'ADD_IF_ABSENT'), add('x-new', 'n', 'OVERWRITE_IF_EXISTS'), add('x-route', '2', 'APPEND_IF_EXISTS_OR_ADD')], remove: ['server'] }, has, drop);
    expect(lines).toBe('x-route: 1\r\naccess-control-allow-origin: https://a.example\r\nx-route: 2\r\n');
    expect(drop).toEqual(['server', 'access-control-allow-origin']);
  });
});
