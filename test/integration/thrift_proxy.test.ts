// Envoy's thrift_proxy (framed transport, binary protocol) on the RPC engine, driven by the real
// `thrift` library on both sides: routes by method and service name, strip_service_name,
// Envoy's thrift.<stat_prefix>.* stats, and payload_to_metadata choosing a subset per call.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, ENGINES, REPO, runCli, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const thrift = require('thrift');
const { Client, Processor } = require(path.join(REPO, 'test/fixtures/rpc/thrift_calculator.cjs'));
const OPTS = { transport: thrift.TFramedTransport, protocol: thrift.TBinaryProtocol };
/** The header transport (THeader, binary inside): the header block carries its own length. */
const HOPTS = { transport: thrift.TBufferedTransport, protocol: thrift.THeaderProtocol };
const CORPUS = path.resolve(REPO, '../shared/corpus/envoy');

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as net.AddressInfo).port;
}

/** A Calculator whose answers name the server (`tag`). */
function calculator(tag: string) {
  return {
    add: async (a: number, b: number) => a + b,
    echo: async (m: string) => `${tag}:${m}`,
    whoami: async (m: string) => `${tag}:${m}`,
    fail: async (m: string) => Promise.reject({ why: `${tag}:${m}` }),
  };
}

function connectTo(port: number, opts = OPTS) {
  const c = thrift.createConnection('127.0.0.1', port, opts);
  c.on('error', () => {});
  return c;
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: Error & { type?: number; oops?: boolean }) => e,
  );

function thriftListener(name: string, body: string): string {
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.thrift_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.v3.ThriftProxy
          stat_prefix: ${name}
${body}`;
}

/** A STATIC cluster with lb_subset_config whose endpoints carry envoy.lb metadata. */
function subsetCluster(name: string, eps: ReadonlyArray<readonly [number, string]>): string {
  return `  - name: ${name}
    type: STATIC
    connect_timeout: 1s
    lb_subset_config:
      fallback_policy: NO_FALLBACK
      subset_selectors:
      - keys: [default]
      - keys: [version]
    load_assignment:
      cluster_name: ${name}
      endpoints:
      - lb_endpoints:
${eps.map(([port, md]) => `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } }\n          metadata: { filter_metadata: { envoy.lb: ${md} } }`).join('\n')}
`;
}

/** `--mode validate` of a config with one thrift_proxy listener (`body`: its filter config) and cluster c. */
async function validateListener(name: string, body: string): Promise<{ code: number | null; stderr: string }> {
  const dir = tmpDir('strait-thrift-');
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, `static_resources:\n  listeners:\n${thriftListener(name, body)}  clusters:\n${staticCluster('c', [1])}`);
  try {
    return await runCli(['--config', file, '--mode', 'validate']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe.each(ENGINES)('thrift_proxy on the %s engine', (engine) => {
  const servers: net.Server[] = [];
  let strait: StraitProcess;
  let port: number;
  let subsetPort: number;
  let headerPort: number;
  let maxPort: number;

  beforeAll(async () => {
    const ports: Record<string, number> = {};
    // A multiplexed server exporting Calculator, and plain ones.
    const mp = new thrift.MultiplexedProcessor();
    mp.registerProcessor('Calculator', new Processor(calculator('mux')));
    const mux = thrift.createMultiplexServer(mp, OPTS);
    servers.push(mux);
    ports.mux = await listen(mux);
    for (const tag of ['plain', 'v1', 'dflt']) {
      const s = thrift.createServer(Processor, calculator(tag), OPTS);
      servers.push(s);
      ports[tag] = await listen(s);
    }
    for (const tag of ['hplain', 'hv1', 'hdflt']) {
      // Answers at once: the thrift library's THeader server loses its header state otherwise.
      const s = thrift.createServer(Processor, { echo: (m: string) => `${tag}:${m}`, whoami: (m: string) => `${tag}:${m}` }, HOPTS);
      servers.push(s);
      ports[tag] = await listen(s);
    }
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${thriftListener(
  'thr',
  `          transport: FRAMED
          protocol: BINARY
          route_config:
            name: local
            routes:
            - match: { method_name: "Calculator:add" }
              route: { cluster: mux }
            - match: { service_name: Calculator }
              route: { cluster: plain, strip_service_name: true }
            - match: { method_name: add, invert: true, headers: [{ name: x-tenant, present_match: true }] }
              route: { cluster: mux }
            - match: { method_name: add, invert: true }
              route: { cluster: plain }
`,
)}${thriftListener(
  'sub',
  `          route_config:
            routes:
            - match: { method_name: fail }
              route:
                weighted_clusters:
                  clusters:
                  - name: versioned
                    weight: 1
                    metadata_match: { filter_metadata: { envoy.lb: { version: "1.0" } } }
            - match: { method_name: "" }
              route: { cluster: versioned }
          thrift_filters:
          - name: envoy.filters.thrift.payload_to_metadata
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.filters.payload_to_metadata.v3.PayloadToMetadata
              request_rules:
              - method_name: whoami
                field_selector: { name: info, id: 2, child: { name: version, id: 1 } }
                on_present: { metadata_namespace: envoy.lb, key: version }
                on_missing: { metadata_namespace: envoy.lb, key: default, value: "true" }
          - name: envoy.filters.thrift.router
`,
)}${thriftListener(
  'hdr',
  `          transport: HEADER
          route_config:
            routes:
            - match: { service_name: Calculator }
              route: { cluster: hplain, strip_service_name: true }
            - match: { method_name: echo, headers: [{ name: x-route, string_match: { exact: plain } }] }
              route: { cluster: hplain }
            - match: { method_name: "" }
              route: { cluster_header: X-Cluster }
            - match: { method_name: "" }
              route: { cluster: hversioned }
          thrift_filters:
          - name: envoy.filters.thrift.header_to_metadata
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.filters.header_to_metadata.v3.HeaderToMetadata
              request_rules:
              - header: x-version
                on_present: { metadata_namespace: envoy.lb, key: version, type: STRING }
                on_missing: { metadata_namespace: envoy.lb, key: default, value: "true", type: STRING }
                remove: false
`,
)}${thriftListener(
  'max',
  `          max_requests_per_connection: 2
          route_config:
            routes:
            - match: { method_name: "" }
              route: { cluster: plain }
`,
)}  clusters:
${staticCluster('mux', [ports.mux!])}${staticCluster('plain', [ports.plain!])}${subsetCluster('versioned', [
        [ports.dflt!, '{ default: "true" }'],
        [ports.v1!, '{ version: "1.0" }'],
      ])}${staticCluster('hplain', [ports.hplain!])}${subsetCluster('hversioned', [
        [ports.hdflt!, '{ default: "true" }'],
        [ports.hv1!, '{ version: "1.0" }'],
      ])}`,
      { engine },
    );
    port = await strait.port('thr');
    subsetPort = await strait.port('sub');
    headerPort = await strait.port('hdr');
    maxPort = await strait.port('max');
  });

  afterAll(async () => {
    await strait?.stop();
    for (const s of servers) s.close();
  });

  it('routes by method_name, service_name with strip_service_name, and invert', async () => {
    const conn = connectTo(port);
    const mux = new thrift.Multiplexer().createClient('Calculator', Client, conn);
    // "Calculator:add" matches the first route: the multiplexed server gets the name as sent.
    expect(await mux.add(2, 3)).toBe(5);
    // "Calculator:echo": the service_name route; the plain server only knows "echo".
    expect(await mux.echo('hi')).toBe('plain:hi');
    conn.end();
    const c2 = connectTo(port);
    const plain = thrift.createClient(Client, c2);
    // "echo" is not "add": the inverted routes match; the one with a header matcher does not,
    // since framed binary Thrift carries no headers.
    expect(await plain.echo('x')).toBe('plain:x');
    // Plain "add" matches nothing: a TApplicationException as Envoy's local reply.
    const err = await failure(plain.add(1, 1));
    expect(err).toBeInstanceOf(thrift.Thrift.TApplicationException);
    expect(err!.type).toBe(thrift.Thrift.TApplicationExceptionType.UNKNOWN_METHOD);
    c2.end();
  });

  it("counts Envoy's thrift.<stat_prefix> request and response stats", async () => {
    const before = async (n: string) => (await strait.stat(`thrift.thr.${n}`)) ?? 0;
    const names = ['request', 'request_call', 'response', 'response_reply', 'response_success', 'response_error', 'response_exception', 'route_missing'];
    const b = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await before(n)] as const)));
    const conn = connectTo(port);
    const client = thrift.createClient(Client, conn);
    expect(await client.echo('s')).toBe('plain:s');
    const oops = await failure(client.fail('f'));
    expect(oops?.oops).toBe(true);
    expect(await failure(client.add(1, 2))).toBeInstanceOf(thrift.Thrift.TApplicationException);
    conn.end();
    const d = async (n: string) => (await before(n)) - b[n]!;
    expect(await d('request')).toBe(3);
    expect(await d('request_call')).toBe(3);
    expect(await d('response')).toBe(2); // relayed from upstream; the local reply is not one
    expect(await d('response_reply')).toBe(2);
    expect(await d('response_success')).toBe(1);
    expect(await d('response_error')).toBe(1); // the declared exception
    expect(await d('response_exception')).toBe(1); // the proxy's TApplicationException
    expect(await d('route_missing')).toBe(1);
  });

  it('payload_to_metadata picks the subset from a nested field of the call', async () => {
    const conn = connectTo(subsetPort);
    const client = thrift.createClient(Client, conn);
    expect(await client.whoami('a', { version: '1.0', n: 7 })).toBe('v1:a');
    // The field is missing: on_missing's default=true subset.
    expect(await client.whoami('b', { n: 7 })).toBe('dflt:b');
    expect(await client.whoami('c', null)).toBe('dflt:c');
    // A version no endpoint has, and NO_FALLBACK: no host, answered locally.
    const err = await failure(client.whoami('d', { version: '9.9' }));
    expect(err).toBeInstanceOf(thrift.Thrift.TApplicationException);
    expect(await strait.stat('thrift.sub.no_healthy_upstream')).toBe(1);
    // Calls the rule does not match carry no metadata: no subset (NO_FALLBACK) either.
    expect(await failure(client.echo('e'))).toBeInstanceOf(thrift.Thrift.TApplicationException);
    conn.end();
  });

  it("a weighted cluster's own metadata_match picks its subset", async () => {
    const conn = connectTo(subsetPort);
    const client = thrift.createClient(Client, conn);
    // `fail` answers with a declared exception naming the server that ran it.
    for (let i = 0; i < 3; i++) expect((await failure(client.fail(`w${i}`)))?.message).toBe(`v1:w${i}`);
    conn.end();
  });

  it('reads THeader headers: header_to_metadata picks the subset, routes match them, local replies are THeader', async () => {
    const conn = connectTo(headerPort, HOPTS);
    const client = thrift.createClient(Client, conn);
    client.output.setWriteHeader('x-version', '1.0');
    expect(await client.whoami('a', null)).toBe('hv1:a');
    client.output.clearWriteHeaders();
    expect(await client.whoami('b', null)).toBe('hdflt:b'); // on_missing: default=true
    client.output.setWriteHeader('x-route', 'plain');
    expect(await client.echo('c')).toBe('hplain:c');
    client.output.clearWriteHeaders();
    client.output.setWriteHeader('x-version', '9.9');
    // No endpoint has version 9.9 (NO_FALLBACK): the proxy's TApplicationException, in THeader.
    const err = await failure(client.whoami('d', null));
    expect(err).toBeInstanceOf(thrift.Thrift.TApplicationException);
    expect(await strait.stat('thrift.hdr.no_healthy_upstream')).toBe(1);
    // The connection is still usable after the local reply: the reply's framing was right.
    client.output.setWriteHeader('x-version', '1.0');
    expect(await client.whoami('e', null)).toBe('hv1:e');
    // cluster_header: the cluster the header names; a request without it went to the next route.
    client.output.setWriteHeader('x-cluster', 'hplain');
    expect(await client.whoami('f', null)).toBe('hplain:f');
    client.output.setWriteHeader('x-cluster', 'nope');
    const unknown = await failure(client.whoami('g', null));
    expect(unknown).toBeInstanceOf(thrift.Thrift.TApplicationException);
    expect(unknown!.message).toContain("unknown cluster 'nope'");
    expect(await strait.stat('thrift.hdr.unknown_cluster')).toBe(1);
    conn.end();
  });

  it('closes a connection after max_requests_per_connection calls, once they are answered', async () => {
    const conn = connectTo(maxPort);
    const closed = new Promise<void>((r) => conn.on('close', () => r()));
    const client = thrift.createClient(Client, conn);
    const both = await Promise.all([client.echo('1'), client.echo('2')]);
    expect(both).toEqual(['plain:1', 'plain:2']);
    await closed;
    expect(await strait.stat('thrift.max.downstream_cx_max_requests')).toBe(1);
  });

  it('strips the service name of a multiplexed THeader call, keeping its header block', async () => {
    const conn = connectTo(headerPort, HOPTS);
    const client = new thrift.Multiplexer().createClient('Calculator', Client, conn);
    client.output.setWriteHeader('x-version', '1.0');
    expect(await client.echo('m')).toBe('hplain:m');
    conn.end();
  });
});

describe('thrift_proxy config', () => {
  it('validates the corpus payload-to-metadata-filter.yaml', async () => {
    const r = await runCli(['--config', path.join(CORPUS, 'payload-to-metadata-filter.yaml'), '--mode', 'validate']);
    expect(r.stderr).not.toContain('invalid configuration');
    expect(r.code).toBe(0);
  });

  it('validates the corpus header-to-metadata-filter.yaml', async () => {
    const r = await runCli(['--config', path.join(CORPUS, 'header-to-metadata-filter.yaml'), '--mode', 'validate']);
    expect(r.stderr).not.toContain('invalid configuration');
    expect(r.code).toBe(0);
  });

  it('refuses a payload_to_metadata rule without what it needs, by field path', async () => {
    const r = await validateListener('bad', `          route_config:
            routes:
            - match: { method_name: "" }
              route: { cluster: c }
          thrift_filters:
          - name: envoy.filters.thrift.payload_to_metadata
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.filters.payload_to_metadata.v3.PayloadToMetadata
              request_rules:
              - method_name: foo
                field_selector: { name: info, id: 2 }
                on_missing: { metadata_namespace: envoy.lb, key: default }
              - service_name: Svc
                field_selector: { name: info, id: 2 }
              - method_name: bar
                field_selector: { name: a, id: 1, child: { name: b, id: 40000 } }
                on_present: { metadata_namespace: app.meta, key: k }
`);
    expect(r.code).not.toBe(0);
    const at = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.thrift_filters[0].typed_config.request_rules';
    for (const p of [
      `${at}[0].on_missing.value: on_missing needs a non-empty value`,
      `${at}[1]: needs on_present or on_missing`,
      `${at}[2].field_selector.child.id: must be a Thrift field id`,
    ])
      expect(r.stderr).toContain(p);
  });

  it('accepts metadata for namespaces nothing reads, with a warning naming the field', async () => {
    const r = await validateListener('ns', `          route_config:
            routes:
            - match: { method_name: "" }
              route: { cluster: c }
          thrift_filters:
          - name: envoy.filters.thrift.payload_to_metadata
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.filters.payload_to_metadata.v3.PayloadToMetadata
              request_rules:
              - method_name: bar
                field_selector: { name: a, id: 1 }
                on_present: { metadata_namespace: app.meta, key: k }
`);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('thrift_filters[0].typed_config.request_rules[0].on_present.metadata_namespace: metadata in namespace "app.meta" is not kept');
  });

  it('refuses what it does not implement, by field path', async () => {
    const r = await validateListener('bad', `          transport: UNFRAMED
          protocol: COMPACT
          max_requests_per_connection: -1
          route_config:
            routes:
            - match: { method_name: "", invert: true }
              route: { cluster: c }
            - match: { method_name: x }
              route: { cluster: c, request_mirror_policies: [{ cluster: c }] }
            - match: {}
              route: { cluster: nope }
          thrift_filters:
          - name: envoy.filters.thrift.header_to_metadata
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.filters.header_to_metadata.v3.HeaderToMetadata
              request_rules: [{ header: x-version, remove: true, on_present: { metadata_namespace: envoy.lb, key: version, type: PROTOBUF_VALUE } }]
          - name: envoy.filters.thrift.rate_limit
`);
    expect(r.code).not.toBe(0);
    const at = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
    for (const p of [
      `${at}.transport: UNFRAMED is not supported`,
      `${at}.protocol: COMPACT is not supported`,
      `${at}.max_requests_per_connection: `,
      `${at}.route_config.routes[0].match.invert: cannot invert an empty method_name`,
      `${at}.route_config.routes[1].route.request_mirror_policies: is not supported yet`,
      `${at}.route_config.routes[2].match: needs method_name or service_name`,
      `${at}.route_config.routes[2].route.cluster: unknown cluster "nope"`,
      `${at}.thrift_filters[0].typed_config.request_rules[0].remove: is not supported yet`,
      `${at}.thrift_filters[0].typed_config.request_rules[0].on_present.type: PROTOBUF_VALUE is not supported`,
      `${at}.thrift_filters[1].name: thrift filter "envoy.filters.thrift.rate_limit" is not supported`,
    ])
      expect(r.stderr).toContain(p);
  });
});
