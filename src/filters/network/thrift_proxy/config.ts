import { FrameKind, H, type LocalReplyKind } from '../../../protocols/types.js';
import { thriftCodec } from '../../../protocols/thrift/codec.js';
import { replyIsSuccess } from '../../../protocols/thrift/struct.js';
import type { RpcRoute } from '../../../router/rpc_route_table.js';
import { MetadataMatch } from '../../../upstream/subset/metadata_match.js';
import type { FactoryContext, NetworkFilterFactory } from '../types.js';
import type { RpcProxyConfig } from '../rpc_proxy/config.js';
import type { RpcExtension, RpcExtensionFactory } from '../rpc_proxy/extension.js';
import { RpcProxyFilter } from '../rpc_proxy/filter.js';
import { compileHeaderToMetadata, HEADER_TO_METADATA, HEADER_TO_METADATA_TYPE, headerMetadata } from './header_to_metadata.js';
import { compilePayloadToMetadata, PAYLOAD_TO_METADATA, PAYLOAD_TO_METADATA_TYPE, payloadMetadata } from './payload_to_metadata.js';
import { ThriftRouteTable, type ThriftRoute } from './route_table.js';
import { THRIFT_PROXY_STATS } from './stats.js';

type Obj = Record<string, any>;

export const THRIFT_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.v3.ThriftProxy';

const ROUTER = 'envoy.filters.thrift.router';
const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.router.v3.Router';

const DEFAULT_MAX_FRAME = 8 * 1024 * 1024;
const TRANSPORTS = ['AUTO_TRANSPORT', 'FRAMED', 'UNFRAMED', 'HEADER'];
const PROTOCOLS = ['AUTO_PROTOCOL', 'BINARY', 'LAX_BINARY', 'COMPACT', 'TWITTER'];

/** An enum by name, or by number as a binary (xDS) config carries it. */
function enumName(v: unknown, names: readonly string[]): string {
  if (v === undefined || v === null) return names[0]!;
  return typeof v === 'number' ? (names[v] ?? String(v)) : String(v);
}

/**
 * One metadata filter of the chain, applied to a request: adds its envoy.lb entries to `into`
 * (created when needed). Later filters overwrite earlier ones' keys, as Envoy's dynamic
 * metadata merges per namespace.
 */
type MetadataSource = (buf: Buffer, off: number, hdr: Int32Array, into: Obj | null) => Obj | null;

/** Envoy's thrift_proxy stats and the request-side features, bound to one filter's scope. */
function extension(sources: readonly MetadataSource[] | null): RpcExtensionFactory {
  return (scope) => {
    const st = scope.table(THRIFT_PROXY_STATS);
    return {
      onRequest(kind: number) {
        if (kind === FrameKind.REQUEST) st.request_call.value++;
      },
      onNoRoute() {
        st.route_missing.value++;
      },
      onMaxRequests() {
        st.downstream_cx_max_requests.value++;
      },
      callMetadata(route: RpcRoute, buf: Buffer, off: number, hdr: Int32Array) {
        if (!sources) return route.metadataMatch;
        let md: Obj | null = null;
        for (const s of sources) md = s(buf, off, hdr, md);
        const own = MetadataMatch.fromStruct(md);
        // The request's entries win over the route's (Envoy's Thrift router merges them so).
        return own ? (route.metadataMatch ? route.metadataMatch.mergedWith(own) : own) : route.metadataMatch;
      },
      rewrite(route: RpcRoute, buf: Buffer, off: number, hdr: Int32Array) {
        if (!(route as ThriftRoute).stripServiceName || hdr[H.SERVICE_LEN]! <= 0) return null;
        return stripServiceName(buf, off, hdr);
      },
      onResponse(buf: Buffer, off: number, hdr: Int32Array) {
        // The codec marks EXCEPTION messages with STATUS 1; anything else it passes is a REPLY.
        if (hdr[H.STATUS]! === 1) return void st.response_exception.value++;
        st.response_reply.value++;
        if (replyIsSuccess(buf, hdr[H.BODY_OFF]!, off + hdr[H.FRAME_LEN]!)) st.response_success.value++;
        else st.response_error.value++;
      },
      onLocalReply(_kind: LocalReplyKind, cause: 'no_host' | 'no_cluster' | null) {
        // Every local reply is a TApplicationException.
        st.response_exception.value++;
        if (cause === 'no_host') st.no_healthy_upstream.value++;
        else if (cause === 'no_cluster') st.unknown_cluster.value++;
      },
    } satisfies RpcExtension;
  };
}

/**
 * A copy of the request frame at `off` whose message name is `method` instead of
 * `Service:method` (strip_service_name: for providers behind a plain, non-multiplexed processor).
 * Everything before the name (frame length aside: a THeader block, the version word) is kept.
 */
function stripServiceName(buf: Buffer, off: number, hdr: Int32Array): Buffer {
  const nameOff = hdr[H.SERVICE_OFF]!;
  const cut = hdr[H.METHOD_OFF]! - nameOff; // "Service:"
  const frameLen = hdr[H.FRAME_LEN]!;
  const out = Buffer.allocUnsafe(frameLen - cut);
  // The name's i32 length sits right before it, in the strict form (after the version word)
  // and in the old one (where it starts the message) alike.
  buf.copy(out, 0, off, nameOff - 4);
  out.writeInt32BE(frameLen - cut - 4, 0);
  out.writeInt32BE(hdr[H.METHOD_LEN]!, nameOff - 4 - off);
  buf.copy(out, nameOff - off, hdr[H.METHOD_OFF]!, off + frameLen);
  return out;
}

function parseThriftFilters(list: Obj[] | undefined, path: string, ctx: FactoryContext): MetadataSource[] | null {
  const sources: MetadataSource[] = [];
  let router = false;
  (list ?? []).forEach((f, i) => {
    const p = `${path}[${i}]`;
    const type = f.typed_config?.['@type'] as string | undefined;
    const name = String(f.name ?? '');
    if (router) ctx.errors.push({ path: p, message: `comes after the router, which is the last thrift filter` });
    if (type === PAYLOAD_TO_METADATA_TYPE || (!type && name === PAYLOAD_TO_METADATA)) {
      const r = compilePayloadToMetadata((f.typed_config ?? {}) as Obj, `${p}.typed_config`, ctx.errors, ctx.warnings);
      if (r) sources.push((buf, off, hdr, into) => payloadMetadata(r, buf, off, hdr, into));
    } else if (type === HEADER_TO_METADATA_TYPE || (!type && name === HEADER_TO_METADATA)) {
      const r = compileHeaderToMetadata((f.typed_config ?? {}) as Obj, `${p}.typed_config`, ctx.errors, ctx.warnings);
      if (r) sources.push((buf, off, hdr, into) => headerMetadata(r, (n) => thriftCodec.lookup(buf, off, hdr, n), into));
    } else if (type === ROUTER_TYPE || (!type && name === ROUTER)) {
      router = true;
      if (f.typed_config?.close_downstream_on_upstream_error === true) ctx.errors.push({ path: `${p}.typed_config.close_downstream_on_upstream_error`, message: 'is not supported yet' });
    } else {
      ctx.errors.push({ path: type ? `${p}.typed_config` : `${p}.name`, message: `thrift filter "${type ?? name}" is not supported (supported: ${ROUTER}, ${PAYLOAD_TO_METADATA}, ${HEADER_TO_METADATA})` });
    }
  });
  return sources.length ? sources : null;
}

/**
 * Envoy's thrift_proxy on the RPC engine: the Thrift codec (framed transport, binary protocol),
 * a route table by message name, and the extension above for Envoy's stats and Thrift filters.
 */
function parseThriftProxy(tc: Obj, path: string, ctx: FactoryContext): RpcProxyConfig | null {
  const start = ctx.errors.length;
  const err = (field: string, message: string) => ctx.errors.push({ path: `${path}.${field}`, message });
  if (!tc.stat_prefix) err('stat_prefix', 'must not be empty');
  const transport = enumName(tc.transport, TRANSPORTS);
  if (transport === 'AUTO_TRANSPORT') {
    // Detection would pick framed, unframed or header; unframed is not implemented, and a
    // client using it is closed as a decoding error.
    ctx.warnings.push({ path: `${path}.transport`, message: 'AUTO_TRANSPORT detects the framed and header transports only; unframed clients are closed as decoding errors' });
  } else if (transport !== 'FRAMED' && transport !== 'HEADER') err('transport', `${transport} is not supported (FRAMED, HEADER or AUTO_TRANSPORT)`);
  const protocol = enumName(tc.protocol, PROTOCOLS);
  if (protocol === 'AUTO_PROTOCOL') {
    ctx.warnings.push({ path: `${path}.protocol`, message: 'AUTO_PROTOCOL detects the binary protocol only; compact-protocol clients are closed as decoding errors' });
  } else if (protocol !== 'BINARY' && protocol !== 'LAX_BINARY') err('protocol', `${protocol} is not supported (BINARY, LAX_BINARY or AUTO_PROTOCOL)`);
  if (tc.trds) err('trds', 'route discovery (trds) is not supported yet; use route_config');
  const maxRequests = Number(tc.max_requests_per_connection ?? 0);
  if (!Number.isInteger(maxRequests) || maxRequests < 0) err('max_requests_per_connection', 'must be a non-negative integer');
  if (Array.isArray(tc.access_log) && tc.access_log.length) err('access_log', 'is not supported yet');
  // payload_passthrough only lets Envoy skip decoding bodies; Strait never decodes them.
  // header_keys_preserve_case only changes the case of header names Envoy writes upstream;
  // Strait forwards THeader frames byte for byte, so their names keep the client's case.
  const sources = parseThriftFilters(tc.thrift_filters as Obj[] | undefined, `${path}.thrift_filters`, ctx);
  const routes = ThriftRouteTable.compile(tc.route_config as Obj | undefined, `${path}.route_config`, ctx.clusterNames, ctx.errors);
  if (ctx.errors.length > start) return null;
  return Object.freeze({
    statScope: 'thrift' as const,
    statPrefix: String(tc.stat_prefix),
    codec: 'thrift',
    routes,
    maxFrameBytes: DEFAULT_MAX_FRAME,
    rateLimit: null,
    upstreamHeartbeatMs: 0, // Thrift has no heartbeat
    accessLogs: null,
    tracing: null,
    extension: extension(sources),
    maxRequestsPerConnection: maxRequests,
  });
}

export const thriftProxyFactory = {
  name: 'envoy.filters.network.thrift_proxy',
  typeUrls: [THRIFT_PROXY_TYPE],
  terminal: true,
  parse: parseThriftProxy,
  create: (config, rt) => new RpcProxyFilter(config, rt),
} satisfies NetworkFilterFactory<RpcProxyConfig>;

