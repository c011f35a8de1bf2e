// The parts of interception that need no kernel: rule generation, option checks, the
// ORIGINAL_DST host table, and config acceptance of use_original_dst / ORIGINAL_DST.
import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { kernelVersion } from '../../../src/intercept/detect.js';
import { installScript, iptablesProblems } from '../../../src/intercept/iptables.js';
import { pinDirOf } from '../../../src/intercept/sockmap.js';
import { buildListenerSpec } from '../../../src/listener/listener_config.js';
import { buildClusterSpec } from '../../../src/upstream/cluster_config.js';
import { OriginalDstHosts } from '../../../src/upstream/original_dst.js';

describe('iptables rule set', () => {
  it('exempts owners and loopback, excludes ports, then redirects; jumps come last', () => {
    const text = installScript(4, { outboundPort: 15001, inboundPort: 15006, excludePorts: [22, 15090], exemptUids: [1337], exemptGids: [7] });
    const lines = text.split('\n');
    expect(lines[0]).toBe('*nat');
    const out = lines.filter((l) => l.startsWith('-A STRAIT_OUTPUT'));
    expect(out).toEqual([
      '-A STRAIT_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A STRAIT_OUTPUT -m owner --gid-owner 7 -j RETURN',
      '-A STRAIT_OUTPUT -d 127.0.0.0/8 -j RETURN',
      '-A STRAIT_OUTPUT -p tcp -m multiport --dports 22,15090 -j RETURN',
      '-A STRAIT_OUTPUT -p tcp -j REDIRECT --to-ports 15001',
    ]);
    expect(lines.filter((l) => l.startsWith('-A STRAIT_INBOUND'))).toEqual([
      '-A STRAIT_INBOUND -p tcp -m multiport --dports 22,15090 -j RETURN',
      '-A STRAIT_INBOUND -p tcp -j REDIRECT --to-ports 15006',
    ]);
    // A packet can only enter a chain once it is complete.
    const firstJump = lines.findIndex((l) => l.startsWith('-A OUTPUT') || l.startsWith('-A PREROUTING'));
    expect(firstJump).toBeGreaterThan(lines.lastIndexOf(out[out.length - 1]!));
    expect(lines.slice(-2)).toEqual(['COMMIT', '']);
  });

  it('uses ::1 for IPv6 loopback and splits long port lists (multiport takes 15)', () => {
    const ports = Array.from({ length: 20 }, (_, i) => 1000 + i);
    const text = installScript(6, { outboundPort: 1, excludePorts: ports, exemptUids: [0] });
    expect(text).toContain('-A STRAIT_OUTPUT -d ::1/128 -j RETURN');
    const groups = text.split('\n').filter((l) => l.includes('multiport'));
    expect(groups).toHaveLength(2);
    expect(groups[0]!.match(/--dports (\S+)/)![1]!.split(',')).toHaveLength(15);
    expect(text).not.toContain('STRAIT_INBOUND');
  });

  it('refuses outbound capture without an exemption for the sidecar itself', () => {
    expect(iptablesProblems({ outboundPort: 15001 })).toEqual([expect.stringMatching(/--exempt-uid or --exempt-gid/)]);
    expect(iptablesProblems({})).toEqual([expect.stringMatching(/--outbound-port/)]);
    expect(iptablesProblems({ inboundPort: 15006 })).toEqual([]);
  });
});

describe('detection helpers', () => {
  it('parses kernel releases', () => {
    expect(kernelVersion('6.18.44-fc-v1098')).toEqual([6, 18]);
    expect(kernelVersion('5.4.0-150-generic')).toEqual([5, 4]);
    expect(kernelVersion('weird')).toEqual([0, 0]);
  });

  it('keeps pin names inside /sys/fs/bpf/strait', () => {
    expect(pinDirOf('default')).toBe('/sys/fs/bpf/strait/default');
    expect(() => pinDirOf('../etc')).toThrow(/bad name/);
    expect(() => pinDirOf('..')).toThrow(/bad name/);
    expect(() => pinDirOf('')).toThrow(/bad name/);
  });
});

describe('ORIGINAL_DST', () => {
  it('gives one host per original destination, reused, with the port override', () => {
    const t = new OriginalDstHosts(0);
    const a = t.pick({ family: 'IPv4', address: '10.0.0.1', port: 80 });
    expect(a?.label).toBe('10.0.0.1:80');
    expect(t.pick({ family: 'IPv4', address: '10.0.0.1', port: 80 })).toBe(a);
    expect(t.pick({ family: 'unix', address: '/x', port: 0 })).toBeNull();
    expect(t.pick(null)).toBeNull();
    expect(new OriginalDstHosts(8080).pick({ family: 'IPv6', address: '::1', port: 80 })?.label).toBe('[::1]:8080');
  });

  it('drops idle hosts when the table is full, keeps busy ones', () => {
    const t = new OriginalDstHosts(0, 2);
    const busy = t.pick({ family: 'IPv4', address: '10.0.0.1', port: 1 })!;
    busy.counters.cx_active = 1;
    t.pick({ family: 'IPv4', address: '10.0.0.2', port: 1 });
    t.pick({ family: 'IPv4', address: '10.0.0.3', port: 1 });
    expect(t.all.map((h) => h.label)).toEqual(['10.0.0.1:1', '10.0.0.3:1']);
  });

  it('accepts an ORIGINAL_DST cluster and rejects endpoints, other lb policies and use_http_header', () => {
    const errors: FieldError[] = [];
    const spec = buildClusterSpec({ name: 'pt', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', original_dst_lb_config: { upstream_port_override: 9 } }, 'c', errors);
    expect(errors).toEqual([]);
    expect(spec?.type).toBe('ORIGINAL_DST');
    expect(spec?.originalDstPortOverride).toBe(9);
    const bad: FieldError[] = [];
    buildClusterSpec(
      {
        name: 'pt',
        type: 'ORIGINAL_DST',
        lb_policy: 'ROUND_ROBIN',
        original_dst_lb_config: { use_http_header: true },
        load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '1.2.3.4', port_value: 1 } } } }] }] },
      },
      'c',
      bad,
    );
    expect(bad.map((e) => e.path).sort()).toEqual(['c.lb_policy', 'c.load_assignment', 'c.original_dst_lb_config.use_http_header']);
  });

  it('turns use_original_dst and the original_dst listener filter into useOriginalDst', () => {
    const chain = { filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 's', cluster: 'pt' } }] };
    const ctx = () => ({ clusterNames: new Set(['pt']), errors: [] as FieldError[], warnings: [] as FieldError[] });
    const base = { name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, filter_chains: [chain] };
    const c1 = ctx();
    expect(buildListenerSpec({ ...base, use_original_dst: true }, 'l', c1)?.useOriginalDst).toBe(true);
    expect(c1.errors).toEqual([]);
    const c2 = ctx();
    expect(buildListenerSpec({ ...base, listener_filters: [{ name: 'envoy.filters.listener.original_dst' }] }, 'l', c2)?.useOriginalDst).toBe(true);
    expect(c2.errors).toEqual([]);
    expect(buildListenerSpec(base, 'l', ctx())?.useOriginalDst).toBe(false);
    const c3 = ctx();
    buildListenerSpec({ ...base, listener_filters: [{ name: 'envoy.filters.listener.local_ratelimit' }] }, 'l', c3);
    expect(c3.errors.map((e) => e.path)).toEqual(['l.listener_filters[0]']);
  });

  it('reads bind_to_port (default true); false needs an IP address to be handed connections', () => {
    const chain = { filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 's', cluster: 'pt' } }] };
    const ctx = () => ({ clusterNames: new Set(['pt']), errors: [] as FieldError[], warnings: [] as FieldError[] });
    const tcp = { name: 'l', address: { socket_address: { address: '0.0.0.0', port_value: 9080 } }, filter_chains: [chain] };
    expect(buildListenerSpec(tcp, 'l', ctx())?.bindToPort).toBe(true);
    const c1 = ctx();
    expect(buildListenerSpec({ ...tcp, bind_to_port: false }, 'l', c1)?.bindToPort).toBe(false);
    expect(c1.errors).toEqual([]);
    const c2 = ctx();
    expect(buildListenerSpec({ ...tcp, address: { pipe: { path: '/tmp/x.sock' } }, bind_to_port: false }, 'l', c2)).toBeNull();
    expect(c2.errors.map((e) => e.path)).toEqual(['l.bind_to_port']);
  });
});
