import protobuf from 'protobufjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeResource, durationMs, fromJson, getRoot, newContext, parseBootstrapText } from '../../../src/config/index.js';

function decode(type: string, value: unknown, unknownAny: 'error' | 'opaque' = 'error') {
  const ctx = newContext(unknownAny);
  const out = decodeResource(type, value, 'x', ctx) as Record<string, any>;
  return { out, errors: ctx.errors, warnings: ctx.warnings };
}

const CLUSTER = 'envoy.config.cluster.v3.Cluster';
const TCP = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const TCP_URL = `type.googleapis.com/${TCP}`;
const FILTER = 'envoy.config.listener.v3.Filter';

/** Rules Envoy's protos do not exercise, on a test message added to the registry's root. */
const TEST_PROTO = `
syntax = "proto3";
package strait.test;
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/struct.proto";
message T {
  string short = 1 [(validate.rules).string = {max_len: 3}];
  string pre = 2 [(validate.rules).string = {prefix: "/", ignore_empty: true}];
  string bytes_min = 3 [(validate.rules).string = {min_bytes: 2, ignore_empty: true}];
  map<uint32, T> by_port = 4;
  map<bool, string> flags = 5;
  map<string, T> by_name = 6;
  repeated string names = 7 [(validate.rules).repeated = {max_items: 2, items {string {min_len: 2}}}];
  double ratio = 8 [(validate.rules).double = {gte: 0, lte: 1}];
  float f = 9;
  bytes raw = 10;
  int64 big = 11;
  uint64 ubig = 12;
  bool on = 13;
  google.protobuf.Timestamp at = 14;
  google.protobuf.FieldMask mask = 15;
  google.protobuf.Empty nothing = 16;
  google.protobuf.Duration d = 17 [(validate.rules).duration = {lte {seconds: 10}}];
  google.protobuf.Value any_json = 18;
  google.protobuf.ListValue list = 19;
  int32 i = 20;
  enum Kind { A = 0; B = 1; }
  Kind kind = 21;
}
`;

beforeAll(() => {
  const root = getRoot();
  if (!root.lookup('strait.test.T')) {
    protobuf.parse(TEST_PROTO, root, { keepCase: true });
    root.resolveAll();
  }
});

const T = 'strait.test.T';

describe('field names', () => {
  it('accepts snake_case and lowerCamel names and writes snake_case', () => {
    const { out, errors } = decode(CLUSTER, { name: 'a', connectTimeout: '2s', lb_policy: 'RANDOM', perConnectionBufferLimitBytes: 10 });
    expect(errors).toEqual([]);
    expect(out).toEqual({ name: 'a', connect_timeout: '2s', lb_policy: 'RANDOM', per_connection_buffer_limit_bytes: 10 });
  });

  it('rejects a field given under both names', () => {
    expect(decode(CLUSTER, { name: 'a', connect_timeout: '1s', connectTimeout: '2s' }).errors).toEqual([
      { path: 'x.connect_timeout', message: 'given twice, as "connect_timeout" and as "connectTimeout"' },
    ]);
  });

  it('names an unknown field and suggests a close one, for either spelling', () => {
    expect(decode(CLUSTER, { name: 'a', conect_timeout: '1s' }).errors).toEqual([
      { path: 'x.conect_timeout', message: 'unknown field "conect_timeout" in Cluster (did you mean "connect_timeout"?)' },
    ]);
    expect(decode(CLUSTER, { name: 'a', connectTimout: '1s' }).errors[0]!.message).toContain('did you mean "connect_timeout"?');
    expect(decode(CLUSTER, { name: 'a', zzzzzz: 1 }).errors).toEqual([{ path: 'x.zzzzzz', message: 'unknown field "zzzzzz" in Cluster' }]);
  });

  it('rejects two members of one oneof, naming both', () => {
    const { errors } = decode(TCP, { stat_prefix: 's', cluster: 'c', weighted_clusters: { clusters: [{ name: 'c', weight: 1 }] } });
    expect(errors).toEqual([{ path: 'x.weighted_clusters', message: 'only one of "cluster" and "weighted_clusters" may be set (oneof cluster_specifier)' }]);
  });

  it('requires a oneof marked (validate.required)', () => {
    expect(decode(TCP, { stat_prefix: 's' }).errors).toEqual([{ path: 'x', message: 'one of "cluster", "weighted_clusters" is required' }]);
  });

  it('reads null as unset', () => {
    const { out, errors } = decode(CLUSTER, { name: 'a', connect_timeout: null, load_assignment: null, health_checks: null });
    expect(errors).toEqual([]);
    expect(out).toEqual({ name: 'a' });
    // …so a null required field is reported as missing, and a null oneof member does not count.
    expect(decode(CLUSTER, { name: null }).errors).toEqual([{ path: 'x.name', message: 'is required (must be at least 1 character)' }]);
    expect(decode(TCP, { stat_prefix: 's', cluster: null, weighted_clusters: { clusters: [{ name: 'c', weight: 1 }] } }).errors).toEqual([]);
  });

  it('collects every problem instead of stopping at the first', () => {
    const { errors } = decode(CLUSTER, { connect_timeout: 'soon', lb_policy: 'FASTEST', per_connection_buffer_limit_bytes: 'big', bogus: 1 });
    expect(errors.map((e) => e.path)).toEqual(['x.connect_timeout', 'x.lb_policy', 'x.per_connection_buffer_limit_bytes', 'x.bogus', 'x.name']);
  });

  it('warns about deprecated fields', () => {
    const { warnings, errors } = decode(CLUSTER, { name: 'a', http2_protocol_options: {} });
    expect(errors).toEqual([]);
    expect(warnings).toEqual([{ path: 'x.http2_protocol_options', message: 'deprecated field "http2_protocol_options" of Cluster' }]);
    const api = decode('envoy.config.core.v3.ApiConfigSource', { api_type: 'GRPC', transport_api_version: 'V2' });
    expect(api.warnings).toEqual([{ path: 'x.transport_api_version', message: 'deprecated value V2 of ApiVersion' }]);
  });
});

describe('scalars', () => {
  it('reports the wrong JSON type with the expected proto type', () => {
    expect(decode(CLUSTER, { name: 'a', per_connection_buffer_limit_bytes: 'abc' }).errors).toEqual([
      { path: 'x.per_connection_buffer_limit_bytes', message: 'expected uint32, got string "abc"' },
    ]);
    expect(decode(CLUSTER, { name: 7 }).errors[0]).toEqual({ path: 'x.name', message: 'expected string, got number 7' });
    expect(decode(CLUSTER, { name: 'a', respect_dns_ttl: 'true' }).errors[0]).toEqual({ path: 'x.respect_dns_ttl', message: 'expected bool, got string "true"' });
    expect(decode(T, { on: 1 }).errors[0]!.message).toBe('expected bool, got number 1');
  });

  it('checks integer ranges and integrality', () => {
    expect(decode(CLUSTER, { name: 'a', per_connection_buffer_limit_bytes: -1 }).errors[0]!.message).toBe('-1 is out of range for uint32');
    expect(decode(CLUSTER, { name: 'a', per_connection_buffer_limit_bytes: 4294967296 }).errors[0]!.message).toBe('4294967296 is out of range for uint32');
    expect(decode(CLUSTER, { name: 'a', per_connection_buffer_limit_bytes: 1.5 }).errors[0]!.message).toBe('expected uint32, got number 1.5');
    expect(decode(T, { i: 2147483648 }).errors[0]).toEqual({ path: 'x.i', message: '2147483648 is out of range for int32' });
    expect(decode(CLUSTER, { name: 'a', per_connection_buffer_limit_bytes: '42' }).out.per_connection_buffer_limit_bytes).toBe(42);
  });

  it('reads 64-bit integers from numbers or decimal strings, as numbers while exact', () => {
    expect(decode(T, { big: '-12', ubig: 7 }).out).toEqual({ big: -12, ubig: 7 });
    expect(decode(T, { ubig: '18446744073709551615' }).out.ubig).toBe('18446744073709551615');
    expect(decode(T, { ubig: '18446744073709551616' }).errors[0]!.message).toBe('18446744073709551616 is out of range for uint64');
    expect(decode(T, { big: '1e3' }).errors[0]!.message).toBe('expected int64, got string "1e3"');
  });

  it('reads doubles and floats from numbers, numeric strings, NaN and Infinity', () => {
    expect(decode(T, { f: 'NaN' }).out.f).toBe('NaN');
    expect(decode(T, { f: '-Infinity' }).out.f).toBe('-Infinity');
    expect(decode(T, { ratio: '0.5' }).out.ratio).toBe(0.5);
    expect(decode(T, { f: 1e39 }).errors[0]).toEqual({ path: 'x.f', message: '1e+39 is out of range for float' });
    expect(decode(T, { ratio: 'half' }).errors[0]!.message).toBe('expected double, got string "half"');
  });

  it('reads bytes as base64 (standard or URL-safe) and writes standard padded base64', () => {
    expect(decode(T, { raw: 'aGk=' }).out.raw).toBe('aGk=');
    expect(decode(T, { raw: '-_8' }).out.raw).toBe('+/8=');
    expect(decode(T, { raw: 'not base64!' }).errors[0]).toEqual({ path: 'x.raw', message: 'expected bytes (base64), got string "not base64!"' });
  });
});

describe('enums', () => {
  it('reads names in any case and numbers, and writes the declared name', () => {
    expect(decode(CLUSTER, { name: 'a', type: 'strict_dns', lb_policy: 3, dns_lookup_family: 'v4_only' }).out).toMatchObject({
      type: 'STRICT_DNS',
      lb_policy: 'RANDOM',
      dns_lookup_family: 'V4_ONLY',
    });
  });

  it('lists the valid names for an unknown one', () => {
    expect(decode(CLUSTER, { name: 'a', type: 'DNS' }).errors).toEqual([
      { path: 'x.type', message: 'invalid DiscoveryType value string "DNS"; valid: STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST' },
    ]);
  });

  it('keeps an undeclared number with a warning, unless the field is defined_only', () => {
    const open = decode(T, { kind: 7 });
    expect(open.errors).toEqual([]);
    expect(open.out.kind).toBe(7);
    expect(open.warnings).toEqual([{ path: 'x.kind', message: '7 is not a declared Kind value; kept as a number' }]);
    // Cluster.lb_policy is [(validate.rules).enum.defined_only = true].
    const closed = decode(CLUSTER, { name: 'a', lb_policy: 99 });
    expect(closed.errors).toEqual([{ path: 'x.lb_policy', message: expect.stringMatching(/^number 99 is not a defined LbPolicy value; valid: ROUND_ROBIN, /) }]);
    expect(closed.warnings).toEqual([{ path: 'x.lb_policy', message: '99 is not a declared LbPolicy value; kept as a number' }]);
  });
});

describe('lists and maps', () => {
  it('reads a single object given for a list of messages, with a warning', () => {
    const { out, errors, warnings } = decode(CLUSTER, { name: 'a', health_checks: { timeout: '1s', interval: '1s', healthy_threshold: 1, unhealthy_threshold: 2, tcp_health_check: {} } });
    expect(errors).toEqual([]);
    expect(out.health_checks).toHaveLength(1);
    expect(warnings).toEqual([{ path: 'x.health_checks', message: 'a single object given for a list; read as a one-element list' }]);
  });

  it('refuses a scalar for a list, and leaves an empty list out', () => {
    expect(decode(T, { names: 'ab' }).errors).toEqual([{ path: 'x.names', message: 'expected a list, got string "ab"' }]);
    expect(decode(T, { names: [] }).out).toEqual({});
  });

  it('locates list items with [i], and leaves the rules of a partly refused list alone', () => {
    expect(decode(T, { names: ['ok', 7, 'x'] }).errors).toEqual([{ path: 'x.names[1]', message: 'expected string, got number 7' }]);
    expect(decode(T, { names: ['ok', 'x'] }).errors).toEqual([{ path: 'x.names[1]', message: 'must be at least 2 characters' }]);
  });

  it('converts map keys to their type and locates entries by key', () => {
    const { out, errors } = decode(T, { by_port: { '80': { short: 'a' } }, flags: { true: 'y' } });
    expect(errors).toEqual([]);
    expect(out).toEqual({ by_port: { '80': { short: 'a' } }, flags: { true: 'y' } });
    expect(decode(T, { by_port: { http: {} } }).errors).toEqual([{ path: 'x.by_port.http', message: 'expected uint32, got string "http"' }]);
    expect(decode(T, { flags: { yes: 'y' } }).errors).toEqual([{ path: 'x.flags.yes', message: 'map key "yes" is not a bool' }]);
    // Identifier-like keys read as fields, anything else in brackets.
    expect(decode(T, { by_name: { web: { short: 'long' }, 'a.b/c': { short: 'long' } } }).errors).toEqual([
      { path: 'x.by_name.web.short', message: 'must be at most 3 characters' },
      { path: 'x.by_name["a.b/c"].short', message: 'must be at most 3 characters' },
    ]);
  });
});

describe('well-known types', () => {
  it('normalizes durations to canonical strings and converts them to milliseconds', () => {
    const d = (v: unknown) => decode(T, { d: v });
    expect(d('1s').out.d).toBe('1s');
    expect(d('0.25s').out.d).toBe('0.250s');
    expect(d('1.5s').out.d).toBe('1.500s');
    expect(d('-1s').out.d).toBe('-1s');
    expect(d('0.000001s').out.d).toBe('0.000001s');
    expect(d({ seconds: 3, nanos: 500000 }).out.d).toBe('3.000500s');
    expect(d({ seconds: '2' }).out.d).toBe('2s');
    expect(durationMs('1.500s')).toBe(1500);
    expect(durationMs('0.250s')).toBe(250);
    expect(durationMs('-1s')).toBe(-1000);
    expect(durationMs(undefined)).toBeUndefined();
    for (const bad of [5, '5m', '1.5', 's', '1.0000000001s', { seconds: 1, nanos: -1 }, { seconds: 1, millis: 2 }]) {
      expect(d(bad).errors[0]).toEqual({ path: 'x.d', message: expect.stringContaining('invalid duration') });
    }
  });

  it('reads RFC 3339 timestamps and writes them in UTC', () => {
    expect(decode(T, { at: '2023-06-20T10:00:00.5+02:00' }).out.at).toBe('2023-06-20T08:00:00.500Z');
    expect(decode(T, { at: '2023-06-20T10:00:00Z' }).out.at).toBe('2023-06-20T10:00:00Z');
    expect(decode(T, { at: '2023-02-30T10:00:00Z' }).errors[0]).toEqual({ path: 'x.at', message: expect.stringContaining('invalid timestamp') });
    expect(decode(T, { at: 'yesterday' }).errors[0]!.message).toContain('RFC 3339');
  });

  it('unwraps wrapper types given plain or as {value}', () => {
    const { out, errors } = decode(CLUSTER, { name: 'a', respect_dns_ttl: true, max_requests_per_connection: { value: 7 }, wait_for_warm_on_init: false });
    expect(errors).toEqual([]);
    expect(out.max_requests_per_connection).toBe(7);
    expect(out.wait_for_warm_on_init).toBe(false);
    expect(decode(CLUSTER, { name: 'a', max_requests_per_connection: 'many' }).errors[0]).toMatchObject({ path: 'x.max_requests_per_connection', message: 'expected uint32, got string "many"' });
  });

  it('passes Struct, Value and ListValue through as free JSON', () => {
    const meta = { filter_metadata: { 'envoy.lb': { canary: true, weights: [1, 2], nested: { a: null } } } };
    expect(decode(CLUSTER, { name: 'a', metadata: meta }).out.metadata).toEqual(meta);
    expect(decode(T, { any_json: null, list: [1, 'a', { b: null }] }).out).toEqual({ any_json: null, list: [1, 'a', { b: null }] });
    expect(decode(CLUSTER, { name: 'a', metadata: { filter_metadata: { x: [1] } } }).errors[0]).toEqual({
      path: 'x.metadata.filter_metadata.x',
      message: 'expected an object (Struct), got a list',
    });
  });

  it('reads Empty as {} and FieldMask as a comma-separated string (lowerCamel paths)', () => {
    expect(decode(T, { nothing: {}, mask: 'a.b_c,d' }).out).toEqual({ nothing: {}, mask: 'a.bC,d' });
    expect(decode(T, { nothing: { a: 1 } }).errors[0]!.path).toBe('x.nothing.a');
    expect(decode(T, { mask: 7 }).errors[0]!.message).toContain('FieldMask');
  });
});

describe('Any and TypedStruct', () => {
  it('decodes an Any by @type into that message, locating errors inside it', () => {
    const filter = { name: 'f', typed_config: { '@type': TCP_URL, statPrefix: 's', cluster: 'c', idle_timeout: '1.5s' } };
    expect(decode(FILTER, filter).out.typed_config).toEqual({ '@type': TCP_URL, stat_prefix: 's', cluster: 'c', idle_timeout: '1.500s' });
    expect(decode(FILTER, { name: 'f', typed_config: { '@type': TCP_URL, cluster: 'c' } }).errors).toEqual([
      { path: 'x.typed_config.stat_prefix', message: 'is required (must be at least 1 character)' },
    ]);
  });

  it('keeps an empty Any ({}: lookup by name) and requires @type otherwise', () => {
    expect(decode(FILTER, { name: 'f', typed_config: {} }).out.typed_config).toEqual({});
    expect(decode(FILTER, { name: 'f', typed_config: { cluster: 'c' } }).errors).toEqual([
      { path: 'x.typed_config.@type', message: 'is required: a type URL like "type.googleapis.com/<message>"' },
    ]);
  });

  it('puts a well-known type with a JSON form of its own under "value"', () => {
    const { out, errors } = decode('google.protobuf.Any', { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2.5s' });
    expect(errors).toEqual([]);
    expect(out).toEqual({ '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2.500s' });
    const sv = decode('google.protobuf.Any', { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: 'fc1' });
    expect(sv.out).toEqual({ '@type': 'type.googleapis.com/google.protobuf.StringValue', value: 'fc1' });
  });

  it('refuses an unknown type, or keeps it as given with a warning when asked to', () => {
    const unknown = { name: 'f', typed_config: { '@type': 'type.googleapis.com/istio.stats.PluginConfig', foo: 1 } };
    expect(decode(FILTER, unknown).errors).toEqual([{ path: 'x.typed_config', message: 'unknown type "type.googleapis.com/istio.stats.PluginConfig"' }]);
    const opaque = decode(FILTER, unknown, 'opaque');
    expect(opaque.errors).toEqual([]);
    expect(opaque.out.typed_config).toEqual(unknown.typed_config);
    expect(opaque.warnings).toEqual([{ path: 'x.typed_config', message: 'unknown type "type.googleapis.com/istio.stats.PluginConfig" kept as is' }]);
  });

  for (const ts of ['udpa.type.v1.TypedStruct', 'xds.type.v3.TypedStruct']) {
    it(`unwraps a ${ts} of a known type into that message`, () => {
      const { out, errors } = decode(FILTER, {
        name: 'f',
        typed_config: { '@type': `type.googleapis.com/${ts}`, type_url: TCP_URL, value: { stat_prefix: 's', cluster: 'c', idleTimeout: '2s' } },
      });
      expect(errors).toEqual([]);
      expect(out.typed_config).toEqual({ '@type': TCP_URL, stat_prefix: 's', cluster: 'c', idle_timeout: '2s' });
    });
  }

  it('locates errors inside a TypedStruct under value, and applies the unknownAny rule to its inner type', () => {
    const bad = { name: 'f', typed_config: { '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct', type_url: TCP_URL, value: { cluster: 'c', stat_prefix: 's', max_connect_attempts: 0 } } };
    expect(decode(FILTER, bad).errors).toEqual([{ path: 'x.typed_config.value.max_connect_attempts', message: 'value must be >= 1' }]);
    const istio = { '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct', type_url: 'type.googleapis.com/io.istio.http.peer_metadata.Config', value: {} };
    expect(decode(FILTER, { name: 'f', typed_config: istio }).errors).toEqual([
      { path: 'x.typed_config', message: 'unknown type "type.googleapis.com/io.istio.http.peer_metadata.Config" (in a udpa.type.v1.TypedStruct)' },
    ]);
    const opaque = decode(FILTER, { name: 'f', typed_config: istio }, 'opaque');
    expect(opaque.errors).toEqual([]);
    expect(opaque.out.typed_config).toEqual(istio);
    expect(opaque.warnings).toHaveLength(1);
  });

  it('checks the @type of a resource against the type asked for', () => {
    const ctx = newContext();
    expect(decodeResource(CLUSTER, { '@type': `type.googleapis.com/${CLUSTER}`, name: 'a' }, 'r', ctx)).toEqual({ name: 'a' });
    decodeResource(CLUSTER, { '@type': TCP_URL, name: 'a' }, 'r', ctx);
    expect(ctx.errors).toEqual([{ path: 'r.@type', message: `expected "${CLUSTER}", got "${TCP_URL}"` }]);
  });
});

describe('validate rules (PGV) from the protos', () => {
  it('string min_len (unset strings are checked as "")', () => {
    expect(decode(CLUSTER, {}).errors).toContainEqual({ path: 'x.name', message: 'is required (must be at least 1 character)' });
  });

  it('string max_len, prefix, min_bytes', () => {
    expect(decode(T, { short: 'abcd', pre: 'x', bytes_min: 'é' }).errors).toEqual([
      { path: 'x.short', message: 'must be at most 3 characters' },
      { path: 'x.pre', message: 'must start with "/"' },
    ]);
    expect(decode(T, { bytes_min: 'a' }).errors).toEqual([{ path: 'x.bytes_min', message: 'must be at least 2 bytes' }]);
  });

  it('HTTP header names (well_known_regex)', () => {
    const hv = 'envoy.config.core.v3.HeaderValue';
    expect(decode(hv, { key: 'x-ok', value: 'v' }).errors).toEqual([]);
    expect(decode(hv, { key: 'bad\nname', value: 'v' }).errors).toEqual([{ path: 'x.key', message: 'string "bad\\nname" is not a valid HTTP header name' }]);
  });

  it('numeric gte / lte, on plain scalars and on wrappers when set', () => {
    expect(decode(TCP, { stat_prefix: 's', cluster: 'c', max_connect_attempts: 0 }).errors).toEqual([{ path: 'x.max_connect_attempts', message: 'value must be >= 1' }]);
    expect(decode(TCP, { stat_prefix: 's', cluster: 'c' }).errors).toEqual([]); // unset wrapper: not checked
    expect(decode(T, { ratio: 1.5 }).errors).toEqual([{ path: 'x.ratio', message: 'value must be <= 1' }]);
    expect(decode('envoy.config.listener.v3.FilterChainMatch', { destination_port: 70000 }).errors).toEqual([
      { path: 'x.destination_port', message: 'value must be <= 65535' },
    ]);
  });

  it('duration gt / lte, compared on seconds and nanos', () => {
    // Cluster.dns_refresh_rate: gt {nanos: 1000000}.
    expect(decode(CLUSTER, { name: 'a', dns_refresh_rate: '0.001s' }).errors).toEqual([{ path: 'x.dns_refresh_rate', message: 'duration must be > 0.001s' }]);
    expect(decode(CLUSTER, { name: 'a', dns_refresh_rate: '0.002s' }).errors).toEqual([]);
    expect(decode(T, { d: '10.000000001s' }).errors).toEqual([{ path: 'x.d', message: 'duration must be <= 10s' }]);
  });

  it('message required, repeated min_items / max_items and item rules', () => {
    const hc = decode('envoy.config.core.v3.HealthCheck', { tcp_health_check: {} });
    expect(hc.errors).toEqual([
      { path: 'x.timeout', message: 'is required' },
      { path: 'x.interval', message: 'is required' },
      { path: 'x.unhealthy_threshold', message: 'is required' },
      { path: 'x.healthy_threshold', message: 'is required' },
    ]);
    expect(decode(TCP, { stat_prefix: 's', weighted_clusters: { clusters: [] } }).errors).toEqual([
      { path: 'x.weighted_clusters.clusters', message: 'must have at least 1 item' },
    ]);
    expect(decode(T, { names: ['ab', 'c', 'de'] }).errors).toEqual([
      { path: 'x.names', message: 'must have at most 2 items' },
      { path: 'x.names[1]', message: 'must be at least 2 characters' },
    ]);
  });

  it('map key rules, located by key', () => {
    // Metadata.filter_metadata: map keys string min_len 1.
    expect(decode(CLUSTER, { name: 'a', metadata: { filter_metadata: { '': {} } } }).errors).toEqual([
      { path: 'x.metadata.filter_metadata[""]', message: 'is required (must be at least 1 character)' },
    ]);
  });

  it('enum defined_only', () => {
    expect(decode(CLUSTER, { name: 'a', type: 42 }).errors[0]).toMatchObject({ path: 'x.type', message: expect.stringContaining('not a defined DiscoveryType value') });
  });
});

describe('paths and whole bootstraps', () => {
  it('locates a problem deep inside a bootstrap by proto field names', () => {
    const yaml = `
staticResources:
  listeners:
  - name: l
    address: { socket_address: { address: 0.0.0.0, portValue: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typedConfig:
          "@type": ${TCP_URL}
          cluster: c
`;
    const { errors } = parseBootstrapText(yaml, 'b.yaml', { keepErrors: true });
    expect(errors).toEqual([
      { path: 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix', message: 'is required (must be at least 1 character)' },
    ]);
  });

  it('reports YAML and JSON syntax errors with line and column', () => {
    expect(() => parseBootstrapText('a: [1, 2\nb: 3\n', 'bad.yaml')).toThrow(/YAML syntax error at line 2, column 1/);
    expect(() => parseBootstrapText('a: 1\na: 2\n', 'dup.yaml')).toThrow(/Map keys must be unique/);
    expect(() => parseBootstrapText('{"a": 1,\n "b": 2', 'bad.json')).toThrow(/JSON syntax error/);
    expect(() => parseBootstrapText('- 1\n', 'list.yaml')).toThrow(/must be a mapping/);
  });

  it('fromJson works on a Type directly', () => {
    const ctx = newContext();
    const type = getRoot().lookupType(CLUSTER);
    expect(fromJson(type, { name: 'a', type: 'static' }, '', ctx)).toEqual({ name: 'a', type: 'STATIC' });
    expect(ctx.errors).toEqual([]);
  });
});
