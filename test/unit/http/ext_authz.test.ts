import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { lookupType } from '../../../src/config/index.js';
import { withFilterHeaders } from '../../../src/filters/http/chain.js';
import { extAuthzFactory, type ExtAuthzConfig } from '../../../src/filters/http/ext_authz/config.js';
import { decodeCheckResponse, editQuery, encodeCheckRequest } from '../../../src/filters/http/ext_authz/check.js';
import { ExtAuthzFilter } from '../../../src/filters/http/ext_authz/filter.js';
import { httpRbacFactory } from '../../../src/filters/http/rbac/config.js';
import { PER_ROUTE_DISABLED, type HttpFilterRequest } from '../../../src/filters/http/types.js';
import type { Downstream } from '../../../src/io/engine.js';
import { StatsStore } from '../../../src/observability/stats.js';

type Obj = Record<string, any>;

function parse(tc: Obj, clusterNames: ReadonlySet<string> = new Set(['authz'])): { config: ExtAuthzConfig | null; errors: FieldError[]; warnings: FieldError[] } {
  const errors: FieldError[] = [];
  const warnings: FieldError[] = [];
  const config = extAuthzFactory.parse(tc, 'f', { errors, warnings, clusterNames });
  return { config, errors, warnings };
}

const GRPC = { grpc_service: { envoy_grpc: { cluster_name: 'authz' } } };

const downstream: Downstream = {
  remote: { family: 'IPv4', address: '10.0.0.1', port: 40000 },
  local: { family: 'IPv4', address: '10.0.0.2', port: 8080 },
  close() {},
};

const req = (over: Partial<HttpFilterRequest> = {}): HttpFilterRequest => ({ method: 'GET', path: '/info', header: () => undefined, grpc: false, downstream, ...over });

describe('ext_authz config', () => {
  it('accepts the shape Istio writes for a CUSTOM policy', () => {
    const { config, errors } = parse({
      grpc_service: { envoy_grpc: { cluster_name: 'authz', authority: 'authz.local' }, timeout: '600s' },
      with_request_body: { max_request_bytes: 8000 },
      transport_api_version: 'V3',
      filter_enabled_metadata: { filter: 'envoy.filters.http.rbac', path: [{ key: 'istio_ext_authz_shadow_effective_policy_id' }], value: { string_match: { prefix: 'istio-ext-authz' } } },
    });
    expect(errors).toEqual([]);
    expect(config!.timeoutMs).toBe(600_000);
    expect(config!.service).toMatchObject({ kind: 'grpc', cluster: 'authz', authority: 'authz.local' });
    expect(config!.statusOnError).toBe(403);
    expect(config!.withBody).toEqual({ maxBytes: 8000, allowPartial: false, packAsBytes: false });
    const m = config!.enabledMetadata!;
    expect([m.ns, m.key, m.test('istio-ext-authz-ns[x]'), m.test('other'), m.test(undefined)]).toEqual(['envoy.filters.http.rbac', 'istio_ext_authz_shadow_effective_policy_id', true, false, false]);
  });

  it('defaults: 200 ms, the cluster name as authority, enabled for all', () => {
    const c = parse(GRPC).config!;
    expect(c.timeoutMs).toBe(200);
    expect(c.service).toMatchObject({ authority: 'authz' });
    expect(c.enabledFraction).toBe(1);
    expect(c.denyAtDisable).toBe(false);
  });

  it('reads status_on_error, failure_mode_allow, filter_enabled, deny_at_disable', () => {
    const c = parse({ ...GRPC, status_on_error: { code: 'ServiceUnavailable' }, failure_mode_allow: true, filter_enabled: { default_value: { numerator: 25 }, runtime_key: 'k' }, deny_at_disable: { default_value: true } }).config!;
    expect([c.statusOnError, c.failureModeAllow, c.enabledFraction, c.denyAtDisable]).toEqual([503, true, 0.25, true]);
  });

  it('refuses what it does not implement, with the field path', () => {
    const { config, errors } = parse({
      ...GRPC,
      with_request_body: { max_request_bytes: 0 },
      clear_route_cache: true,
      include_peer_certificate: true,
      metadata_context_namespaces: ['a'],
      transport_api_version: 'V2',
    });
    expect(config).toBeNull();
    expect(errors.map((e) => e.path).sort()).toEqual(['f.clear_route_cache', 'f.include_peer_certificate', 'f.metadata_context_namespaces', 'f.transport_api_version', 'f.with_request_body.max_request_bytes']);
  });

  it('needs exactly one service, on a known cluster', () => {
    expect(parse({}).errors).toEqual([{ path: 'f', message: 'needs grpc_service or http_service' }]);
    expect(parse({ ...GRPC, http_service: { server_uri: { uri: 'http://a', cluster: 'authz' } } }).errors[0]!.path).toBe('f.http_service');
    expect(parse({ grpc_service: { envoy_grpc: { cluster_name: 'nope' } } }).errors[0]!.path).toBe('f.grpc_service.envoy_grpc.cluster_name');
    expect(parse({ grpc_service: { google_grpc: { target_uri: 'x:1', channel_credentials: {} } } }).errors[0]!.path).toBe('f.grpc_service.google_grpc');
    expect(parse({ http_service: { path_prefix: '/x' } }).errors[0]!.path).toBe('f.http_service.server_uri');
    expect(parse({ http_service: { server_uri: { uri: 'http://a', cluster: 'authz', timeout: '1s' }, authorization_response: { dynamic_metadata_from_headers: { patterns: [{ regex: 'a' }] } } } }).errors[0]!.path).toBe(
      'f.http_service.authorization_response.dynamic_metadata_from_headers.patterns[0]',
    );
    expect(parse({ ...GRPC, filter_enabled_metadata: { filter: 'f', path: [{ key: 'a' }, { key: 'b' }], value: { string_match: { exact: 'x' } } } }).errors[0]!.path).toBe('f.filter_enabled_metadata.path');
  });

  it('parses allowed_client_headers_on_success, dynamic_metadata_from_headers and enable_dynamic_metadata_ingestion', () => {
    const { config, errors, warnings } = parse({
      enable_dynamic_metadata_ingestion: false,
      http_service: {
        server_uri: { uri: 'http://a', cluster: 'authz', timeout: '1s' },
        authorization_response: { allowed_client_headers_on_success: { patterns: [{ exact: 'x-a' }] }, dynamic_metadata_from_headers: { patterns: [{ prefix: 'x-m-' }] } },
      },
    });
    expect([errors, warnings]).toEqual([[], []]);
    const svc = config!.service as Extract<ExtAuthzConfig['service'], { kind: 'http' }>;
    expect([svc.clientOnSuccess!.length, svc.toMetadata!.length, config!.ingestMetadata]).toEqual([1, 1, false]);
    expect(parse(GRPC).config!.ingestMetadata).toBe(true);
    expect(parse({ ...GRPC, enable_dynamic_metadata_ingestion: { value: true } }).config!.ingestMetadata).toBe(true);
  });

  it('parses the http_service', () => {
    const c = parse({ http_service: { server_uri: { uri: 'http://authz.example:9000/x', cluster: 'authz', timeout: '0.5s' }, path_prefix: '/auth', authorization_request: { headers_to_add: [{ key: 'X-A', value: 'b' }] } } }).config!;
    expect(c.timeoutMs).toBe(500);
    expect(c.service).toMatchObject({ kind: 'http', cluster: 'authz', authority: 'authz.example:9000', pathPrefix: '/auth', headersToAdd: [['x-a', 'b']] });
  });

  it('per route: disabled, check_settings, refusals', () => {
    const pr = extAuthzFactory.perRoute;
    const ctx = () => ({ errors: [] as FieldError[], warnings: [] as FieldError[] });
    expect(pr.parse({ disabled: true }, 'r', ctx())).toBe(PER_ROUTE_DISABLED);
    expect(pr.parse({ check_settings: { context_extensions: { a: 'b' }, disable_request_body_buffering: true } }, 'r', ctx())).toEqual({ contextExtensions: [['a', 'b']], noBody: true });
    const c = ctx();
    expect(pr.parse({ check_settings: { with_request_body: { max_request_bytes: 1 } } }, 'r', c)).toBeNull();
    expect(c.errors[0]!.path).toBe('r.check_settings.with_request_body');
    const d = ctx();
    expect(pr.parse({}, 'r', d)).toBeNull();
    expect(d.errors[0]!.path).toBe('r');
  });
});

describe('ext_authz filter (in memory)', () => {
  const istio = {
    ...GRPC,
    filter_enabled_metadata: { filter: 'envoy.filters.http.rbac', path: [{ key: 'istio_ext_authz_shadow_effective_policy_id' }], value: { string_match: { prefix: 'istio-ext-authz' } } },
  };

  it('is disabled without the metadata, and denies then with deny_at_disable', () => {
    const store = new StatsStore();
    const f = new ExtAuthzFilter(parse(istio).config!, store.root.scope('http').scope('p'));
    expect(f.onRequest(req())).toBeNull();
    expect(store.get('http.p.ext_authz.disabled')!.value).toBe(1);
    const on = req();
    on.dynamicMetadata = new Map([['envoy.filters.http.rbac', new Map([['istio_ext_authz_shadow_effective_policy_id', 'istio-ext-authz-ns[d]']])]]);
    expect(f.onRequest(on)?.wait).toBeTypeOf('function');
    const deny = new ExtAuthzFilter(parse({ ...istio, deny_at_disable: { default_value: { value: true } }, status_on_error: { code: 401 } }).config!, store.root);
    expect(deny.onRequest(req())?.reply).toMatchObject({ status: 401, grpcStatus: 16 });
  });

  it('leaves a route that disables it alone, even with deny_at_disable', () => {
    const f = new ExtAuthzFilter(parse({ ...istio, deny_at_disable: { default_value: true } }).config!, new StatsStore().root);
    expect(f.onRequest(req({ perRoute: new Map([['envoy.filters.http.ext_authz', PER_ROUTE_DISABLED]]) }))).toBeNull();
  });

  it('fails closed with status_on_error when the cluster is missing, open with failure_mode_allow', async () => {
    const store = new StatsStore();
    const f = new ExtAuthzFilter(parse(GRPC).config!, store.root);
    const r = req();
    const v = f.onRequest(r)!;
    const reply = await new Promise((res) => v.wait!(res));
    expect(reply).toMatchObject({ status: 403, flag: 'UAEX' });
    expect(store.get('ext_authz.error')!.value).toBe(1);
    const open = new ExtAuthzFilter(parse({ ...GRPC, failure_mode_allow: true, failure_mode_allow_header_add: true, stat_prefix: 'w' }).config!, store.root);
    const r2 = req();
    const v2 = open.onRequest(r2)!;
    expect(await new Promise((res) => v2.wait!(res))).toBeNull();
    expect(r2.upstreamHeaders!.add[0]).toMatchObject({ name: 'x-envoy-auth-failure-mode-allowed', value: 'true' });
    expect(store.get('ext_authz.w.failure_mode_allowed')!.value).toBe(1);
  });
});

describe('ext_authz wire messages', () => {
  it('encodes the request facts into a CheckRequest', () => {
    const b = encodeCheckRequest({
      method: 'POST',
      path: '/a?b',
      host: 'svc',
      scheme: 'https',
      protocol: 'HTTP/2',
      requestId: 'id-1',
      headers: new Map([['x-a', '1']]),
      source: downstream.remote,
      sourcePrincipal: 'spiffe://cluster.local/ns/a/sa/b',
      destination: downstream.local,
      destinationPrincipal: '',
      contextExtensions: [['k', 'v']],
      body: Buffer.from('a=1'),
      packAsBytes: false,
    });
    const t = lookupType('envoy.service.auth.v3.CheckRequest')!;
    const m = t.toObject(t.decode(b), { longs: Number }) as Obj;
    expect(m.attributes.source).toMatchObject({ principal: 'spiffe://cluster.local/ns/a/sa/b', address: { socket_address: { address: '10.0.0.1', port_value: 40000 } } });
    expect(m.attributes.request.http).toMatchObject({ id: 'id-1', method: 'POST', path: '/a?b', host: 'svc', scheme: 'https', protocol: 'HTTP/2', headers: { 'x-a': '1' }, body: 'a=1', size: 3 });
    expect(m.attributes.context_extensions).toEqual({ k: 'v' });
  });

  it('decodes ok and denied responses (append defaults to overwrite; a denial without a status is 403)', () => {
    const t = lookupType('envoy.service.auth.v3.CheckResponse')!;
    const enc = (o: Obj) => Buffer.from(t.encode(t.fromObject(o)).finish());
    const ok = decodeCheckResponse(enc({ status: { code: 0 }, ok_response: { headers: [{ header: { key: 'X-A', value: '1' } }, { header: { key: 'x-b', value: '2' }, append: { value: true } }, { header: { key: ':path', value: '/evil' } }], headers_to_remove: ['x-c', 'host'] } }));
    expect(ok).toEqual({
      kind: 'ok',
      headers: [
        { name: 'x-a', value: '1', action: 'OVERWRITE_IF_EXISTS_OR_ADD', keepEmpty: false },
        { name: 'x-b', value: '2', action: 'APPEND_IF_EXISTS_OR_ADD', keepEmpty: false },
      ],
      remove: ['x-c'],
    });
    expect(decodeCheckResponse(enc({ status: { code: 7 } }))).toEqual({ kind: 'denied', status: 403, body: '', headers: [] });
    expect(decodeCheckResponse(enc({ status: { code: 16 }, denied_response: { status: { code: 401 }, body: 'no', headers: [{ header: { key: 'www-authenticate', value: 'Bearer' } }] } }))).toEqual({
      kind: 'denied',
      status: 401,
      body: 'no',
      headers: [['www-authenticate', 'Bearer']],
    });
  });

  it('puts filter header edits before the route’s own', () => {
    const route = { requestHeaders: { add: [{ name: 'x-r', value: 'r', action: 'APPEND_IF_EXISTS_OR_ADD' as const, keepEmpty: false }], remove: ['x-rr'] } };
    expect(withFilterHeaders(route, req())).toBe(route);
    const r = req();
    r.upstreamHeaders = { add: [{ name: 'x-f', value: 'f', action: 'OVERWRITE_IF_EXISTS_OR_ADD', keepEmpty: false }], remove: ['x-ff'] };
    const m = withFilterHeaders(route, r).requestHeaders;
    expect(m.add.map((a) => a.name)).toEqual(['x-f', 'x-r']);
    expect(m.remove).toEqual(['x-ff', 'x-rr']);
  });
});

describe('HTTP RBAC shadow results as dynamic metadata', () => {
  it('publishes the shadow engine result and the matched policy under the shadow prefix', () => {
    const errors: FieldError[] = [];
    const cfg = httpRbacFactory.parse(
      { shadow_rules: { action: 'DENY', policies: { 'istio-ext-authz-p': { permissions: [{ url_path: { path: { prefix: '/info' } } }], principals: [{ any: true }] } } }, shadow_rules_stat_prefix: 'istio_ext_authz_' },
      'r',
      { errors, warnings: [] },
    );
    expect(errors).toEqual([]);
    const store = new StatsStore();
    const f = httpRbacFactory.create(cfg!, store.root, store.root);
    const hit = req({ path: '/info/x' });
    expect(f.onRequest(hit)).toBeNull(); // shadow rules never refuse
    expect(Object.fromEntries(hit.dynamicMetadata!.get('envoy.filters.http.rbac')!)).toEqual({ istio_ext_authz_shadow_effective_policy_id: 'istio-ext-authz-p', istio_ext_authz_shadow_engine_result: 'denied' });
    const miss = req({ path: '/other' });
    f.onRequest(miss);
    expect(Object.fromEntries(miss.dynamicMetadata!.get('envoy.filters.http.rbac')!)).toEqual({ istio_ext_authz_shadow_engine_result: 'allowed' });
    expect(store.get('rbac.istio_ext_authz_shadow_denied')!.value).toBe(1);
    expect(store.get('rbac.istio_ext_authz_shadow_allowed')!.value).toBe(1);
  });
});

describe('ext_authz query parameter edits (editQuery)', () => {
  const q = (set: Array<[string, string]>, remove: string[] = []) => ({ set, remove });

  it("rewrites the query as Envoy's QueryParamsMulti does: names in byte order, raw values, a set name replacing all its values", () => {
    expect(editQuery('/p/a%2F?b=2&a=1&a=3&c', q([['b', 'x']]))).toBe('/p/a%2F?a=1&a=3&b=x&c=');
    expect(editQuery('/p', q([['k', 'v']]))).toBe('/p?k=v');
    expect(editQuery('/p?a=%20&B=1', q([], ['zz']))).toBe('/p?B=1&a=%20');
  });

  it("drops the '?' when no parameter is left, and removes after setting", () => {
    expect(editQuery('/p?a=1', q([], ['a']))).toBe('/p');
    expect(editQuery('/p?', q([], ['a']))).toBe('/p');
    expect(editQuery('/p?a=1', q([['a', '2']], ['a']))).toBe('/p');
  });

  it('percent-encodes only what a request target cannot carry', () => {
    expect(editQuery('/p', q([['n m', 'a b#c\r\né'], ['ok', "a/b?c:d@e!$'()*+,;%41"]]))).toBe("/p?n%20m=a%20b%23c%0D%0A%C3%A9&ok=a/b?c:d@e!$'()*+,;%41");
  });
});

describe('ext_authz CheckResponse query parameters and dynamic metadata', () => {
  const t = lookupType('envoy.service.auth.v3.CheckResponse')!;
  const enc = (o: Obj) => Buffer.from(t.encode(t.fromObject(o)).finish());

  it('reads query_parameters_to_set / _to_remove and dynamic_metadata (the deprecated ok_response one winning)', () => {
    const o = decodeCheckResponse(
      enc({
        status: { code: 0 },
        dynamic_metadata: { fields: { a: { stringValue: 'outer' } } },
        ok_response: { query_parameters_to_set: [{ key: 'k', value: 'v' }], query_parameters_to_remove: ['r'], dynamic_metadata: { fields: { n: { numberValue: 2 }, l: { listValue: { values: [{ boolValue: true }] } } } } },
      }),
    );
    expect(o).toMatchObject({ kind: 'ok', query: { set: [['k', 'v']], remove: ['r'] }, meta: [['n', 2], ['l', [true]]] });
    const outer = decodeCheckResponse(enc({ status: { code: 0 }, dynamic_metadata: { fields: { a: { structValue: { fields: { b: { stringValue: 'c' } } } } } } }));
    expect(outer).toMatchObject({ meta: [['a', { b: 'c' }]] });
    expect(outer).not.toHaveProperty('query');
    expect(decodeCheckResponse(enc({ status: { code: 7 }, dynamic_metadata: { fields: { why: { stringValue: 'no' } } } }))).toMatchObject({ kind: 'denied', meta: [['why', 'no']] });
  });
});
