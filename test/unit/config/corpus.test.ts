import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeResource, newContext, parseBootstrapText, parseConfigText } from '../../../src/config/index.js';
import { REPO } from '../../helpers/strait.js';

/** The compatibility corpus lives in shared/, beside the clone (CI puts it there too). */
const CORPUS = path.resolve(REPO, '..', 'shared', 'corpus');

describe('Envoy corpus', () => {
  it('is present', () => {
    // Fail loudly rather than pass vacuously when the corpus is missing.
    expect(fs.existsSync(path.join(CORPUS, 'envoy')), `corpus not found at ${CORPUS}`).toBe(true);
  });

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

  it.each(bootstraps)('decodes %s as a v3 Bootstrap with no errors', (file) => {
    const text = fs.readFileSync(path.join(CORPUS, 'envoy', file), 'utf8');
    const { bootstrap, errors } = parseBootstrapText(text, file, { keepErrors: true });
    expect(errors).toEqual([]);
    expect(bootstrap).toBeTypeOf('object');
  });

  it('decodes the templated test bootstrap once rendered', () => {
    const text = fs
      .readFileSync(path.join(CORPUS, 'envoy/google_com_proxy_port_0.yaml'), 'utf8')
      .replaceAll('{{ ip_any_address }}', '127.0.0.1')
      .replaceAll('{{ null_device_path }}', '/dev/null')
      .replaceAll('{{ dns_lookup_family }}', 'V4_ONLY');
    expect(parseBootstrapText(text, 'google_com_proxy_port_0.yaml', { keepErrors: true }).errors).toEqual([]);
  });

  // The protos shipped with @grpc/grpc-js-xds predate generic_proxy and Listener.fcds_config:
  // those two files must be refused with a clear, located reason, or kept opaque on request.
  it('names generic_proxy as an unknown type, or keeps it opaque with a warning', () => {
    const text = fs.readFileSync(path.join(CORPUS, 'envoy/generic_proxy_filter.yaml'), 'utf8');
    const strict = parseBootstrapText(text, 'generic_proxy_filter.yaml', { keepErrors: true });
    expect(strict.errors).toEqual([
      {
        path: 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config',
        message: 'unknown type "type.googleapis.com/envoy.extensions.filters.network.generic_proxy.v3.GenericProxy"',
      },
    ]);
    const lenient = parseBootstrapText(text, 'generic_proxy_filter.yaml', { keepErrors: true, unknownAny: 'opaque' });
    expect(lenient.errors).toEqual([]);
    expect(lenient.warnings.map((w) => w.path)).toContain('static_resources.listeners[0].filter_chains[0].filters[0].typed_config');
  });

  it('refuses the FCDS listener field this API version does not have, by path', () => {
    const doc = parseConfigText(fs.readFileSync(path.join(CORPUS, 'envoy/test-fcds/lds.yaml'), 'utf8'), 'lds.yaml') as { resources: unknown[] };
    const ctx = newContext();
    decodeResource('google.protobuf.Any', doc.resources[0], 'resources[0]', ctx);
    expect(ctx.errors).toEqual([{ path: 'resources[0].fcds_config', message: 'unknown field "fcds_config" in Listener' }]);
  });

  const resourceFiles = ['envoy-dynamic-cds-demo.yaml', 'envoy-dynamic-lds-demo.yaml', 'fcds/fcds.yaml', 'fcds/cds.yaml', 'fcds/rds.yaml'];

  it.each(resourceFiles)('decodes every resource of the xDS file %s', (file) => {
    const doc = (parseConfigText(fs.readFileSync(path.join(CORPUS, 'envoy', file), 'utf8'), file) ?? {}) as { resources?: unknown[] };
    const ctx = newContext();
    (doc.resources ?? []).forEach((r, i) => {
      const url = (r as { '@type': string })['@type'];
      decodeResource('google.protobuf.Any', r, `resources[${i}]`, ctx);
      expect(url).toMatch(/^type\.googleapis\.com\/envoy\./);
    });
    expect(ctx.errors).toEqual([]);
  });

  it('reads lowerCamelCase field names (istio bootstrapdump.json)', () => {
    const dump = JSON.parse(fs.readFileSync(path.join(CORPUS, 'istio/bootstrapdump.json'), 'utf8'));
    const ctx = newContext();
    const b = decodeResource('envoy.config.bootstrap.v3.Bootstrap', dump.bootstrap, 'bootstrap', ctx) as Record<string, any>;
    expect(ctx.errors).toEqual([]);
    // Output uses the proto (snake_case) names whatever the input used.
    expect(JSON.stringify(b)).toContain('user_agent_build_version');
    expect(JSON.stringify(b)).not.toContain('userAgentBuildVersion');
  });
});
