import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { decodeResource, loadBootstrapFile, newContext, parseBootstrapText, parseConfigText, redact, type DecodeContext } from '../../../src/config/index.js';
import { REPO } from '../../helpers/strait.js';

/** The compatibility corpus lives in shared/, beside the clone (CI puts it there too). */
const CORPUS = path.resolve(REPO, '..', 'shared', 'corpus');
if (!fs.existsSync(path.join(CORPUS, 'envoy'))) {
  // Fail loudly rather than pass vacuously when the corpus is missing.
  throw new Error(`compatibility corpus not found at ${CORPUS} (expected shared/corpus beside the repository)`);
}

const read = (rel: string) => fs.readFileSync(path.join(CORPUS, rel), 'utf8');
const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';

/** Unknown-type warnings by type URL, the way a proxy would report what it skipped. */
function unknownTypes(warnings: readonly FieldError[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const w of warnings) {
    const m = /^unknown type "([^"]+)"/.exec(w.message);
    if (m) counts[m[1]!] = (counts[m[1]!] ?? 0) + 1;
  }
  return counts;
}

describe('Envoy corpus: static bootstraps', () => {
  const bootstraps = [
    'envoy-demo.yaml',
    'envoy-demo.2ab0cabe.yaml',
    'ads.yaml',
    'envoy-dynamic-control-plane-demo.yaml',
    'envoy-dynamic-filesystem-demo.yaml',
    'front-envoy.yaml',
    'front-proxy-envoy.yaml',
    'fault-injection-envoy.yaml',
    'header-to-metadata-filter.yaml',
    'payload-to-metadata-filter.yaml',
    'test-fcds/bootstrap.yaml',
  ];

  it.each(bootstraps)('loads %s as a v3 Bootstrap with no errors', (file) => {
    const { bootstrap, errors } = loadBootstrapFile(path.join(CORPUS, 'envoy', file), { keepErrors: true });
    expect(errors).toEqual([]);
    expect(bootstrap).toBeTypeOf('object');
  });

  it('loads the templated test bootstrap once rendered', () => {
    const text = read('envoy/google_com_proxy_port_0.yaml')
      .replaceAll('{{ ip_any_address }}', '127.0.0.1')
      .replaceAll('{{ null_device_path }}', '/dev/null')
      .replaceAll('{{ dns_lookup_family }}', 'V4_ONLY');
    const { bootstrap, errors } = parseBootstrapText(text, 'google_com_proxy_port_0.yaml', { keepErrors: true });
    expect(errors).toEqual([]);
    expect(bootstrap.admin?.address?.socket_address).toEqual({ address: '127.0.0.1', port_value: 0 });
  });

  it('reads front-envoy.yaml the way Envoy does: lowercase enums, a map for a list, deprecated fields noted', () => {
    const { bootstrap, warnings } = loadBootstrapFile(path.join(CORPUS, 'envoy/front-envoy.yaml'));
    const cluster = bootstrap.static_resources!.clusters![0]!;
    expect(cluster.type).toBe('STRICT_DNS');
    expect(cluster.lb_policy).toBe('ROUND_ROBIN');
    expect(warnings).toContainEqual({
      path: 'static_resources.listeners[1].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates',
      message: 'a single object given for a list; read as a one-element list',
    });
    expect(warnings.map((w) => w.message)).toContain('deprecated field "access_log_path" of Admin');
    expect(warnings.map((w) => w.message)).toContain('deprecated field "http2_protocol_options" of Cluster');
  });

  // The protos shipped with @grpc/grpc-js-xds predate generic_proxy: the file is refused with a
  // clear, located reason, or kept opaque on request.
  it('names generic_proxy as an unknown type, or keeps it opaque with a warning', () => {
    const text = read('envoy/generic_proxy_filter.yaml');
    const strict = parseBootstrapText(text, 'generic_proxy_filter.yaml', { keepErrors: true });
    expect(strict.errors).toEqual([
      {
        path: 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config',
        message: 'unknown type "type.googleapis.com/envoy.extensions.filters.network.generic_proxy.v3.GenericProxy"',
      },
    ]);
    const lenient = parseBootstrapText(text, 'generic_proxy_filter.yaml', { unknownAny: 'opaque' });
    expect(lenient.errors).toEqual([]);
    expect(unknownTypes(lenient.warnings)).toEqual({ 'type.googleapis.com/envoy.extensions.filters.network.generic_proxy.v3.GenericProxy': 1 });
  });

  it('throws one ConfigError naming the file and every problem', () => {
    const file = path.join(REPO, 'test/fixtures/config/bad-bootstrap.yaml');
    let caught: unknown;
    try {
      loadBootstrapFile(file);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'STRAIT_ERR_CONFIG' });
    const { errors, message } = caught as { errors: FieldError[]; message: string };
    expect(message).toContain('bad-bootstrap.yaml');
    expect(errors).toEqual([
      { path: 'static_resources.listeners[0].address.socket_address.port_value', message: 'value must be <= 65535' },
      { path: 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.idle_timeout', message: 'invalid duration string "10 seconds": write it like "1s", "0.25s" or "1.5s"' },
      { path: 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix', message: 'is required (must be at least 1 character)' },
      { path: 'static_resources.clusters[0].lb_policy', message: expect.stringContaining('invalid LbPolicy value string "ROUND_ROBINS"') },
      { path: 'static_resources.clusters[0].conect_timeout', message: 'unknown field "conect_timeout" in Cluster (did you mean "connect_timeout"?)' },
      { path: 'static_resources.clusters[0].name', message: 'is required (must be at least 1 character)' },
    ]);
  });
});

describe('Envoy corpus: xDS resource files', () => {
  function decodeFile(file: string, ctx: DecodeContext) {
    const doc = (parseConfigText(read(`envoy/${file}`), file) ?? {}) as { version_info?: string; resources?: unknown[] };
    return (doc.resources ?? []).map((r, i) => decodeResource('google.protobuf.Any', r, `resources[${i}]`, ctx) as Record<string, unknown>);
  }

  it.each(['envoy-dynamic-cds-demo.yaml', 'envoy-dynamic-lds-demo.yaml', 'fcds/fcds.yaml'])('decodes every resource of %s', (file) => {
    const ctx = newContext();
    const resources = decodeFile(file, ctx);
    expect(ctx.errors).toEqual([]);
    expect(resources.length).toBeGreaterThan(0);
    for (const r of resources) expect(r['@type']).toMatch(/^type\.googleapis\.com\/envoy\.config\./);
  });

  it.each(['fcds/cds.yaml', 'fcds/rds.yaml'])('reads %s (version_info only) as an empty set', (file) => {
    const ctx = newContext();
    expect(decodeFile(file, ctx)).toEqual([]);
    expect(ctx.errors).toEqual([]);
  });

  // Listener.fcds_config is newer than the protos @grpc/grpc-js-xds ships.
  it('refuses the FCDS listener field this API version lacks, by path, and decodes the rest', () => {
    const ctx = newContext();
    const [listener] = decodeFile('test-fcds/lds.yaml', ctx);
    expect(ctx.errors).toEqual([{ path: 'resources[0].fcds_config', message: 'unknown field "fcds_config" in Listener' }]);
    expect(listener).toMatchObject({ '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener', name: expect.any(String), filter_chain_matcher: expect.any(Object) });
  });
});

describe('Istio corpus', () => {
  it('reads lowerCamelCase field names (bootstrapdump.json) and writes snake_case', () => {
    const dump = JSON.parse(read('istio/bootstrapdump.json'));
    const ctx = newContext();
    const b = decodeResource(BOOTSTRAP, dump.bootstrap, 'bootstrap', ctx);
    expect(ctx.errors).toEqual([]);
    expect(JSON.stringify(b)).toContain('user_agent_build_version');
    expect(JSON.stringify(b)).not.toContain('userAgentBuildVersion');
  });

  const goldens = ['default', 'all', 'lrs', 'stats_inclusion', 'tracing_datadog', 'tracing_zipkin', 'authsds', 'xdsproxy'];
  it.each(goldens)('loads the rendered %s_golden.json bootstrap strictly', (name) => {
    const { errors, warnings } = loadBootstrapFile(path.join(CORPUS, `istio/${name}_golden.json`), { keepErrors: true });
    expect(errors).toEqual([]);
    expect(unknownTypes(warnings)).toEqual({});
  });

  it('keeps the Istio-private bootstrap extension of ambient_golden.json opaque when asked to', () => {
    const file = path.join(CORPUS, 'istio/ambient_golden.json');
    expect(loadBootstrapFile(file, { keepErrors: true }).errors).toEqual([
      { path: 'bootstrap_extensions[0].typed_config', message: 'unknown type "type.googleapis.com/istio.workload.BootstrapExtension" (in a udpa.type.v1.TypedStruct)' },
    ]);
    const { bootstrap, warnings } = loadBootstrapFile(file, { unknownAny: 'opaque' });
    expect(unknownTypes(warnings)).toEqual({ 'type.googleapis.com/istio.workload.BootstrapExtension': 1 });
    // The upstream InternalListener, also wrapped in a TypedStruct by Istio, is unwrapped.
    expect(bootstrap.bootstrap_extensions![1]!.typed_config).toEqual({
      '@type': 'type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener',
      buffer_size_kb: 64,
    });
  });

  /**
   * config_dump output is not valid input in two places: ECDS entries without typed_config
   * (TypedExtensionConfig requires one) and a locality weight of 0 (the proto says >= 1).
   */
  const dumps: Array<[string, Record<string, number>, FieldError[]]> = [
    [
      'configdump.yaml',
      {
        'type.googleapis.com/stats.PluginConfig': 45,
        'type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange': 24,
        'type.googleapis.com/istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig': 12,
        'type.googleapis.com/io.istio.http.connect_authority.Config': 2,
        'type.googleapis.com/io.istio.http.connect_baggage.Config': 1,
        'type.googleapis.com/istio.set_internal_dst_address.v1.Config': 2,
      },
      [],
    ],
    ['compare-configdump.json', { 'type.googleapis.com/io.istio.http.peer_metadata.Config': 2, 'type.googleapis.com/stats.PluginConfig': 1 }, []],
    [
      'proxyconfig-config_dump.json',
      { 'type.googleapis.com/io.istio.http.peer_metadata.Config': 3, 'type.googleapis.com/stats.PluginConfig': 4, 'type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange': 1 },
      [{ path: 'configs[2].static_endpoint_configs[0].endpoint_config.endpoints[0].load_balancing_weight', message: 'value must be >= 1' }],
    ],
    ['endpoint-configdump.json', {}, []],
    ['secret-istio-config_dump.json', {}, []],
    ['istio-gateway-http-route-prefix-configdump.json', {}, []],
    ['k8s-gateway-http-route-path-prefix-configdump.json', {}, []],
    [
      'ecds-configdump.json',
      {},
      ['configs[1].ecds_filters[0]', 'configs[1].ecds_filters[1]', 'configs[2].ecds_filters[0]', 'configs[2].ecds_filters[1]'].map((p) => ({ path: `${p}.ecds_filter.typed_config`, message: 'is required' })),
    ],
  ];

  it.each(dumps)('decodes the config_dump %s, Istio-private types kept opaque', (file, expectedUnknown, expectedErrors) => {
    const ctx = newContext('opaque');
    decodeResource('envoy.admin.v3.ConfigDump', parseConfigText(read(`istio/${file}`), file), '', ctx);
    expect(ctx.errors).toEqual(expectedErrors);
    expect(unknownTypes(ctx.warnings)).toEqual(expectedUnknown);
  });
});

describe('redaction', () => {
  it('replaces the inline private key of the front proxy, and nothing else', () => {
    const { bootstrap } = loadBootstrapFile(path.join(CORPUS, 'envoy/front-proxy-envoy.yaml'));
    const r = redact(BOOTSTRAP, bootstrap) as typeof bootstrap;
    const tls = (b: typeof bootstrap) => (b.static_resources!.listeners![1]!.filter_chains![0]!.transport_socket!.typed_config as any).common_tls_context.tls_certificates[0];
    expect(tls(bootstrap).private_key.inline_string).toContain('PRIVATE KEY');
    expect(tls(r).private_key).toBe('[redacted]');
    expect(tls(r).certificate_chain).toEqual(tls(bootstrap).certificate_chain);
    expect(JSON.stringify(r)).not.toContain('PRIVATE KEY');
    // A deep copy: the decoded config is untouched, and unrelated parts compare equal.
    expect(r.static_resources!.clusters).toEqual(bootstrap.static_resources!.clusters);
    expect(r.static_resources!.clusters).not.toBe(bootstrap.static_resources!.clusters);
  });

  it('follows Any and TypedStruct values by their @type', () => {
    const secret = { name: 's', tls_certificate: { certificate_chain: { inline_string: 'CERT' }, private_key: { inline_string: 'KEY' }, password: { inline_string: 'PW' } } };
    const url = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
    const viaAny = redact('envoy.config.core.v3.TypedExtensionConfig', { name: 'x', typed_config: { '@type': url, ...secret } }) as any;
    expect(viaAny.typed_config.tls_certificate).toEqual({ certificate_chain: { inline_string: 'CERT' }, private_key: '[redacted]', password: '[redacted]' });
    const viaTs = redact('envoy.config.core.v3.TypedExtensionConfig', {
      name: 'x',
      typed_config: { '@type': 'type.googleapis.com/xds.type.v3.TypedStruct', type_url: url, value: secret },
    }) as any;
    expect(viaTs.typed_config.value.tls_certificate.private_key).toBe('[redacted]');
  });

  it('redacts the secrets of an Istio secret config_dump', () => {
    const dump = decodeResource('envoy.admin.v3.ConfigDump', JSON.parse(read('istio/secret-istio-config_dump.json')), '', newContext());
    const r = JSON.stringify(redact('envoy.admin.v3.ConfigDump', dump));
    expect(JSON.stringify(dump)).toContain('inline_bytes');
    expect(r).toContain('"private_key":"[redacted]"');
  });
});
