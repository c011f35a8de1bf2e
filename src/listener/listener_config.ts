import net from 'node:net';
import type { FieldError } from '../errors.js';
import { findNetworkFilter, networkFilterNames } from '../filters/network/registry.js';
import type { FactoryContext, NetworkFilterFactory } from '../filters/network/types.js';
import type { ListenAddress } from '../io/engine.js';
import { durationMs } from '../config/values.js';
import { NO_SECRETS, parseDownstreamTls, type TlsContextSpec } from '../tls/context.js';
import type { PeerAddress } from '../io/engine.js';
import { compileChainMatcher, type MatchConnection } from './chain_matcher.js';
import { compileMatch, needsInspection, selectChain, type ChainMatcher, type ConnectionFacts } from './filter_chain_match.js';
import { buildProxyProtocolSpec, PROXY_PROTOCOL_FILTER, PROXY_PROTOCOL_TYPE, type ProxyProtocolSpec } from './proxy_protocol.js';

type Obj = Record<string, any>;

const DEFAULT_BUFFER_LIMIT = 1024 * 1024;

export interface FilterSpec {
  readonly name: string;
  readonly factory: NetworkFilterFactory<unknown>;
  readonly config: unknown;
}

export interface FilterChainSpec {
  readonly name: string;
  readonly matcher: ChainMatcher;
  readonly filters: readonly FilterSpec[];
  /** The DownstreamTlsContext of the chain's transport_socket; null = plaintext. */
  readonly tls: TlsContextSpec | null;
  /** transport_socket_connect_timeout: the longest a TLS handshake may take; 0 = unbounded. */
  readonly handshakeTimeoutMs: number;
}

export type ChooseChain = (local: PeerAddress, remote: PeerAddress, facts?: ConnectionFacts, directRemote?: PeerAddress) => number;

const RAW_FACTS: ConnectionFacts = Object.freeze({ transport: 'raw_buffer', sni: '', alpn: Object.freeze([]) as readonly string[] });

/** A validated, frozen listener definition. */
export interface ListenerSpec {
  readonly name: string;
  readonly address: ListenAddress;
  /** `listener.<this>.` in stats; '' means "derive from the bound address", as Envoy does. */
  readonly statPrefix: string;
  readonly chains: readonly FilterChainSpec[];
  readonly defaultChain: FilterChainSpec | null;
  readonly bufferLimit: number;
  readonly backlog: number;
  /**
   * `use_original_dst` (or the `envoy.filters.listener.original_dst` listener filter): a
   * connection redirected by iptables/nft gets its original destination back as its local
   * address, for filter chain matching and ORIGINAL_DST clusters.
   */
  readonly useOriginalDst: boolean;
  /**
   * `bind_to_port` (default true). False: no socket of its own; the listener serves connections
   * that a `use_original_dst` listener accepted and whose original destination is its address
   * (Istio's per-port outbound listeners behind virtualOutbound).
   */
  readonly bindToPort: boolean;
  /**
   * The index in `chains` of the chain a connection gets, -1 for the default chain (or none):
   * `filter_chain_matcher` when set, else the chains' `filter_chain_match` rules. `directRemote`
   * is the socket's own peer when proxy_protocol gave the connection another source.
   */
  readonly chooseChain: ChooseChain;
  /**
   * Read the ClientHello before choosing a chain: a tls_inspector is configured, or a chain
   * matches on server_names / transport_protocol tls / application_protocols (Envoy injects
   * the inspector then too).
   */
  readonly inspectTls: boolean;
  /**
   * `envoy.filters.listener.http_inspector`: plaintext connections whose first bytes are an
   * HTTP/1.x request line or the HTTP/2 preface match chains by application_protocols
   * (`http/1.1`, `http/1.0`, `h2c`), so one port can carry HTTP and RPC.
   */
  readonly inspectHttp: boolean;
  /**
   * `envoy.filters.listener.proxy_protocol`: each connection starts with a PROXY header whose
   * addresses replace the connection's (src/listener/proxy_protocol.ts); null = off.
   */
  readonly proxyProtocol: ProxyProtocolSpec | null;
  /** listener_filters_timeout (Envoy's default 15 s); 0 = none. */
  readonly listenerFiltersTimeoutMs: number;
  /** On that timeout: true = go on as plaintext, false = close (Envoy's default). */
  readonly continueOnListenerFiltersTimeout: boolean;
  readonly source: unknown;
}

export const TLS_INSPECTOR = 'envoy.filters.listener.tls_inspector';
const HTTP_INSPECTOR = 'envoy.filters.listener.http_inspector';
const HTTP_INSPECTOR_TYPE = 'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector';
const TLS_INSPECTOR_TYPE = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';
const DEFAULT_LISTENER_FILTERS_TIMEOUT_MS = 15_000;

export function listenAddress(a: Obj | undefined, path: string, errors: FieldError[]): ListenAddress | null {
  if (!a) {
    errors.push({ path, message: 'is required' });
    return null;
  }
  if (a.pipe) {
    const p = String(a.pipe.path ?? '');
    if (!p) errors.push({ path: `${path}.pipe.path`, message: 'is required' });
    if (p.startsWith('@')) errors.push({ path: `${path}.pipe.path`, message: 'abstract unix sockets are not supported' });
    return { kind: 'unix', path: p, ...(a.pipe.mode ? { mode: Number(a.pipe.mode) } : {}) };
  }
  if (a.envoy_internal_address) {
    errors.push({ path: `${path}.envoy_internal_address`, message: 'internal addresses are not supported' });
    return null;
  }
  const sa = a.socket_address as Obj | undefined;
  if (!sa) {
    errors.push({ path, message: 'must be a socket_address or a pipe' });
    return null;
  }
  const host = String(sa.address ?? '');
  if (net.isIP(host) === 0) {
    errors.push({ path: `${path}.socket_address.address`, message: `"${host}" is not an IP address (listeners bind to IP literals)` });
    return null;
  }
  if (sa.protocol && sa.protocol !== 'TCP') {
    errors.push({ path: `${path}.socket_address.protocol`, message: `${sa.protocol} listeners are not supported` });
  }
  if (sa.named_port) errors.push({ path: `${path}.socket_address.named_port`, message: 'named ports are not supported' });
  return { kind: 'tcp', host, port: Number(sa.port_value ?? 0) };
}

function buildChain(fc: Obj, path: string, ctx: FactoryContext): FilterChainSpec | null {
  const start = ctx.errors.length;
  const tls = fc.transport_socket ? parseDownstreamTls(fc.transport_socket, `${path}.transport_socket`, ctx.secrets ?? NO_SECRETS, ctx.errors) : null;
  const matcher = compileMatch(fc.filter_chain_match, `${path}.filter_chain_match`, ctx.errors);
  const filters: FilterSpec[] = [];
  const list = (fc.filters ?? []) as Obj[];
  if (list.length === 0) ctx.errors.push({ path: `${path}.filters`, message: 'a filter chain needs at least one network filter' });
  list.forEach((f, i) => {
    const fpath = `${path}.filters[${i}]`;
    const name = String(f.name ?? '');
    const tc = f.typed_config as Obj | undefined;
    const typeUrl = tc?.['@type'] as string | undefined;
    if (f.config_discovery) {
      ctx.errors.push({ path: `${fpath}.config_discovery`, message: 'filter config discovery (ECDS) is not supported yet' });
      return;
    }
    const factory = findNetworkFilter(name, typeUrl);
    if (!factory) {
      ctx.errors.push({
        path: typeUrl ? `${fpath}.typed_config.@type` : `${fpath}.name`,
        message: `unsupported network filter "${name}"${typeUrl ? ` (${typeUrl})` : ''}; supported: ${networkFilterNames().join(', ')}`,
      });
      return;
    }
    if (factory.terminal && i !== list.length - 1) {
      ctx.errors.push({ path: fpath, message: `${factory.name} is a terminal filter and must be the last in its chain` });
    }
    const config = factory.parse(tc ?? {}, `${fpath}.typed_config`, ctx);
    if (config !== null) filters.push({ name: factory.name, factory, config });
  });
  const last = filters[filters.length - 1];
  // Only when every filter parsed: a refused terminal is reported already, and the non-terminal
  // filters before it (istio_authn) would otherwise add a misleading second error.
  if (last && !last.factory.terminal && filters.length === list.length) ctx.errors.push({ path: `${path}.filters`, message: 'the last filter of a chain must be a terminal filter (e.g. tcp_proxy)' });
  for (const factory of new Set(filters.map((f) => f.factory))) if (factory.checkChain) ctx.errors.push(...factory.checkChain(filters, `${path}.filters`));
  if (ctx.errors.length > start) return null;
  return Object.freeze({
    name: String(fc.name ?? ''),
    matcher,
    filters: Object.freeze(filters),
    tls,
    handshakeTimeoutMs: durationMs(fc.transport_socket_connect_timeout) ?? 0,
  });
}

const ORIGINAL_DST_FILTER = 'envoy.filters.listener.original_dst';
const ORIGINAL_DST_TYPE = 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst';

/** Fields that change how a listener behaves and that Strait does not implement yet. */
const UNSUPPORTED = ['transparent', 'internal_listener', 'udp_listener_config', 'api_listener', 'fcds_config', 'additional_addresses'] as const;

export function buildListenerSpec(l: Obj, path: string, ctx: FactoryContext): ListenerSpec | null {
  const start = ctx.errors.length;
  const name = String(l.name ?? '');
  if (!name) ctx.errors.push({ path: `${path}.name`, message: 'is required (listeners are referred to by name)' });
  const address = listenAddress(l.address, `${path}.address`, ctx.errors);
  for (const f of UNSUPPORTED) {
    if (l[f] !== undefined && l[f] !== false) ctx.errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
  }
  let useOriginalDst = l.use_original_dst === true;
  const bindToPort = l.bind_to_port !== false;
  if (!bindToPort && address?.kind === 'unix') ctx.errors.push({ path: `${path}.bind_to_port`, message: 'false needs a socket_address: only IP connections are handed over by original destination' });
  let inspector = false;
  let inspectHttp = false;
  let proxyProtocol: ProxyProtocolSpec | null = null;
  (l.listener_filters ?? []).forEach((lf: Obj, i: number) => {
    if (lf.name === PROXY_PROTOCOL_FILTER || lf.typed_config?.['@type'] === PROXY_PROTOCOL_TYPE) {
      proxyProtocol = buildProxyProtocolSpec(lf.typed_config, `${path}.listener_filters[${i}].typed_config`, ctx.errors);
      return;
    }
    if (lf.name === HTTP_INSPECTOR || lf.typed_config?.['@type'] === HTTP_INSPECTOR_TYPE) {
      // Reading the first bytes is shared with the tls_inspector's path.
      inspectHttp = inspector = true;
      return;
    }
    if (lf.name === ORIGINAL_DST_FILTER || lf.typed_config?.['@type'] === ORIGINAL_DST_TYPE) {
      useOriginalDst = true;
      return;
    }
    if (lf.name === TLS_INSPECTOR || lf.typed_config?.['@type'] === TLS_INSPECTOR_TYPE) {
      inspector = true;
      return;
    }
    ctx.errors.push({ path: `${path}.listener_filters[${i}]`, message: `listener filter "${lf.name}" is not supported yet` });
  });
  const chains: FilterChainSpec[] = [];
  const seen = new Map<string, number>();
  const byMatcher = l.filter_chain_matcher !== undefined && l.filter_chain_matcher !== null;
  ((l.filter_chains ?? []) as Obj[]).forEach((fc, i) => {
    const c = buildChain(fc, `${path}.filter_chains[${i}]`, ctx);
    if (!c) return;
    if (byMatcher) {
      // The matcher names chains: names must be there and unique; filter_chain_match is not read.
      const prev = seen.get(`name:${c.name}`);
      if (!c.name) ctx.errors.push({ path: `${path}.filter_chains[${i}].name`, message: 'is required when filter_chain_matcher is set (its actions name chains)' });
      else if (prev !== undefined) ctx.errors.push({ path: `${path}.filter_chains[${i}].name`, message: `duplicate filter chain name "${c.name}" (also filter_chains[${prev}])` });
      seen.set(`name:${c.name}`, i);
      if (fc.filter_chain_match && Object.keys(fc.filter_chain_match).length) {
        ctx.warnings.push({ path: `${path}.filter_chains[${i}].filter_chain_match`, message: 'is ignored: filter_chain_matcher chooses the chain' });
      }
      chains.push(c);
      return;
    }
    const prev = seen.get(c.matcher.key);
    if (prev !== undefined) {
      ctx.errors.push({ path: `${path}.filter_chains[${i}].filter_chain_match`, message: `same matching rules as filter_chains[${prev}]` });
    }
    seen.set(c.matcher.key, i);
    chains.push(c);
  });
  const defaultChain = l.default_filter_chain ? buildChain(l.default_filter_chain, `${path}.default_filter_chain`, ctx) : null;
  if (!l.filter_chains?.length && !l.default_filter_chain) {
    ctx.errors.push({ path: `${path}.filter_chains`, message: 'a listener needs at least one filter chain' });
  }
  let chooseChain: ChooseChain;
  let inspectTls = inspector;
  if (byMatcher) {
    const compiled = compileChainMatcher(l.filter_chain_matcher, `${path}.filter_chain_matcher`, ctx.errors);
    const index = new Map(chains.map((c, i) => [c.name, i]));
    for (const a of compiled.actions) {
      // Envoy accepts this too: the match then fails at run time and the default chain serves.
      if (!index.has(a)) ctx.warnings.push({ path: `${path}.filter_chain_matcher`, message: `an action names filter chain "${a}", which this listener does not have (such connections get the default chain, or are closed)` });
    }
    // As with filter_chain_match's SNI/ALPN criteria, reading them brings in the inspector.
    inspectTls ||= compiled.inspects;
    chooseChain = (local, remote, facts = RAW_FACTS, directRemote = remote) => {
      const name = compiled.evaluate({ local, remote, directRemote, facts } satisfies MatchConnection);
      return name === null ? -1 : (index.get(name) ?? -1);
    };
  } else {
    const matchers = chains.map((c) => c.matcher);
    inspectTls ||= [...chains, ...(defaultChain ? [defaultChain] : [])].some((c) => needsInspection(c.matcher));
    chooseChain = (local, remote, facts) => selectChain(matchers, local, remote, facts);
  }
  if (proxyProtocol && (inspectTls || chains.some((c) => c.tls) || defaultChain?.tls)) {
    // Both read the first bytes off the connection; chaining them is not built yet.
    ctx.errors.push({ path: `${path}.listener_filters`, message: 'proxy_protocol together with TLS or the tls/http inspectors on one listener is not supported yet' });
  }
  if (ctx.errors.length > start || !address) return null;
  return Object.freeze({
    name,
    address,
    statPrefix: String(l.stat_prefix ?? ''),
    chains: Object.freeze(chains),
    defaultChain,
    bufferLimit: l.per_connection_buffer_limit_bytes ?? DEFAULT_BUFFER_LIMIT,
    backlog: l.tcp_backlog_size ?? 1024,
    useOriginalDst,
    bindToPort,
    inspectHttp,
    inspectTls,
    chooseChain,
    proxyProtocol,
    listenerFiltersTimeoutMs: durationMs(l.listener_filters_timeout) ?? DEFAULT_LISTENER_FILTERS_TIMEOUT_MS,
    continueOnListenerFiltersTimeout: l.continue_on_listener_filters_timeout === true,
    source: l,
  });
}
