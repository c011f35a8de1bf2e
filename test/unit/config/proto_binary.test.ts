import fs from 'node:fs';
import path from 'node:path';
import type protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { decodeResource, lookupType, newContext, parseConfigText, toJsonValue, toProtobufObject } from '../../../src/config/index.js';
import { REPO } from '../../helpers/strait.js';

const CORPUS = path.resolve(REPO, '..', 'shared', 'corpus');

function type(name: string): protobuf.Type {
  const t = lookupType(name);
  if (!t) throw new Error(`no type ${name}`);
  return t;
}

/** normalized → fromObject → encode → decode → toJsonValue. */
function roundtrip(typeName: string, normalized: unknown): unknown {
  const t = type(typeName);
  const obj = toProtobufObject(t, normalized) as Record<string, unknown>;
  const bytes = t.encode(t.fromObject(obj)).finish();
  return toJsonValue(t, t.decode(bytes));
}

function decodeStrict(typeName: string, value: unknown): unknown {
  const ctx = newContext();
  const out = decodeResource(typeName, value, '', ctx);
  expect(ctx.errors).toEqual([]);
  return out;
}

function corpusDoc(file: string): Record<string, any> {
  return parseConfigText(fs.readFileSync(path.join(CORPUS, 'envoy', file), 'utf8'), file) as Record<string, any>;
}

const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';

describe('normalized form ↔ protobufjs messages', () => {
  it.each(['front-proxy-envoy.yaml', 'envoy-demo.yaml', 'ads.yaml', 'fault-injection-envoy.yaml', 'header-to-metadata-filter.yaml'])(
    'round-trips the %s bootstrap through binary',
    (file) => {
      const normalized = decodeStrict(BOOTSTRAP, corpusDoc(file));
      expect(roundtrip(BOOTSTRAP, normalized)).toEqual(normalized);
    },
  );

  it('round-trips the xDS resources of envoy-dynamic-{cds,lds}-demo.yaml as Any', () => {
    for (const file of ['envoy-dynamic-cds-demo.yaml', 'envoy-dynamic-lds-demo.yaml']) {
      for (const r of corpusDoc(file).resources as unknown[]) {
        const normalized = decodeStrict('google.protobuf.Any', r);
        expect(roundtrip('google.protobuf.Any', normalized)).toEqual(normalized);
      }
    }
  });

  it('round-trips the awkward values: int64 beyond 2^53, zero scalars, wrappers, Struct, NaN, float, bytes, Timestamp', () => {
    const cluster = decodeStrict('envoy.config.cluster.v3.Cluster', {
      name: 'c',
      type: 'STATIC',
      lb_policy: 'RING_HASH',
      ring_hash_lb_config: { maximum_ring_size: 8388608, minimum_ring_size: 1024 },
      per_connection_buffer_limit_bytes: 0,
      respect_dns_ttl: false,
      max_requests_per_connection: 0,
      metadata: { filter_metadata: { 'envoy.lb': { canary: true, w: 1.5, tags: ['a', null, { x: [] }] } } },
      load_assignment: { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '::1', port_value: 0 } } } }] }] },
      preconnect_policy: { per_upstream_preconnect_ratio: 1.5 },
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
          explicit_http_config: { http2_protocol_options: { max_concurrent_streams: 100 } },
        },
      },
    });
    expect(roundtrip('envoy.config.cluster.v3.Cluster', cluster)).toEqual(cluster);

    const secret = decodeStrict('envoy.extensions.transport_sockets.tls.v3.Secret', { name: 's', generic_secret: { secret: { inline_bytes: '-_8' } } });
    expect(secret).toEqual({ name: 's', generic_secret: { secret: { inline_bytes: '+/8=' } } });
    expect(roundtrip('envoy.extensions.transport_sockets.tls.v3.Secret', secret)).toEqual(secret);

    const range = decodeStrict('envoy.type.v3.Int64Range', { start: '-9223372036854775808', end: '9223372036854775807' });
    expect(range).toEqual({ start: '-9223372036854775808', end: '9223372036854775807' });
    expect(roundtrip('envoy.type.v3.Int64Range', range)).toEqual(range);

    const dr = decodeStrict('envoy.type.v3.DoubleRange', { start: 'NaN', end: '-Infinity' });
    expect(roundtrip('envoy.type.v3.DoubleRange', dr)).toEqual({ start: 'NaN', end: '-Infinity' });

    const wrr = 'envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin';
    const floats = decodeStrict(wrr, { error_utilization_penalty: 0.1, blackout_period: '10s' });
    expect(roundtrip(wrr, floats)).toEqual(floats);

    const failure = decodeStrict('envoy.admin.v3.UpdateFailureState', { last_update_attempt: '2023-06-20T10:00:00.25+02:00', details: 'NACK' });
    expect(failure).toEqual({ last_update_attempt: '2023-06-20T08:00:00.250Z', details: 'NACK' });
    expect(roundtrip('envoy.admin.v3.UpdateFailureState', failure)).toEqual(failure);

    const v = 'envoy.config.core.v3.RuntimeFractionalPercent';
    const frac = decodeStrict(v, { default_value: { numerator: 5, denominator: 'TEN_THOUSAND' }, runtime_key: 'k' });
    expect(roundtrip(v, frac)).toEqual(frac);
  });

  it('expands Any values and unwraps a binary TypedStruct of a known type', () => {
    const any = type('google.protobuf.Any');
    const ts = type('udpa.type.v1.TypedStruct');
    const tcp = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
    const inner = ts.encode(ts.fromObject(toProtobufObject(ts, { type_url: tcp, value: { stat_prefix: 's', cluster: 'c', idle_timeout: '1s' } }) as object)).finish();
    const msg = any.decode(any.encode(any.fromObject({ type_url: 'type.googleapis.com/udpa.type.v1.TypedStruct', value: inner })).finish());
    expect(toJsonValue(any, msg)).toEqual({ '@type': tcp, stat_prefix: 's', cluster: 'c', idle_timeout: '1s' });
  });

  it('keeps an Any of an unknown type as bytes, reports it, and encodes it back unchanged', () => {
    const any = type('google.protobuf.Any');
    const bytes = any.encode(any.fromObject({ type_url: 'type.googleapis.com/istio.stats.PluginConfig', value: Buffer.from([8, 1]) })).finish();
    const ctx = newContext('opaque');
    const json = toJsonValue(any, any.decode(bytes), ctx);
    expect(json).toEqual({ '@type': 'type.googleapis.com/istio.stats.PluginConfig', '@value': 'CAE=' });
    expect(ctx.warnings).toHaveLength(1);
    expect(any.encode(any.fromObject(toProtobufObject(any, json) as object)).finish()).toEqual(bytes);
    const strict = newContext('error');
    toJsonValue(any, any.decode(bytes), strict);
    expect(strict.errors).toEqual([{ path: '', message: 'unknown type "type.googleapis.com/istio.stats.PluginConfig"' }]);
  });

  it('writes durations, enums and 64-bit integers of a binary message in the normalized form', () => {
    const c = type('envoy.config.cluster.v3.Cluster');
    const msg = c.decode(c.encode(c.fromObject({ name: 'a', connect_timeout: { seconds: 1, nanos: 500_000_000 }, lb_policy: 3, dns_lookup_family: 1 })).finish());
    expect(toJsonValue(c, msg)).toEqual({ name: 'a', connect_timeout: '1.500s', lb_policy: 'RANDOM', dns_lookup_family: 'V4_ONLY' });
  });

  it('refuses to encode what has no binary form', () => {
    const any = type('google.protobuf.Any');
    expect(() => toProtobufObject(any, { '@type': 'type.googleapis.com/istio.stats.PluginConfig', foo: 1 })).toThrow(/unknown type/);
    expect(() => toProtobufObject(type('envoy.config.cluster.v3.Cluster'), { nme: 'a' })).toThrow(/no field "nme"/);
  });
});
