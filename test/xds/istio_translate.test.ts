import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FieldError } from '../../src/errors.js';
import { HttpRouteTable } from '../../src/router/http_route_table.js';
import { buildClusterSpec } from '../../src/upstream/cluster_config.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/xds/proto.js';
import { decodeAny } from '../../src/xds/resources.js';
import { IstioState } from '../../src/xds/server/istio/index.js';
import { loadResourceDir, type LoadResult } from '../../src/xds/server/resource_dir.js';
import { tmpDir } from '../helpers/strait.js';

type Obj = Record<string, any>;
const HOST = 'reviews.default.svc.cluster.local';

const SE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [${HOST}]
  ports:
  - { number: 9080, name: http, protocol: HTTP }
  - { number: 9090, name: grpc-api, protocol: GRPC }
  resolution: STATIC
  endpoints:
  - { address: 10.0.0.1, ports: { http: 8001 }, labels: { version: v1 }, locality: us-east/a }
  - { address: 10.0.0.2, ports: { http: 8002 }, labels: { version: v2 }, weight: 3 }
  - { address: 10.0.0.3, labels: { version: v3 } }
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: ext }
spec:
  hosts: [api.example.com]
  ports: [{ number: 443, name: tls, protocol: TLS }, { number: 80, name: http, protocol: HTTP }]
  resolution: DNS
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: db }
spec:
  hosts: [db.example.com]
  ports: [{ number: 5432, name: tcp, protocol: TCP }]
  resolution: DNS
  endpoints: [{ address: db-a.example.com, labels: { role: a } }, { address: db-b.example.com, labels: { role: b } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: legacy }
spec:
  hosts: [legacy.example.com]
  ports: [{ number: 3306, name: tcp-mysql, protocol: TCP }]
  resolution: DNS_ROUND_ROBIN
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: passthrough }
spec:
  hosts: [any.example.com]
  ports: [{ number: 8443, name: tcp-any, protocol: TCP }]
  resolution: NONE
`;

const DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: { maxConnections: 100, connectTimeout: 250ms }
      http: { http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRetries: 3, maxRequestsPerConnection: 5, idleTimeout: 30s }
    outlierDetection: { consecutive5xxErrors: 7, interval: 5m, baseEjectionTime: 15m, maxEjectionPercent: 50 }
  subsets:
  - name: v1
    labels: { version: v1 }
  - name: v2
    labels: { version: v2 }
    trafficPolicy:
      loadBalancer:
        consistentHash: { httpHeaderName: x-user, ringHash: { minimumRingSize: 1024 } }
  - name: v3
    labels: { version: v3 }
    trafficPolicy: { loadBalancer: { simple: RANDOM } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: db }
spec:
  host: db.example.com
  subsets: [{ name: a, labels: { role: a } }, { name: b, labels: { role: b } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ext }
spec:
  host: api.example.com
  trafficPolicy: { tls: { mode: SIMPLE } }
`;

const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers: { end-user: { exact: jason } }
      uri: { prefix: /api }
      method: { exact: POST }
      queryParams: { debug: { exact: "1" } }
    - uri: { regex: "^/v[0-9]+/.*" }
    route: [{ destination: { host: reviews, subset: v2 } }]
    timeout: 3s
    retries: { attempts: 4, perTryTimeout: 500ms, retryOn: "gateway-error,503" }
    headers:
      request: { set: { x-set: a }, add: { x-add: b }, remove: [x-drop] }
      response: { remove: [server] }
  - match: [{ uri: { exact: /faulty } }]
    fault:
      delay: { percentage: { value: 50 }, fixedDelay: 2s }
      abort: { percentage: { value: 0.1 }, httpStatus: 418 }
    route: [{ destination: { host: reviews, subset: v1 } }]
  - match: [{ uri: { prefix: /old } }]
    rewrite: { uri: /new, authority: new.example.com }
    mirror: { host: reviews, subset: v3 }
    mirrorPercentage: { value: 25 }
    corsPolicy:
      allowOrigins: [{ exact: "https://a.example" }, { regex: "https://.*[.]b[.]example" }]
      allowMethods: [GET, POST]
      allowHeaders: [x-a, x-b]
      exposeHeaders: [x-c]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
    route: [{ destination: { host: reviews, subset: v1 } }]
  - route:
    - { destination: { host: reviews, subset: v1 }, weight: 90 }
    - { destination: { host: reviews, subset: v2 }, weight: 10 }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db }
spec:
  hosts: [db.example.com]
  tcp:
  - match: [{ port: 5432 }]
    route:
    - { destination: { host: db.example.com, subset: a }, weight: 75 }
    - { destination: { host: db.example.com, subset: b }, weight: 25 }
`;

describe('Istio → xDS translation', () => {
  let dir: string;
  let istio: IstioState;
  let r: LoadResult;
  const get = (type: string, name: string): Obj => {
    const s = r.resources.get(type)?.get(name);
    if (!s) throw new Error(`no ${type} ${name}; have ${[...(r.resources.get(type)?.keys() ?? [])].join(', ')}`);
    const d = decodeAny(s.any, type);
    expect(d.errors).toEqual([]);
    return d.value!;
  };
  const problems = (file: string) => r.files.find((f) => f.file === file)!.problems.map((p) => `${p.path}: ${p.message}`);
  const vhost = (rc: Obj, name: string) => rc.virtual_hosts.find((v: Obj) => v.name === name);

  beforeEach(() => {
    dir = tmpDir('strait-istio-unit-');
    fs.writeFileSync(path.join(dir, 'se.yaml'), SE);
    fs.writeFileSync(path.join(dir, 'dr.yaml'), DR);
    fs.writeFileSync(path.join(dir, 'vs.yaml'), VS);
    istio = new IstioState({ outboundBind: '0.0.0.0' });
    r = loadResourceDir(dir, { istio });
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('names clusters outbound|port|subset|host, one per port and subset, each with its own assignment of the matching endpoints', () => {
    const names = [...r.resources.get(CLUSTER_TYPE)!.keys()].sort();
    expect(names).toEqual(
      [
        `outbound|9080||${HOST}`,
        `outbound|9080|v1|${HOST}`,
        `outbound|9080|v2|${HOST}`,
        `outbound|9080|v3|${HOST}`,
        `outbound|9090||${HOST}`,
        `outbound|9090|v1|${HOST}`,
        `outbound|9090|v2|${HOST}`,
        `outbound|9090|v3|${HOST}`,
        'outbound|443||api.example.com',
        'outbound|80||api.example.com',
        'outbound|5432||db.example.com',
        'outbound|3306||legacy.example.com',
        'outbound|5432|a|db.example.com',
        'outbound|5432|b|db.example.com',
        'outbound|8443||any.example.com',
      ].sort(),
    );
    const v1 = get(CLUSTER_TYPE, `outbound|9080|v1|${HOST}`);
    expect(v1).toMatchObject({ type: 'EDS', eds_cluster_config: { service_name: `outbound|9080|v1|${HOST}`, eds_config: { ads: {} } } });
    const all = get(ENDPOINT_TYPE, `outbound|9080||${HOST}`);
    const eps = all.endpoints.flatMap((g: Obj) => g.lb_endpoints.map((e: Obj) => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value}`));
    // The named endpoint port, else the service port.
    expect(eps.sort()).toEqual(['10.0.0.1:8001', '10.0.0.2:8002', '10.0.0.3:9080']);
    const east = all.endpoints.find((g: Obj) => g.locality?.region === 'us-east');
    expect(east.locality).toMatchObject({ region: 'us-east', zone: 'a' });
    const sub = get(ENDPOINT_TYPE, `outbound|9080|v2|${HOST}`);
    expect(sub.endpoints).toHaveLength(1);
    expect(sub.endpoints[0].lb_endpoints).toHaveLength(1);
    expect(sub.endpoints[0].lb_endpoints[0]).toMatchObject({
      endpoint: { address: { socket_address: { address: '10.0.0.2', port_value: 8002 } } },
      load_balancing_weight: 3,
      metadata: { filter_metadata: { 'envoy.lb': { version: 'v2' } } },
    });
    // gRPC ports get HTTP/2 upstreams.
    expect(get(CLUSTER_TYPE, `outbound|9090||${HOST}`).typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config).toHaveProperty('http2_protocol_options');
    // DNS resolutions: STRICT_DNS / LOGICAL_DNS with the endpoints inline; NONE: original destination.
    expect(get(CLUSTER_TYPE, 'outbound|80||api.example.com')).toMatchObject({ type: 'STRICT_DNS', load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'api.example.com', port_value: 80 } } } }] }] } });
    const dbA = get(CLUSTER_TYPE, 'outbound|5432|a|db.example.com');
    expect(dbA.type).toBe('STRICT_DNS');
    expect(dbA.load_assignment.endpoints[0].lb_endpoints.map((e: Obj) => e.endpoint.address.socket_address.address)).toEqual(['db-a.example.com']);
    // DNS_ROUND_ROBIN: one name, the first address it resolves to (LOGICAL_DNS).
    expect(get(CLUSTER_TYPE, 'outbound|3306||legacy.example.com')).toMatchObject({ type: 'LOGICAL_DNS', load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'legacy.example.com', port_value: 3306 } } } }] }] } });
    expect(get(CLUSTER_TYPE, 'outbound|8443||any.example.com')).toMatchObject({ type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED' });
  });

  it('applies DestinationRule traffic policies: load balancer, consistent hash, connection pool, outlier detection', () => {
    const base = get(CLUSTER_TYPE, `outbound|9080||${HOST}`);
    expect(base.lb_policy).toBe('LEAST_REQUEST');
    expect(base.connect_timeout).toBe('0.250s');
    expect(base.circuit_breakers.thresholds[0]).toMatchObject({ max_connections: 100, max_pending_requests: 10, max_requests: 1000, max_retries: 3 });
    expect(base.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].common_http_protocol_options).toEqual({ max_requests_per_connection: 5, idle_timeout: '30s' });
    expect(base.outlier_detection).toMatchObject({ consecutive_5xx: 7, enforcing_consecutive_5xx: 100, enforcing_consecutive_gateway_failure: 0, interval: '300s', base_ejection_time: '900s', max_ejection_percent: 50 });
    // Subsets inherit the top-level policy and add their own.
    const v2 = get(CLUSTER_TYPE, `outbound|9080|v2|${HOST}`);
    expect(v2).toMatchObject({ lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: 1024 } });
    expect(v2.circuit_breakers.thresholds[0].max_connections).toBe(100);
    expect(get(CLUSTER_TYPE, `outbound|9080|v3|${HOST}`).lb_policy).toBe('RANDOM');
  });

  it('builds route configuration "<port>": a virtual host per service, matches, weights, hash policy, retries, fault, mirror, rewrite, headers', () => {
    const rc = get(ROUTE_TYPE, '9080');
    const vh = vhost(rc, `${HOST}:9080`);
    expect(vh.domains).toEqual([HOST, `${HOST}:9080`, 'reviews', 'reviews:9080', 'reviews.default', 'reviews.default:9080', 'reviews.default.svc', 'reviews.default.svc:9080']);
    const [jasonA, jasonB, faulty, old, rest] = vh.routes as Obj[];
    // One Envoy route per match, same action.
    expect(jasonA.match).toMatchObject({
      prefix: '/api',
      headers: [
        { name: 'end-user', string_match: { exact: 'jason' } },
        { name: ':method', string_match: { exact: 'POST' } },
      ],
      query_parameters: [{ name: 'debug', string_match: { exact: '1' } }],
    });
    expect(jasonB.match).toEqual({ safe_regex: { regex: '^/v[0-9]+/.*' } });
    expect(jasonA.route).toEqual(jasonB.route);
    expect(jasonA.name).toBe('jason');
    expect(jasonA.route).toMatchObject({
      cluster: `outbound|9080|v2|${HOST}`,
      timeout: '3s',
      retry_policy: { retry_on: 'gateway-error,retriable-status-codes', num_retries: 4, per_try_timeout: '0.500s', retriable_status_codes: [503] },
      // The v2 subset hashes on x-user: the route says what to hash.
      hash_policy: [{ header: { header_name: 'x-user' } }],
    });
    expect(jasonA.request_headers_to_add).toEqual([
      { header: { key: 'x-set', value: 'a' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { header: { key: 'x-add', value: 'b' }, append_action: 'APPEND_IF_EXISTS_OR_ADD' },
    ]);
    expect(jasonA.request_headers_to_remove).toEqual(['x-drop']);
    expect(jasonA.response_headers_to_remove).toEqual(['server']);
    expect(faulty.match).toEqual({ path: '/faulty' });
    expect(faulty.typed_per_filter_config['envoy.filters.http.fault']).toMatchObject({
      delay: { fixed_delay: '2s', percentage: { numerator: 500000, denominator: 'MILLION' } },
      abort: { http_status: 418, percentage: { numerator: 1000, denominator: 'MILLION' } },
    });
    expect(old.route).toMatchObject({
      prefix_rewrite: '/new',
      host_rewrite_literal: 'new.example.com',
      request_mirror_policies: [{ cluster: `outbound|9080|v3|${HOST}`, runtime_fraction: { default_value: { numerator: 250000, denominator: 'MILLION' } } }],
    });
    // corsPolicy as Istio writes it: a CorsPolicy for the cors filter on the route, always on.
    expect(old.typed_per_filter_config['envoy.filters.http.cors']).toEqual({
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
      allow_origin_string_match: [{ exact: 'https://a.example' }, { safe_regex: { regex: 'https://.*[.]b[.]example' } }],
      filter_enabled: { default_value: { numerator: 100, denominator: 'HUNDRED' } },
      allow_methods: 'GET,POST',
      allow_headers: 'x-a,x-b',
      expose_headers: 'x-c',
      max_age: '86400',
      allow_credentials: true,
      forward_not_matching_preflights: false,
    });
    expect(rest.match).toEqual({ prefix: '/' });
    expect(rest.route.weighted_clusters.clusters).toEqual([
      { name: `outbound|9080|v1|${HOST}`, weight: 90 },
      { name: `outbound|9080|v2|${HOST}`, weight: 10 },
    ]);
    expect(rest.route.retry_policy).toMatchObject({ num_retries: 2, retriable_status_codes: [503], retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes' });
    // As Istio: every retry policy avoids hosts already tried, and every try says its attempt.
    for (const r of [jasonA, rest]) {
      expect(r.route.retry_policy.retry_host_predicate.map((p: { name: string }) => p.name)).toEqual(['envoy.retry_host_predicates.previous_hosts']);
      expect(Number(r.route.retry_policy.host_selection_retry_max_attempts)).toBe(5);
    }
    // A service without a VirtualService: one default route to its cluster.
    const ext = vhost(get(ROUTE_TYPE, '80'), 'api.example.com:80');
    expect(ext.domains).toEqual(['api.example.com', 'api.example.com:80']);
    expect(ext.include_request_attempt_count).toBe(true);
    expect(ext.routes).toMatchObject([{ name: 'default', match: { prefix: '/' }, route: { cluster: 'outbound|80||api.example.com' } }]);
  });

  it('adds an outbound listener per port: HCM with RDS over ADS for HTTP (cors and an empty fault filter, as Istio), tcp_proxy for TCP', () => {
    const l = get(LISTENER_TYPE, '0.0.0.0_9080');
    expect(l.address.socket_address).toMatchObject({ address: '0.0.0.0', port_value: 9080 });
    const hcm = l.filter_chains[0].filters[0].typed_config;
    expect(hcm.rds).toMatchObject({ route_config_name: '9080', config_source: { ads: {} } });
    const chain = ['envoy.filters.http.cors', 'envoy.filters.http.fault', 'envoy.filters.http.router'];
    expect(hcm.http_filters.map((f: Obj) => f.name)).toEqual(chain);
    // Istio's shape: cors and the (empty) fault filter are in every HTTP chain, whether a route has a policy or not.
    expect(get(LISTENER_TYPE, '0.0.0.0_80').filter_chains[0].filters[0].typed_config.http_filters.map((f: Obj) => f.name)).toEqual(chain);
    expect(hcm.http_filters[1].typed_config).toEqual({ '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' });
    const tcp = get(LISTENER_TYPE, '0.0.0.0_5432').filter_chains[0].filters[0];
    expect(tcp.name).toBe('envoy.filters.network.tcp_proxy');
    expect(tcp.typed_config.weighted_clusters.clusters).toEqual([
      { name: 'outbound|5432|a|db.example.com', weight: 75 },
      { name: 'outbound|5432|b|db.example.com', weight: 25 },
    ]);
  });

  it('the routes and clusters build in Strait (what a Strait sidecar accepts), per-route fault config and LOGICAL_DNS included', () => {
    const known = new Set(r.resources.get(CLUSTER_TYPE)!.keys());
    const rc = get(ROUTE_TYPE, '9080');
    const errors: FieldError[] = [];
    HttpRouteTable.compile(rc, '', known, errors);
    expect(errors).toEqual([]);
    const errors80: FieldError[] = [];
    HttpRouteTable.compile(get(ROUTE_TYPE, '80'), '', known, errors80);
    expect(errors80).toEqual([]);
    for (const name of known) {
      const ce: FieldError[] = [];
      buildClusterSpec(get(CLUSTER_TYPE, name), name, ce, []);
      expect(ce).toEqual([]);
    }
  });

  it('refuses DNS_ROUND_ROBIN with more than one endpoint (a LOGICAL_DNS cluster is one name), as Istio does', () => {
    fs.writeFileSync(path.join(dir, 'se2.yaml'), 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: { name: two }\nspec:\n  hosts: [two.example.com]\n  ports: [{ number: 5433, name: tcp, protocol: TCP }]\n  resolution: DNS_ROUND_ROBIN\n  endpoints: [{ address: a.example.com }, { address: b.example.com }]\n');
    r = loadResourceDir(dir, { istio });
    expect(problems('se2.yaml')).toEqual(expect.arrayContaining(['spec.endpoints: DNS_ROUND_ROBIN resolution takes at most one endpoint']));
  });

  it('warns about fields that change traffic and are not translated, by file and field path', () => {
    expect(problems('vs.yaml').filter((p) => p.includes('corsPolicy'))).toEqual([]);
    expect(problems('dr.yaml')).toContain('documents[2].spec.trafficPolicy.tls: TLS origination (mode SIMPLE) is not supported; traffic stays plain text');
  });

  it('keeps the last good version of a file whose objects turn invalid, and says which field is wrong', () => {
    fs.writeFileSync(path.join(dir, 'vs.yaml'), VS.replace('weight: 90', 'weight: -1').replace('fixedDelay: 2s', 'fixedDelay: soon').replace('maxAge: 24h', 'maxAge: a day'));
    r = loadResourceDir(dir, { istio });
    expect(problems('vs.yaml')).toEqual(
      expect.arrayContaining([
        'documents[0].spec.http[1].fault.delay.fixedDelay: is required (a duration like "5s")',
        'documents[0].spec.http[2].corsPolicy.maxAge: invalid duration "a day": write it like "1s", "100ms" or "1m"',
        'documents[0].spec.http[3].route[0].weight: must be a non-negative integer, got -1',
        ': invalid; its last good version keeps serving',
      ]),
    );
    expect(vhost(get(ROUTE_TYPE, '9080'), `${HOST}:9080`).routes[4].route.weighted_clusters.clusters[0].weight).toBe(90);
    // A fresh state has no good version to fall back on: the service gets its default route.
    r = loadResourceDir(dir, { istio: new IstioState({ outboundBind: '0.0.0.0' }) });
    expect(problems('vs.yaml')).toContain(': invalid and never loaded; nothing from it is served');
    expect(vhost(get(ROUTE_TYPE, '9080'), `${HOST}:9080`).routes).toMatchObject([{ name: 'default' }]);
  });
});
