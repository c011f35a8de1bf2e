import crypto from 'node:crypto';
import type { Downstream } from '../../io/engine.js';
import { hasMetadataAccess } from '../../protocols/metadata.js';
import { H, type RpcCodec } from '../../protocols/types.js';
import type { RpcRequestView } from '../../router/rpc_route_table.js';
import type { ClusterManager } from '../../upstream/cluster_manager.js';
import type { Host } from '../../upstream/host.js';
import type { Scope } from '../stats.js';
import type { TracingConfig } from './config.js';
import { extract, newId, type IncomingContext } from './context.js';
import type { SpanReporter, ZipkinSpan } from './reporter.js';
import { endpoint, nowUs, reporterOf } from './tracer.js';

/** SOFATracer's keys in the Bolt header map (SOFARPC flattens its rpc_trace_context map with this prefix). */
const SOFA_TRACE_ID = 'rpc_trace_context.sofatraceid';
const SOFA_RPC_ID = 'rpc_trace_context.sofarpcid';

/**
 * Metadata keys read for a call's context, lower case (Brave writes B3 keys as X-B3-TraceId).
 * SOFATracer's baggage (rpc_trace_context.sofaPenAttrs) and every other entry pass through as sent.
 */
const WANTED = new Set(['x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'b3', 'traceparent', SOFA_TRACE_ID, SOFA_RPC_ID]);

const HEX_UP_TO_32 = /^[0-9a-f]{1,32}$/;
const ZERO = /^0+$/;

/** What a call's metadata said about its trace. */
interface Carried {
  values: Map<string, string>;
  /** The caller spelled B3 keys in Brave's mixed case: answer in the same spelling. */
  mixedCase: boolean;
}

function carried(codec: RpcCodec, buf: Buffer, off: number, hdr: Int32Array): Carried | null {
  if (!hasMetadataAccess(codec)) return null;
  const c: Carried = { values: new Map(), mixedCase: false };
  codec.entries(buf, off, hdr, (k, v) => {
    const lk = k.toLowerCase();
    if (!WANTED.has(lk)) return;
    if (lk !== k && lk.startsWith('x-b3-')) c.mixedCase = true;
    c.values.set(lk, v);
  });
  return c;
}

/**
 * SOFATracer ids are not Zipkin ids (a trace id is IP + time + sequence + pid, a span id a dotted
 * path like 0.1.2). Its trace id is usually hex and is kept when it fits 128 bits; otherwise, and
 * for the caller's span, a stable hash stands in, so every hop of one SOFA trace maps to one
 * trace and the same parent. The originals go on the span as tags.
 */
function fromSofa(traceId: string, rpcId: string): IncomingContext {
  const t = traceId.toLowerCase();
  const tid = HEX_UP_TO_32.test(t) && !ZERO.test(t) ? t.padStart(32, '0') : crypto.createHash('sha256').update(traceId).digest('hex').slice(0, 32);
  const sid = crypto.createHash('sha256').update(`${traceId}/${rpcId}`).digest('hex').slice(0, 16);
  return { traceId: tid, spanId: ZERO.test(sid) ? '0000000000000001' : sid, sampled: null, format: 'b3' };
}

/** A filter's RPC tracer: one per rpc_proxy config, shared by its connections. */
export class RpcTracer {
  private readonly reporter: SpanReporter;
  /** Where the rewritten frame's header is decoded; Call copies it before the next frame. */
  private readonly scratch = new Int32Array(H.SIZE);

  constructor(
    readonly config: TracingConfig,
    clusters: ClusterManager,
    root: Scope,
    /** localEndpoint.serviceName of every span: the filter's stat prefix. */
    readonly serviceName: string,
    private readonly maxFrameBytes: number,
  ) {
    this.reporter = reporterOf(config, clusters, root);
  }

  /**
   * Starts the span of the request at `off`: the caller's context from its metadata (W3C/B3 first,
   * then SOFATracer's), our sampling decision when it made none. null when not sampled: nothing is
   * recorded and the frame goes upstream untouched.
   */
  start(codec: RpcCodec, buf: Buffer, off: number, hdr: Int32Array, view: RpcRequestView, d: Downstream): RpcCallTrace | null {
    const c = carried(codec, buf, off, hdr);
    const get = (n: string) => c?.values.get(n);
    const inc = c ? extract(get, this.config.preferW3c) : null;
    let ctx = inc && 'traceId' in inc ? (inc as IncomingContext) : null;
    const sofaTrace = get(SOFA_TRACE_ID);
    const sofaRpc = get(SOFA_RPC_ID) ?? '';
    if (!ctx && sofaTrace) ctx = fromSofa(sofaTrace, sofaRpc);
    const decided = ctx ? ctx.sampled : (inc?.sampled ?? null);
    if (!(decided ?? Math.random() < this.config.randomSampling)) return null;
    const traceId = ctx?.traceId ?? (this.config.traceId128 ? newId() + newId() : newId());
    const t = new RpcCallTrace(this.reporter, this.serviceName, traceId, ctx?.spanId ?? null, codec.name, view, d);
    if (sofaTrace) {
      t.tags['sofa.trace_id'] = sofaTrace;
      if (sofaRpc) t.tags['sofa.rpc_id'] = sofaRpc;
    }
    if (hasMetadataAccess(codec)) {
      const set = t.outgoing(ctx?.format === 'b3-single' || c?.values.has('b3') === true, c?.mixedCase === true);
      const frame = codec.withEntries(buf, off, hdr, set);
      if (frame) {
        codec.decodeHeader(frame, 0, frame.length, Math.max(this.maxFrameBytes, frame.length), this.scratch);
        if (this.scratch[H.STATE] === 1) {
          t.frame = frame;
          t.frameHdr = this.scratch;
        }
      }
    }
    return t;
  }
}

/**
 * The span of one proxied call, from its request frame to its answer. The upstream frame
 * carries this span as the callee's parent (B3 and traceparent entries replaced), so the trace
 * reads caller → proxy → callee.
 */
export class RpcCallTrace {
  readonly id = newId();
  readonly tags: Record<string, string>;
  private readonly startUs = nowUs();
  private readonly t0 = performance.now();
  private done = false;
  /** The request rewritten to carry this span; null = send the original. */
  frame: Buffer | null = null;
  frameHdr: Int32Array | null = null;

  constructor(
    private readonly reporter: SpanReporter,
    private readonly serviceName: string,
    readonly traceId: string,
    readonly parentId: string | null,
    protocol: string,
    view: RpcRequestView,
    private readonly downstream: Downstream,
  ) {
    const iface = view.iface();
    const method = view.method();
    this.name = `${iface}/${method}`;
    this.tags = { component: 'proxy', 'rpc.system': protocol, 'rpc.service': iface, 'rpc.method': method };
    const version = view.version();
    if (version) this.tags['rpc.version'] = version;
    const group = view.group();
    if (group) this.tags['rpc.group'] = group;
  }

  private readonly name: string;

  /** The metadata entries that carry this span to the callee. */
  outgoing(single: boolean, mixedCase: boolean): Array<[string, string]> {
    const k = mixedCase ? ['X-B3-TraceId', 'X-B3-SpanId', 'X-B3-ParentSpanId', 'X-B3-Sampled'] : ['x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled'];
    const out: Array<[string, string]> = [
      [k[0]!, this.traceId],
      [k[1]!, this.id],
      [k[3]!, '1'],
      ['traceparent', `00-${this.traceId.padStart(32, '0')}-${this.id}-01`],
    ];
    if (this.parentId) out.push([k[2]!, this.parentId]);
    if (single) out.push(['b3', `${this.traceId}-${this.id}-1${this.parentId ? `-${this.parentId}` : ''}`]);
    return out;
  }

  /**
   * The call is over: `status` is the protocol's response status, or null with `error` naming
   * why the proxy answered (or dropped) it itself.
   */
  end(cluster: string | null, host: Host | null, status: number | null, error: string | null, failed: boolean): void {
    if (this.done) return;
    this.done = true;
    const tags = this.tags;
    if (cluster) tags.upstream_cluster = cluster;
    if (host) tags['peer.address'] = host.label;
    if (status !== null) tags['rpc.status_code'] = String(status);
    if (error) tags['error.reason'] = error;
    if (failed || error) tags.error = 'true';
    const span: ZipkinSpan = {
      traceId: this.traceId,
      id: this.id,
      name: this.name,
      kind: 'CLIENT',
      timestamp: this.startUs,
      duration: Math.max(1, Math.round((performance.now() - this.t0) * 1000)),
      localEndpoint: endpoint(this.downstream.local, this.serviceName),
      tags,
    };
    if (host) span.remoteEndpoint = endpoint(host.address);
    if (this.parentId) span.parentId = this.parentId;
    this.reporter.report(span);
  }
}
