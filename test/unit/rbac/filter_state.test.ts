import { describe, expect, it } from 'vitest';
import { decodeResource } from '../../../src/config/bootstrap.js';
import { newContext } from '../../../src/config/proto-json.js';
import type { FieldError } from '../../../src/errors.js';
import { istioAuthnFactory } from '../../../src/filters/network/istio_authn/config.js';
import type { ConnectionContext, NetworkFilter, RuntimeContext } from '../../../src/filters/network/types.js';
import type { Downstream } from '../../../src/io/engine.js';
import { FilterState, LOCAL_PRINCIPAL_KEY, PEER_PRINCIPAL_KEY } from '../../../src/io/filter_state.js';
import { buildListenerSpec } from '../../../src/listener/listener_config.js';
import { parseRbacConfig } from '../../../src/rbac/engine.js';
import type { RpcRequestView } from '../../../src/router/rpc_route_table.js';
import { stripPrivateExtensions } from '../../../src/xds/client/extensions.js';

type Obj = Record<string, any>;

const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';

function downstream(state: Record<string, string> | null, tls: Partial<NonNullable<Downstream['tls']>> | null = null): Downstream {
  let filterState: FilterState | null = null;
  if (state) {
    filterState = new FilterState();
    for (const [k, v] of Object.entries(state)) filterState.setReadOnly(k, v);
  }
  return {
    remote: { family: 'IPv4', address: '10.0.0.1', port: 40000 },
    local: { family: 'IPv4', address: '10.0.0.2', port: 8080 },
    tls: tls ? { sni: '', alpn: '', version: 'TLSv1.3', peerUriSans: [], peerDnsSans: [], peerSubject: '', ...tls } : null,
    filterState,
    close() {},
  };
}

function compile(principal: Obj, permission: Obj = { any: true }) {
  const errors: FieldError[] = [];
  const warnings: FieldError[] = [];
  const c = parseRbacConfig({ rules: { policies: { p: { permissions: [permission], principals: [principal] } } } }, 'rbac', errors, warnings);
  return { c, errors, warnings, matches: (d: Downstream, rpc?: RpcRequestView) => c!.rules!.match({ downstream: d, rpc: rpc ?? null }) === 'p' };
}

/** Istio's principal for `principals: [cluster.local/ns/default/sa/sleep]` (configdump.yaml). */
const ISTIO_SLEEP = { and_ids: { ids: [{ or_ids: { ids: [{ filter_state: { key: PEER_PRINCIPAL_KEY, string_match: { exact: SLEEP } } }] } }] } };

/** The JWT half of the corpus's ns[default]-policy[httpbin]-rule[0] principal. */
const ISS = { metadata: { filter: 'istio_authn', path: [{ key: 'request.auth.claims' }, { key: 'iss' }], value: { list_match: { one_of: { string_match: { exact: 'https://accounts.google.com' } } } } } };

describe('RBAC filter_state', () => {
  it('matches the connection filter state by key and string_match; an absent key or state never matches', () => {
    const { errors, matches } = compile(ISTIO_SLEEP);
    expect(errors).toEqual([]);
    expect(matches(downstream({ [PEER_PRINCIPAL_KEY]: SLEEP }))).toBe(true);
    expect(matches(downstream({ [PEER_PRINCIPAL_KEY]: 'spiffe://cluster.local/ns/default/sa/web' }))).toBe(false);
    // Another key with the right value, an empty state, no state at all.
    expect(matches(downstream({ [LOCAL_PRINCIPAL_KEY]: SLEEP }))).toBe(false);
    expect(matches(downstream({}))).toBe(false);
    expect(matches(downstream(null))).toBe(false);
    // Absent stays absent under not_id: the negation matches.
    expect(compile({ not_id: ISTIO_SLEEP }).matches(downstream(null))).toBe(true);
  });

  it('takes any StringMatcher, as Istio does for namespaces (safe_regex) and prefixes', () => {
    const ns = compile({ filter_state: { key: PEER_PRINCIPAL_KEY, string_match: { safe_regex: { regex: '.*/ns/test/.*' } } } });
    expect(ns.errors).toEqual([]);
    expect(ns.matches(downstream({ [PEER_PRINCIPAL_KEY]: 'spiffe://cluster.local/ns/test/sa/x' }))).toBe(true);
    expect(ns.matches(downstream({ [PEER_PRINCIPAL_KEY]: SLEEP }))).toBe(false);
  });

  it('works as a permission too', () => {
    const { errors, matches } = compile({ any: true }, { filter_state: { key: 'k', string_match: { prefix: 'v' } } });
    expect(errors).toEqual([]);
    expect(matches(downstream({ k: 'value' }))).toBe(true);
    expect(matches(downstream(null))).toBe(false);
  });

  it('refuses address_match, a missing key and a missing matcher with their paths', () => {
    const errs = (fsm: Obj) => compile({ filter_state: fsm }).errors;
    expect(errs({ key: PEER_PRINCIPAL_KEY, address_match: { ranges: [] } })).toEqual([
      { path: 'rbac.rules.policies.p.principals[0].filter_state.address_match', message: 'is not supported yet (only string_match)' },
    ]);
    expect(errs({ string_match: { exact: SLEEP } })).toEqual([{ path: 'rbac.rules.policies.p.principals[0].filter_state.key', message: 'is required' }]);
    expect(errs({ key: 'k' })).toEqual([{ path: 'rbac.rules.policies.p.principals[0].filter_state', message: 'needs string_match' }]);
    expect(errs({ key: 'k', string_match: { safe_regex: { regex: '(' } } })[0]!.path).toBe('rbac.rules.policies.p.principals[0].filter_state.string_match.safe_regex.regex');
  });

  it('keeps the first value of a key: read-only, as Istio sets its principals', () => {
    const fs = new FilterState();
    expect(fs.setReadOnly('k', 'a')).toBe(true);
    expect(fs.setReadOnly('k', 'b')).toBe(false);
    expect(fs.get('k')).toBe('a');
    expect(fs.get('other')).toBeUndefined();
  });
});

describe('RBAC metadata value matchers', () => {
  const rpc = (method: string): RpcRequestView => ({ iface: () => 'com.example.A', method: () => method, version: () => '', group: () => '', header: () => undefined });
  const onMethod = (value: Obj, invert = false) => compile({ any: true }, { metadata: { filter: 'strait.filters.network.rpc_proxy', path: [{ key: 'method' }], value, invert } });

  it('loads the corpus principal (filter_state and istio_authn JWT claims): the claims, never set by Strait, never match', () => {
    const { errors, warnings, matches } = compile({ and_ids: { ids: [{ or_ids: { ids: [ISTIO_SLEEP] } }, { or_ids: { ids: [ISS] } }] } });
    expect(errors).toEqual([]);
    expect(warnings).toEqual([
      { path: 'rbac.rules.policies.p.principals[0].and_ids.ids[1].or_ids.ids[0].metadata.filter', message: 'metadata namespace "istio_authn" is never set by Strait; it matches as absent' },
    ]);
    expect(matches(downstream({ [PEER_PRINCIPAL_KEY]: SLEEP }))).toBe(false);
    // Inverted, the absent list matches.
    expect(compile({ metadata: { ...ISS.metadata, invert: true } }).matches(downstream(null))).toBe(true);
  });

  it('list_match, bool_match, null_match and double_match never match a string value (RPC metadata)', () => {
    for (const value of [{ list_match: { one_of: { string_match: { exact: 'get' } } } }, { bool_match: true }, { null_match: {} }, { double_match: { exact: 1 } }]) {
      const { errors, matches } = onMethod(value);
      expect(errors).toEqual([]);
      expect(matches(downstream(null), rpc('get')), JSON.stringify(value)).toBe(false);
      expect(onMethod(value, true).matches(downstream(null), rpc('get'))).toBe(true);
    }
    expect(onMethod({ or_match: { value_matchers: [{ string_match: { exact: 'a' } }, { string_match: { exact: 'get' } }] } }).matches(downstream(null), rpc('get'))).toBe(true);
  });

  it('present_match: true matches a present value; false matches nothing, as in Envoy', () => {
    expect(onMethod({ present_match: true }).matches(downstream(null), rpc('get'))).toBe(true);
    expect(onMethod({ present_match: true }).matches(downstream(null), rpc(''))).toBe(false);
    expect(onMethod({ present_match: false }).matches(downstream(null), rpc(''))).toBe(false);
    expect(onMethod({ present_match: false }).matches(downstream(null), rpc('get'))).toBe(false);
  });

  it('refuses value matchers it cannot evaluate, and malformed nested ones, with their paths', () => {
    const at = 'rbac.rules.policies.p.principals[0].metadata.value';
    const errs = (value: Obj) => compile({ metadata: { filter: 'istio_authn', path: [{ key: 'x' }], value } }).errors;
    expect(errs({})).toEqual([{ path: at, message: 'needs one of string_match, present_match, bool_match, null_match, double_match, list_match, or_match' }]);
    expect(errs({ list_match: {} })).toEqual([{ path: `${at}.list_match.one_of`, message: 'is required (a ValueMatcher)' }]);
    expect(errs({ list_match: { one_of: { list_match: { one_of: {} } } } })).toEqual([
      { path: `${at}.list_match.one_of.list_match.one_of`, message: 'needs one of string_match, present_match, bool_match, null_match, double_match, list_match, or_match' },
    ]);
    expect(errs({ list_match: { one_of: { string_match: { safe_regex: { regex: '(' } } } } })[0]!.path).toBe(`${at}.list_match.one_of.string_match.safe_regex.regex`);
    expect(errs({ double_match: {} })).toEqual([{ path: `${at}.double_match`, message: 'needs exact or range' }]);
    expect(errs({ or_match: { value_matchers: [{ bool_match: true }] } })).toEqual([{ path: `${at}.or_match.value_matchers`, message: 'needs at least 2 matchers' }]);
  });
});

describe('istio_authn network filter', () => {
  const rt = {} as RuntimeContext;
  function run(tls: Partial<NonNullable<Downstream['tls']>> | null): Downstream {
    const d = downstream(null, tls);
    let seen: ConnectionContext | null = null;
    const next: NetworkFilter = { onNewConnection: (c) => (seen = c) };
    const errors: FieldError[] = [];
    const config = istioAuthnFactory.parse({ '@type': 'type.googleapis.com/io.istio.network.authn.Config' }, 'f', { clusterNames: new Set(), errors, warnings: [] });
    expect(errors).toEqual([]);
    const conn = { downstream: d, bufferLimit: 1 << 20, abort: null, done() {} } as ConnectionContext;
    istioAuthnFactory.create(config, rt, next).onNewConnection(conn);
    // Never refuses: the connection always goes on.
    expect(seen).toBe(conn);
    return d;
  }

  it('records the first spiffe:// URI SAN of the peer and of the local certificate', () => {
    const d = run({ peerCertSha256: 'ab', peerUriSans: ['https://example.com/x', SLEEP, 'spiffe://cluster.local/ns/default/sa/other'], localUriSans: ['spiffe://cluster.local/ns/default/sa/httpbin'] });
    expect(d.filterState!.get(PEER_PRINCIPAL_KEY)).toBe(SLEEP);
    expect(d.filterState!.get(LOCAL_PRINCIPAL_KEY)).toBe('spiffe://cluster.local/ns/default/sa/httpbin');
  });

  it('sets nothing without a peer certificate, for plaintext, or without a SPIFFE SAN', () => {
    expect(run({ peerCertSha256: '', localUriSans: [SLEEP] }).filterState ?? null).toBeNull();
    expect(run(null).filterState ?? null).toBeNull();
    const noSpiffe = run({ peerCertSha256: 'ab', peerUriSans: ['https://example.com/x'], localUriSans: [SLEEP] });
    expect(noSpiffe.filterState!.get(PEER_PRINCIPAL_KEY)).toBeUndefined();
    expect(noSpiffe.filterState!.get(LOCAL_PRINCIPAL_KEY)).toBe(SLEEP);
  });
});

describe('istio_authn from a control plane', () => {
  const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
  /** An Istio-shaped inbound listener, decoded as the xDS client decodes it (unknown types kept opaque), then built. */
  function build(hcmFilters: Obj[]) {
    const ctx = newContext('opaque');
    const listener = decodeResource(
      'envoy.config.listener.v3.Listener',
      {
        name: 'virtualInbound',
        address: { socket_address: { address: '127.0.0.1', port_value: 15006 } },
        filter_chains: [
          {
            filters: [
              { name: 'istio_authn', typed_config: { '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct', type_url: 'type.googleapis.com/io.istio.network.authn.Config' } },
              { name: 'istio.stats', typed_config: { '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct', type_url: 'type.googleapis.com/stats.PluginConfig', value: {} } },
              {
                name: 'envoy.filters.network.http_connection_manager',
                typed_config: { '@type': HCM, stat_prefix: 'inbound', route_config: { name: 'r' }, http_filters: [...hcmFilters, { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }] },
              },
            ],
          },
        ],
      },
      '',
      ctx,
    ) as Obj;
    expect(ctx.errors).toEqual([]);
    const warnings: FieldError[] = [];
    const errors: FieldError[] = [];
    const spec = buildListenerSpec(stripPrivateExtensions(listener, warnings), '', { clusterNames: new Set(), errors, warnings });
    return { spec, errors, warnings };
  }

  it('is kept (decoded from its TypedStruct) while other private extensions are still skipped with a warning', () => {
    const { spec, errors, warnings } = build([]);
    expect(errors).toEqual([]);
    expect(spec!.chains[0]!.filters.map((f) => f.name)).toEqual(['io.istio.network.authn', 'envoy.filters.network.http_connection_manager']);
    expect(warnings.map((w) => w.path)).toEqual(['filter_chains[0].filters[1]']);
  });

  it('adds no second error when the terminal filter after it is refused', () => {
    const { spec, errors } = build([{ name: 'envoy.filters.http.jwt_authn', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication' } }]);
    expect(spec).toBeNull();
    expect(errors).toHaveLength(1);
    // filters[1]: the index after istio.stats was skipped (stripPrivateExtensions renumbers).
    expect(errors[0]!.path).toBe('.filter_chains[0].filters[1].typed_config.http_filters[0]');
    expect(errors[0]!.message).toContain('jwt_authn');
  });
});
