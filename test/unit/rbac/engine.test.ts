import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import type { Downstream, PeerAddress } from '../../../src/io/engine.js';
import { StatsStore } from '../../../src/observability/stats.js';
import { DenialLog, evaluate, parseRbacConfig, rbacStats, type RbacConfig } from '../../../src/rbac/engine.js';
import type { RbacFacts } from '../../../src/rbac/matchers.js';
import type { RpcRequestView } from '../../../src/router/rpc_route_table.js';

type Obj = Record<string, any>;

function addr(address: string, port: number): PeerAddress {
  return { family: address.includes(':') ? 'IPv6' : 'IPv4', address, port };
}

function downstream(remote: string, localPort: number, tls: Partial<NonNullable<Downstream['tls']>> | null = null): Downstream {
  return {
    remote: addr(remote, 40000),
    local: addr('127.0.0.1', localPort),
    tls: tls ? { sni: '', alpn: '', version: 'TLSv1.3', peerUriSans: [], peerDnsSans: [], peerSubject: '', ...tls } : null,
    close() {},
  };
}

function compile(tc: Obj): { c: RbacConfig | null; errors: FieldError[]; warnings: FieldError[] } {
  const errors: FieldError[] = [];
  const warnings: FieldError[] = [];
  return { c: parseRbacConfig(tc, 'rbac', errors, warnings), errors, warnings };
}

function decide(tc: Obj, facts: RbacFacts) {
  const { c, errors } = compile(tc);
  expect(errors).toEqual([]);
  const store = new StatsStore();
  const stats = rbacStats(store.root.scope('t'), c!);
  const r = evaluate(c!, stats, new DenialLog('test'), facts);
  return { ...r, stats, store };
}

const policy = (permissions: Obj[], principals: Obj[]) => ({ permissions, principals });

describe('RBAC engine', () => {
  it('ALLOW lets through only what a policy matches and names the policy', () => {
    const rules = { rules: { action: 'ALLOW', policies: { ports: policy([{ destination_port: 8080 }], [{ any: true }]) } } };
    const ok = decide(rules, { downstream: downstream('10.0.0.1', 8080) });
    expect(ok.allowed).toBe(true);
    expect(ok.policy).toBe('ports');
    expect(ok.stats.allowed.value).toBe(1);
    const no = decide(rules, { downstream: downstream('10.0.0.1', 9090) });
    expect(no.allowed).toBe(false);
    expect(no.policy).toBeNull();
    expect(no.stats.denied.value).toBe(1);
  });

  it('DENY refuses what a policy matches; ALLOW without policies refuses everything', () => {
    const deny = { rules: { action: 'DENY', policies: { bad: policy([{ any: true }], [{ direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: 8 } }]) } } };
    expect(decide(deny, { downstream: downstream('10.9.9.9', 1) }).allowed).toBe(false);
    expect(decide(deny, { downstream: downstream('192.168.1.1', 1) }).allowed).toBe(true);
    expect(decide({ rules: {} }, { downstream: downstream('192.168.1.1', 1) }).allowed).toBe(false);
    // No rules at all: nothing is enforced.
    expect(decide({}, { downstream: downstream('192.168.1.1', 1) }).allowed).toBe(true);
  });

  it('combines rules with and/or/not', () => {
    const rules = {
      rules: {
        policies: {
          p: policy(
            [{ and_rules: { rules: [{ or_rules: { rules: [{ destination_port: 80 }, { destination_port: 81 }] } }, { not_rule: { url_path: { path: { prefix: '/admin' } } } }] } }],
            [{ and_ids: { ids: [{ not_id: { remote_ip: { address_prefix: '10.0.0.0', prefix_len: 8 } } }, { or_ids: { ids: [{ any: true }] } }] } }],
          ),
        },
      },
    };
    expect(decide(rules, { downstream: downstream('192.168.0.1', 81), path: '/x' }).allowed).toBe(true);
    expect(decide(rules, { downstream: downstream('192.168.0.1', 81), path: '/admin/x' }).allowed).toBe(false);
    expect(decide(rules, { downstream: downstream('192.168.0.1', 82), path: '/x' }).allowed).toBe(false);
    expect(decide(rules, { downstream: downstream('10.0.0.1', 80), path: '/x' }).allowed).toBe(false);
  });

  it('matches authenticated SPIFFE identities from URI SANs, then DNS SANs', () => {
    const rules = { rules: { policies: { mesh: policy([{ any: true }], [{ authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/default/sa/web' } } }]) } } };
    const web = downstream('127.0.0.1', 1, { peerUriSans: ['spiffe://cluster.local/ns/default/sa/web'] });
    const other = downstream('127.0.0.1', 1, { peerUriSans: ['spiffe://cluster.local/ns/default/sa/other'] });
    expect(decide(rules, { downstream: web }).allowed).toBe(true);
    expect(decide(rules, { downstream: other }).allowed).toBe(false);
    expect(decide(rules, { downstream: downstream('127.0.0.1', 1) }).allowed).toBe(false);
    const dns = { rules: { policies: { d: policy([{ any: true }], [{ authenticated: { principal_name: { suffix: '.example.com' } } }]) } } };
    expect(decide(dns, { downstream: downstream('127.0.0.1', 1, { peerDnsSans: ['a.example.com'] }) }).allowed).toBe(true);
    // `authenticated: {}`: any peer with a certificate, and no plaintext one.
    const anyCert = { rules: { policies: { c: policy([{ any: true }], [{ authenticated: {} }]) } } };
    expect(decide(anyCert, { downstream: other }).allowed).toBe(true);
    expect(decide(anyCert, { downstream: downstream('127.0.0.1', 1, {}) }).allowed).toBe(false);
  });

  it('matches headers, pseudo-headers included, through the lookup it is given', () => {
    const rules = { rules: { policies: { h: policy([{ header: { name: ':method', string_match: { exact: 'GET' } } }], [{ header: { name: 'x-user', string_match: { prefix: 'admin-' } } }]) } } };
    const hdr = (m: Record<string, string>) => (n: string) => m[n];
    expect(decide(rules, { downstream: downstream('1.1.1.1', 1), header: hdr({ ':method': 'GET', 'x-user': 'admin-1' }) }).allowed).toBe(true);
    expect(decide(rules, { downstream: downstream('1.1.1.1', 1), header: hdr({ ':method': 'POST', 'x-user': 'admin-1' }) }).allowed).toBe(false);
    expect(decide(rules, { downstream: downstream('1.1.1.1', 1), header: hdr({ ':method': 'GET' }) }).allowed).toBe(false);
  });

  it('matches RPC interface and method through rpc_proxy metadata, and notes that it needs calls', () => {
    const rules = {
      rules: {
        action: 'DENY',
        policies: {
          admin: policy(
            [{ and_rules: { rules: [
              { metadata: { filter: 'strait.filters.network.rpc_proxy', path: [{ key: 'interface' }], value: { string_match: { exact: 'com.example.Admin' } } } },
              { metadata: { filter: 'strait.filters.network.rpc_proxy', path: [{ key: 'method' }], value: { string_match: { prefix: 'drop' } } } },
            ] } }],
            [{ any: true }],
          ),
        },
      },
    };
    const { c } = compile(rules);
    expect(c!.usesRpc).toBe(true);
    const call = (iface: string, method: string): RpcRequestView => ({ iface: () => iface, method: () => method, version: () => '', group: () => '', header: () => undefined });
    expect(decide(rules, { downstream: downstream('1.1.1.1', 1), rpc: call('com.example.Admin', 'dropAll') }).allowed).toBe(false);
    expect(decide(rules, { downstream: downstream('1.1.1.1', 1), rpc: call('com.example.Admin', 'list') }).allowed).toBe(true);
    expect(decide(rules, { downstream: downstream('1.1.1.1', 1), rpc: call('com.example.User', 'dropAll') }).allowed).toBe(true);
  });

  it('counts shadow rules without enforcing them, and LOG never denies', () => {
    const tc = {
      shadow_rules_stat_prefix: 'istio_dry_run_',
      shadow_rules: { action: 'DENY', policies: { all: policy([{ any: true }], [{ any: true }]) } },
      rules: { action: 'LOG', policies: { p: policy([{ destination_port: 1 }], [{ any: true }]) } },
    };
    const r = decide(tc, { downstream: downstream('1.1.1.1', 1) });
    expect(r.allowed).toBe(true);
    expect(r.stats.shadow_denied.value).toBe(1);
    expect(r.stats.logged.value).toBe(1);
    expect(r.store.get('t.rbac.istio_dry_run_shadow_denied')?.value).toBe(1);
    const miss = decide(tc, { downstream: downstream('1.1.1.1', 2) });
    expect(miss.allowed).toBe(true);
    expect(miss.stats.not_logged.value).toBe(1);
  });

  it('reports every unsupported or malformed rule with its path', () => {
    const { c, errors } = compile({
      rules: {
        policies: {
          a: { permissions: [{ destination_ip: { address_prefix: 'x' } }], principals: [{ any: true }], condition: { id: 1 } },
          b: { permissions: [{ any: true }], principals: [] },
          c: { permissions: [{ metadata: { filter: 'strait.filters.network.rpc_proxy', path: [{ key: 'nope' }], value: { string_match: { exact: 'x' } } } }], principals: [{ any: true }] },
        },
      },
      matcher: {},
    });
    expect(c).toBeNull();
    const paths = errors.map((e) => e.path);
    expect(paths).toContain('rbac.matcher');
    expect(paths).toContain('rbac.rules.policies.a.condition');
    expect(paths).toContain('rbac.rules.policies.a.permissions[0].destination_ip.address_prefix');
    expect(paths).toContain('rbac.rules.policies.b.principals');
    expect(paths).toContain('rbac.rules.policies.c.permissions[0].metadata.path');
  });

  it('warns about metadata namespaces nothing fills and treats them as absent', () => {
    const { c, warnings } = compile({ rules: { policies: { j: policy([{ any: true }], [{ metadata: { filter: 'istio_authn', path: [{ key: 'request.auth.principal' }], value: { string_match: { exact: 'x' } } } }]) } } });
    expect(warnings[0]!.path).toContain('metadata.filter');
    expect(c!.rules!.match({ downstream: downstream('1.1.1.1', 1) })).toBeNull();
  });
});
