import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { compileRoot, getRoot, lookupType, typeFromUrl } from '../../../src/config/index.js';
import { loadDescriptor } from '../../../src/config/registry.js';

describe('registry', () => {
  it('finds message types by full name and by type URL, and nothing else', () => {
    expect(lookupType('envoy.config.bootstrap.v3.Bootstrap')?.name).toBe('Bootstrap');
    expect(lookupType('.envoy.config.cluster.v3.Cluster')?.name).toBe('Cluster');
    expect(lookupType('envoy.config.cluster.v3.Cluster.LbPolicy')).toBeNull(); // an enum
    expect(lookupType('envoy.config.nothing.v3.Nothing')).toBeNull();
    expect(typeFromUrl('type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy')?.name).toBe('TcpProxy');
    expect(typeFromUrl('example.com/x/envoy.config.listener.v3.Listener')?.name).toBe('Listener');
    expect(typeFromUrl('type.googleapis.com/istio.stats.PluginConfig')).toBeNull();
  });

  it('holds the Envoy v3 API, the xds/udpa types, every bundled well-known type and the project protos', () => {
    for (const name of [
      'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      'envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy',
      'envoy.admin.v3.ConfigDump',
      'udpa.type.v1.TypedStruct',
      'xds.type.v3.TypedStruct',
      'xds.type.matcher.v3.IPMatcher',
      'google.protobuf.FieldMask',
      'strait.rpc_proxy.v1.RpcProxy',
    ]) {
      expect(lookupType(name), name).not.toBeNull();
    }
    // v2 is gone from Envoy and is not loaded.
    expect(lookupType('envoy.api.v2.Cluster')).toBeNull();
  });

  it('keeps the annotations the decoder and redaction work from', () => {
    const field = (t: string, f: string) => lookupType(t)!.fields[f]!.options ?? {};
    expect(field('envoy.extensions.transport_sockets.tls.v3.TlsCertificate', 'private_key')['(udpa.annotations.sensitive)']).toBe(true);
    expect(field('envoy.config.cluster.v3.Cluster', 'name')['(validate.rules).string.min_len']).toBe(1);
    expect(field('envoy.config.cluster.v3.Cluster', 'lb_policy')['(validate.rules).enum.defined_only']).toBe(true);
    expect(field('envoy.config.cluster.v3.Cluster', 'dns_refresh_rate')['(validate.rules).duration.gt.nanos']).toBe(1000000);
    expect(lookupType('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy')!.oneofs.cluster_specifier!.options).toEqual({ '(validate.required)': true });
  });

  it('round-trips through the JSON descriptor without losing anything', () => {
    const compiled = compileRoot();
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'strait-desc-')), 'descriptor.json');
    fs.writeFileSync(file, JSON.stringify(compiled.toJSON()));
    const loaded = loadDescriptor(file);
    expect(loaded.toJSON()).toEqual(compiled.toJSON());
    const t = loaded.lookupType('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy');
    expect(t.oneofs.cluster_specifier!.options).toEqual({ '(validate.required)': true });
    expect(t.fields.max_connect_attempts!.resolvedType).toBeInstanceOf(protobuf.Type);
    fs.rmSync(path.dirname(file), { recursive: true });
  });

  it('loads once', () => {
    expect(getRoot()).toBe(getRoot());
  });
});
