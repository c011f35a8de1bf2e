import { describe, expect, it } from 'vitest';
import { decodeResource, durationMs, newContext, parseBootstrapText, redact } from '../../../src/config/index.js';

function decode(type: string, value: unknown, unknownAny: 'error' | 'opaque' = 'error') {
  const ctx = newContext(unknownAny);
  const out = decodeResource(type, value, 'x', ctx) as Record<string, any>;
  return { out, errors: ctx.errors, warnings: ctx.warnings };
}

const CLUSTER = 'envoy.config.cluster.v3.Cluster';

describe('proto3 JSON mapping', () => {
  it('accepts snake_case and lowerCamel names and writes snake_case', () => {
    const { out, errors } = decode(CLUSTER, { name: 'a', connectTimeout: '2s', lb_policy: 'RANDOM' });
    expect(errors).toEqual([]);
    expect(out).toEqual({ name: 'a', connect_timeout: '2s', lb_policy: 'RANDOM' });
  });

  it('rejects a field given under both names', () => {
    expect(decode(CLUSTER, { name: 'a', connect_timeout: '1s', connectTimeout: '2s' }).errors[0]).toMatchObject({ path: 'x.connect_timeout', message: expect.stringContaining('twice') });
  });

  it('names an unknown field and suggests the close one', () => {
    const { errors } = decode(CLUSTER, { name: 'a', conect_timeout: '1s' });
    expect(errors).toEqual([{ path: 'x.conect_timeout', message: 'unknown field "conect_timeout" in Cluster (did you mean "connect_timeout"?)' }]);
  });

  it('reads enums by name in any case or by number, and lists valid names otherwise', () => {
    expect(decode(CLUSTER, { name: 'a', type: 'strict_dns', lb_policy: 3 }).out).toMatchObject({ type: 'STRICT_DNS', lb_policy: 'RANDOM' });
    const { errors } = decode(CLUSTER, { name: 'a', type: 'DNS' });
    expect(errors[0]!.path).toBe('x.type');
    expect(errors[0]!.message).toContain('STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST');
  });

  it('normalizes durations and converts them to milliseconds', () => {
    expect(decode(CLUSTER, { name: 'a', connect_timeout: '0.25s' }).out.connect_timeout).toBe('0.250s');
    expect(decode(CLUSTER, { name: 'a', connect_timeout: { seconds: 3, nanos: 500000 } }).out.connect_timeout).toBe('3.000500s');
    expect(durationMs('1.500s')).toBe(1500);
    expect(decode(CLUSTER, { name: 'a', connect_timeout: 5 }).errors[0]!.message).toContain('invalid duration');
    expect(decode(CLUSTER, { name: 'a', connect_timeout: '5m' }).errors[0]!.path).toBe('x.connect_timeout');
  });

  it('unwraps wrapper types given plain or as {value}', () => {
    const { out, errors } = decode(CLUSTER, { name: 'a', per_connection_buffer_limit_bytes: 1024, respect_dns_ttl: true, max_requests_per_connection: { value: 7 } });
    expect(errors).toEqual([]);
    expect(out.per_connection_buffer_limit_bytes).toBe(1024);
    expect(out.max_requests_per_connection).toBe(7);
  });

  it('checks integer types and ranges', () => {
    expect(decode(CLUSTER, { name: 'a', per_connection_buffer_limit_bytes: -1 }).errors[0]!.message).toContain('out of range for uint32');
    expect(decode(CLUSTER, { name: 'a', per_connection_buffer_limit_bytes: 1.5 }).errors[0]!.message).toContain('expected uint32');
    expect(decode(CLUSTER, { name: 'a', per_connection_buffer_limit_bytes: '42' }).out.per_connection_buffer_limit_bytes).toBe(42);
  });

  it('enforces validate rules from the protos', () => {
    // Cluster.name: string min_len 1; TcpProxy.max_connect_attempts: uint32 gte 1.
    expect(decode(CLUSTER, {}).errors).toContainEqual({ path: 'x.name', message: 'is required (must be at least 1 character)' });
    const tcp = decode('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', { stat_prefix: 's', cluster: 'c', max_connect_attempts: 0 });
    expect(tcp.errors).toEqual([{ path: 'x.max_connect_attempts', message: 'value must be >= 1' }]);
  });

  it('rejects two members of one oneof and requires a required oneof', () => {
    const T = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
    expect(decode(T, { stat_prefix: 's', cluster: 'c', weighted_clusters: { clusters: [{ name: 'c', weight: 1 }] } }).errors[0]!.message).toContain('only one of "cluster" and "weighted_clusters"');
    expect(decode(T, { stat_prefix: 's' }).errors).toEqual([{ path: 'x', message: 'one of "cluster", "weighted_clusters" is required' }]);
  });

  it('decodes Any by @type, and refuses or keeps an unknown one', () => {
    const filter = { name: 'f', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', statPrefix: 's', cluster: 'c', idle_timeout: '1s' } };
    const F = 'envoy.config.listener.v3.Filter';
    expect(decode(F, filter).out.typed_config).toEqual({ '@type': filter.typed_config['@type'], stat_prefix: 's', cluster: 'c', idle_timeout: '1s' });
    const unknown = { name: 'f', typed_config: { '@type': 'type.googleapis.com/istio.stats.PluginConfig', foo: 1 } };
    expect(decode(F, unknown).errors[0]).toEqual({ path: 'x.typed_config', message: 'unknown type "type.googleapis.com/istio.stats.PluginConfig"' });
    const opaque = decode(F, unknown, 'opaque');
    expect(opaque.errors).toEqual([]);
    expect(opaque.out.typed_config).toEqual(unknown.typed_config);
    expect(opaque.warnings).toHaveLength(1);
  });

  it('unwraps a TypedStruct of a known type into that message', () => {
    const { out, errors } = decode('envoy.config.listener.v3.Filter', {
      name: 'f',
      typed_config: {
        '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct',
        type_url: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
        value: { stat_prefix: 's', cluster: 'c' },
      },
    });
    expect(errors).toEqual([]);
    expect(out.typed_config).toEqual({ '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 's', cluster: 'c' });
  });

  it('reads a single object given for a list, with a warning', () => {
    const { out, errors, warnings } = decode(CLUSTER, { name: 'a', health_checks: { timeout: '1s', interval: '1s', healthy_threshold: 1, unhealthy_threshold: 2, tcp_health_check: {} } });
    expect(errors).toEqual([]);
    expect(out.health_checks).toHaveLength(1);
    expect(warnings[0]!.path).toBe('x.health_checks');
  });

  it('reports YAML syntax errors with their position', () => {
    expect(() => parseBootstrapText('a: [1, 2\nb: 3\n', 'bad.yaml')).toThrow(/line \d+/);
  });

  it('redacts every field the protos mark sensitive, through Any', () => {
    const secret = {
      name: 's',
      tls_certificate: { certificate_chain: { inline_string: 'CERT' }, private_key: { inline_string: 'KEY' }, password: { inline_string: 'PW' } },
    };
    const r = redact('envoy.extensions.transport_sockets.tls.v3.Secret', secret) as any;
    expect(r.tls_certificate).toEqual({ certificate_chain: { inline_string: 'CERT' }, private_key: '[redacted]', password: '[redacted]' });
    const viaAny = redact('envoy.config.core.v3.TypedExtensionConfig', {
      name: 'x',
      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', ...secret },
    }) as any;
    expect(viaAny.typed_config.tls_certificate.private_key).toBe('[redacted]');
  });
});
