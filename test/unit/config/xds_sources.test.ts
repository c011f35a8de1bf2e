import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeResource, newContext, parseBootstrapText } from '../../../src/config/index.js';
import { loadAllExtensions } from '../../../src/config/preload.js';
import { RdsRouteTable } from '../../../src/filters/network/http_connection_manager/rds.js';
import { buildDynamicCluster, buildDynamicListener } from '../../../src/xds/client/dynamic_config.js';
import type { FieldError } from '../../../src/errors.js';
import { buildStaticConfig } from '../../../src/static_config.js';
import { buildXdsBootstrap, type SourceCheckMode } from '../../../src/xds/bootstrap.js';
import { readDiscoveryFile } from '../../../src/xds/client/file_subscription.js';
import { CLUSTER_TYPE, LISTENER_TYPE } from '../../../src/xds/proto.js';
import { REPO, runCli, tmpDir } from '../../helpers/strait.js';

// dynamic_resources with filesystem config sources (ConfigSource.path, path_config_source).

const dir = tmpDir('strait-xds-sources-');
const lds = path.join(dir, 'lds.yaml');
const cds = path.join(dir, 'cds.yaml');
fs.writeFileSync(lds, 'version_info: "1"\nresources: []\n');
fs.writeFileSync(cds, 'version_info: "1"\nresources: []\n');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Decodes a bootstrap like the CLI does, then builds its xDS part. */
function build(yaml: string, mode: SourceCheckMode = 'serve') {
  const { bootstrap, errors: decodeErrors } = parseBootstrapText(yaml, 'test.yaml', { keepErrors: true });
  const errors: FieldError[] = [...decodeErrors];
  const warnings: FieldError[] = [];
  const boot = buildXdsBootstrap(bootstrap as Record<string, unknown>, [], errors, warnings, mode);
  return { boot, errors, warnings };
}

describe('filesystem config sources in the bootstrap', () => {
  it('takes lds_config and cds_config from files with no control plane', () => {
    const { boot, errors } = build(`dynamic_resources:
  lds_config: { path: ${lds} }
  cds_config: { path_config_source: { path: ${cds}, watched_directory: { path: ${dir} } } }`);
    expect(errors).toEqual([]);
    expect(boot).toMatchObject({ ads: null, lds: { kind: 'file', path: lds, watchDir: null }, cds: { kind: 'file', path: cds, watchDir: dir } });
  });

  it('mixes a file for LDS with ADS for CDS', () => {
    const text = `dynamic_resources:
  ads_config: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: xds } } ] }
  lds_config: { path_config_source: { path: ${lds} } }
  cds_config: { ads: {} }
static_resources:
  clusters: [ { name: xds, type: STATIC, load_assignment: { cluster_name: xds, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 18000 } } } } ] } ] } } ]`;
    const { boot, errors } = build(text);
    // The control plane's cluster is a static one: build the whole config.
    expect(errors.filter((e) => !e.path.startsWith('dynamic_resources.ads_config.grpc_services'))).toEqual([]);
    expect(boot).toBeNull();
    const { bootstrap } = parseBootstrapText(text, 'test.yaml');
    const config = buildStaticConfig(bootstrap as Record<string, unknown>, 'test.yaml');
    expect(config.dynamic).toMatchObject({ ads: { target: 'ipv4:127.0.0.1:18000', delta: false }, lds: { kind: 'file', path: lds }, cds: { kind: 'ads' } });
  });

  it('refuses ads and path together (ConfigSource is a oneof)', () => {
    const { errors } = build(`dynamic_resources: { lds_config: { ads: {}, path: ${lds} } }`);
    expect(errors).toContainEqual({ path: 'dynamic_resources.lds_config.path', message: expect.stringContaining('only one of "ads" and "path"') });
  });

  it('refuses a relative path, by its field path', () => {
    const { boot, errors } = build('dynamic_resources: { lds_config: { path_config_source: { path: conf/lds.yaml } } }');
    expect(boot).toBeNull();
    expect(errors).toEqual([{ path: 'dynamic_resources.lds_config.path_config_source.path', message: '"conf/lds.yaml" is relative; give an absolute path' }]);
  });

  it('refuses a watched_directory that does not exist, and a missing file, as Envoy does at start-up', () => {
    const gone = path.join(dir, 'no-such-dir');
    const { boot, errors } = build(`dynamic_resources:
  cds_config: { path_config_source: { path: ${path.join(gone, 'cds.yaml')}, watched_directory: { path: ${gone} } } }`);
    expect(boot).toBeNull();
    expect(errors.map((e) => e.path)).toEqual(['dynamic_resources.cds_config.path_config_source.watched_directory.path', 'dynamic_resources.cds_config.path_config_source.path']);
    expect(errors[0]!.message).toContain(`directory ${gone} does not exist`);
    expect(errors[1]!.message).toContain('does not exist');
  });

  it('only warns about missing files in --mode validate (they belong to the host the config runs on)', () => {
    const { boot, errors, warnings } = build('dynamic_resources: { lds_config: { path: /nonexistent/strait/lds.yaml } }', 'validate');
    expect(errors).toEqual([]);
    expect(boot?.lds).toEqual({ kind: 'file', path: '/nonexistent/strait/lds.yaml', watchDir: null });
    expect(warnings).toContainEqual({ path: 'dynamic_resources.lds_config.path', message: expect.stringContaining('/nonexistent/strait/lds.yaml does not exist') });
  });

  it('still needs ads_config when one source uses ads', () => {
    const { errors } = build(`dynamic_resources: { lds_config: { path: ${lds} }, cds_config: { ads: {} } }`);
    expect(errors).toEqual([{ path: 'dynamic_resources.ads_config', message: 'is required: lds_config/cds_config/eds_config use ads' }]);
  });

  it('names api_config_source as not supported, offering the file source', () => {
    const { errors } = build('dynamic_resources: { lds_config: { api_config_source: { api_type: GRPC } } }');
    expect(errors).toEqual([{ path: 'dynamic_resources.lds_config', message: expect.stringContaining('path_config_source') }]);
  });

  it('accepts a static EDS cluster whose endpoints come from a file, with no dynamic_resources at all', () => {
    const text = `static_resources:
  clusters:
  - name: e
    type: EDS
    eds_cluster_config: { eds_config: { path_config_source: { path: ${cds} } } }`;
    const { bootstrap } = parseBootstrapText(text, 'test.yaml');
    const config = buildStaticConfig(bootstrap as Record<string, unknown>, 'test.yaml');
    expect(config.dynamic).toMatchObject({ ads: null, lds: null, cds: null });
  });
});

describe("Envoy's dynamic-from-filesystem demo (corpus)", () => {
  const demo = path.resolve(REPO, '..', 'shared', 'corpus', 'envoy', 'envoy-dynamic-filesystem-demo.yaml');

  it('validates: its /var/lib/envoy files are reported as warnings, not errors', () => {
    const { bootstrap, warnings } = parseBootstrapText(fs.readFileSync(demo, 'utf8'), demo, { keepErrors: true });
    const config = buildStaticConfig(bootstrap as Record<string, unknown>, demo, warnings, [], 'validate');
    expect(config.dynamic).toMatchObject({ ads: null, lds: { kind: 'file', path: '/var/lib/envoy/lds.yaml' }, cds: { kind: 'file', path: '/var/lib/envoy/cds.yaml' } });
  });

  it('refuses to serve while its files do not exist, naming each', () => {
    if (fs.existsSync('/var/lib/envoy/lds.yaml')) return; // a host that has them would start
    const { bootstrap } = parseBootstrapText(fs.readFileSync(demo, 'utf8'), demo, { keepErrors: true });
    expect(() => buildStaticConfig(bootstrap as Record<string, unknown>, demo)).toThrow(/dynamic_resources\.lds_config\.path: \/var\/lib\/envoy\/lds\.yaml does not exist/);
  });

  it("reads the demo's LDS and CDS files as DiscoveryResponses", () => {
    for (const [file, type, name] of [
      ['envoy-dynamic-lds-demo.yaml', LISTENER_TYPE, 'listener_0'],
      ['envoy-dynamic-cds-demo.yaml', CLUSTER_TYPE, 'example_proxy_cluster'],
    ] as const) {
      const r = readDiscoveryFile(path.join(path.dirname(demo), file), type, new Set());
      expect(r.ok).toBe(true);
      if (!r.ok) continue;
      expect(r.update.decodeProblems).toEqual([]);
      expect(r.update.resources.map((x) => x.name)).toEqual([name]);
    }
  });
});

describe('reading a DiscoveryResponse file', () => {
  const f = path.join(dir, 'read.yaml');
  const listener = (name: string, port: number | string) => `- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ${name}
  address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
`;

  it('lists what the previous version had and this one lacks as removed', () => {
    fs.writeFileSync(f, `version_info: v2\nresources:\n${listener('a', 1)}`);
    const r = readDiscoveryFile(f, LISTENER_TYPE, new Set(['a', 'b']));
    expect(r.ok && r.update).toMatchObject({ versionInfo: 'v2', removed: ['b'], rejected: [] });
  });

  it('refuses a bad resource by name with its field path, keeping it out of removed', () => {
    fs.writeFileSync(f, `version_info: v3\nresources:\n${listener('a', 70000)}${listener('b', 2)}`);
    const r = readDiscoveryFile(f, LISTENER_TYPE, new Set(['a', 'b']));
    expect(r.ok && r.update).toMatchObject({ rejected: ['a'], removed: [], decodeProblems: ['Listener "a": address.socket_address.port_value: value must be <= 65535'] });
    expect(r.ok && r.update.resources.map((x) => x.name)).toEqual(['b']);
  });

  it('refuses a resource of another type and a duplicate name', () => {
    fs.writeFileSync(f, `resources:\n${listener('a', 1)}${listener('a', 2)}- { "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c }\n`);
    const r = readDiscoveryFile(f, LISTENER_TYPE, new Set());
    expect(r.ok && r.update.decodeProblems).toEqual([
      'Listener "a": name: a second Listener named "a" (also resources[0])',
      'Listener "c": @type: is type.googleapis.com/envoy.config.cluster.v3.Cluster; this file is a Listener source',
    ]);
  });

  it('fails the whole file on a syntax error or an unknown top-level field', () => {
    fs.writeFileSync(f, 'resources: [ {');
    const bad = readDiscoveryFile(f, LISTENER_TYPE, new Set());
    expect(bad.ok).toBe(false);
    fs.writeFileSync(f, 'version_info: "1"\nresource: []\n');
    const typo = readDiscoveryFile(f, LISTENER_TYPE, new Set());
    expect(!typo.ok && typo.problems).toEqual([{ path: 'resource', message: expect.stringContaining('unknown field "resource"') }]);
  });
});

describe('--mode validate reads the LDS, CDS and EDS files it finds', () => {
  const vdir = tmpDir('strait-validate-files-');
  afterAll(() => fs.rmSync(vdir, { recursive: true, force: true }));
  const at = (name: string) => path.join(vdir, name);
  const listenerOn = (port: number) => `version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: l1
  address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
  filter_chains: [ { filters: [ { name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: e } } ] } ]
`;
  const edsCluster = `version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: e
  type: EDS
  connect_timeout: 1s
  eds_cluster_config: { eds_config: { path_config_source: { path: ${JSON.stringify(at('eds.yaml'))} } } }
`;
  const assignment = (port: string) => `version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: e
  endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1${port} } } } } ] } ]
`;
  const boot = () => {
    const f = at('boot.yaml');
    fs.writeFileSync(f, `node: { id: n, cluster: n }
dynamic_resources:
  lds_config: { path_config_source: { path: ${JSON.stringify(at('lds.yaml'))} } }
  cds_config: { path_config_source: { path: ${JSON.stringify(at('cds.yaml'))} } }
`);
    return f;
  };

  it('passes good files, and names each bad resource by file and field path', async () => {
    fs.writeFileSync(at('lds.yaml'), listenerOn(10000));
    fs.writeFileSync(at('cds.yaml'), edsCluster);
    fs.writeFileSync(at('eds.yaml'), assignment(', port_value: 9'));
    const ok = await runCli(['--config', boot(), '--mode', 'validate']);
    expect(ok.code, ok.stderr).toBe(0);

    fs.writeFileSync(at('lds.yaml'), listenerOn(70000));
    fs.writeFileSync(at('eds.yaml'), assignment(''));
    const bad = await runCli(['--config', boot(), '--mode', 'validate']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${at('lds.yaml')}: resources[0].address.socket_address.port_value: value must be <= 65535 (Listener "l1")`);
    expect(bad.stderr).toContain(`${at('eds.yaml')}: resources[0].endpoints[0].lb_endpoints[0].endpoint.address.socket_address`);
  });

  it('refuses a file that is not a DiscoveryResponse, and only warns about one that is absent', async () => {
    fs.writeFileSync(at('lds.yaml'), listenerOn(10000));
    fs.writeFileSync(at('eds.yaml'), assignment(', port_value: 9'));
    fs.writeFileSync(at('cds.yaml'), 'resources: [ {');
    const broken = await runCli(['--config', boot(), '--mode', 'validate']);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain(at('cds.yaml'));
    fs.rmSync(at('cds.yaml'));
    const absent = await runCli(['--config', boot(), '--mode', 'validate']);
    expect(absent.code, absent.stderr).toBe(0);
    expect(absent.stderr).toContain('does not exist');
  });
});

describe('SDS over ads in file-sourced resources without an ADS stream', () => {
  const sds = { tls_certificate_sds_secret_configs: [{ name: 'cert', sds_config: { ads: {} } }] };
  const decoded = (type: string, value: Record<string, unknown>) => {
    const ctx = newContext();
    const v = decodeResource('google.protobuf.Any', { '@type': type, ...value }, '', ctx) as Record<string, unknown>;
    expect(ctx.errors).toEqual([]);
    return v;
  };
  const cluster = decoded(CLUSTER_TYPE, {
    name: 'c',
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9 } } } }] }] },
    transport_socket: { name: 'tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', common_tls_context: sds } },
  });
  const listener = decoded(LISTENER_TYPE, {
    name: 'l',
    address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    filter_chains: [
      {
        filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 't', cluster: 'c' } }],
        transport_socket: { name: 'tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', common_tls_context: sds } },
      },
    ],
  });

  it('refuses them by field path (the secret would never come and they would warm forever)', async () => {
    await loadAllExtensions();
    const errors: FieldError[] = [];
    expect(buildDynamicCluster(cluster, false, errors, [])).not.toBeNull();
    expect(buildDynamicListener(listener, undefined, errors, [])).toBeNull();
    // Paths come back rooted at the resource ('.a.b'); resourceProblem() drops the dot when reporting.
    const message = 'SDS over ads, but the bootstrap has no dynamic_resources.ads_config';
    expect(errors.map((e) => ({ ...e, path: e.path.replace(/^\./, '') }))).toEqual([
      { path: 'transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.ads', message },
      { path: 'filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.ads', message },
    ]);
  });

  it('accepts them with ADS (they warm until the secret arrives)', async () => {
    await loadAllExtensions();
    const errors: FieldError[] = [];
    buildDynamicCluster(cluster, true, errors, []);
    buildDynamicListener(listener, (n) => new RdsRouteTable(n), errors, []);
    expect(errors).toEqual([]);
  });
});

describe('static listeners and clusters with SDS from a control plane', () => {
  const listenerWith = (sdsConfig: string) => `static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters: [ { name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c } } ]
      transport_socket: { name: tls, typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: { tls_certificate_sds_secret_configs: [ { name: cert, sds_config: ${sdsConfig} } ] } } }
  clusters:
  - name: c
    type: STATIC
    load_assignment: { cluster_name: c, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9 } } } } ] } ] }
  - name: sds-grpc
    type: STATIC
    load_assignment: { cluster_name: sds-grpc, endpoints: [ { lb_endpoints: [ { endpoint: { address: { pipe: { path: /run/sds.sock } } } } ] } ] }
`;
  const staticConfig = (text: string) => {
    const { bootstrap, errors } = parseBootstrapText(text, 'static.yaml', { keepErrors: true });
    expect(errors).toEqual([]);
    return () => buildStaticConfig(bootstrap as Record<string, unknown>, 'static.yaml');
  };

  it('refuses SDS over ads without dynamic_resources.ads_config, by the reference path', () => {
    expect(staticConfig(listenerWith('{ ads: {} }'))).toThrow(
      'static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.ads: SDS over ads needs dynamic_resources.ads_config',
    );
  });

  it('follows a gRPC SDS service with no dynamic_resources: the xDS side runs for the secrets alone', () => {
    const config = staticConfig(listenerWith('{ api_config_source: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: sds-grpc } } ] } }'))();
    expect(config.dynamic).toMatchObject({ ads: null, lds: null, cds: null });
    expect(config.dynamic!.staticSds!.map((r) => [r.name, r.source])).toEqual([['cert', { kind: 'grpc', cluster: 'sds-grpc', delta: false }]]);
  });
});
