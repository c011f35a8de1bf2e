import type { ClusterManager } from '../../upstream/cluster_manager.js';
import type { Scope } from '../stats.js';
import { defineStats } from '../stats.js';
import type { TraceSink } from './config.js';
import { BatchReporter, type ZipkinSpan } from './reporter.js';

/** `tracing.opentelemetry.*`, as Envoy's OpenTelemetry tracer names them. */
export const OTLP_STATS = defineStats({
  counters: ['spans_sent', 'spans_dropped', 'http_reports_sent', 'http_reports_dropped', 'http_reports_failed', 'reports_skipped_no_cluster', 'timer_flushed'],
  gauges: [],
});

type OtlpSink = Extract<TraceSink, { kind: 'otlp' }>;

interface KeyValue {
  key: string;
  value: { stringValue: string } | { intValue: string };
}

/** SpanKind in opentelemetry/proto/trace/v1/trace.proto. */
const KIND = { SERVER: 2, CLIENT: 3 } as const;
/** Status.StatusCode ERROR. */
const STATUS_ERROR = 2;

function attributes(span: ZipkinSpan): KeyValue[] {
  const out: KeyValue[] = [];
  for (const k in span.tags) if (k !== 'error') out.push({ key: k, value: { stringValue: span.tags[k]! } });
  const r = span.remoteEndpoint;
  const ip = r?.ipv4 ?? r?.ipv6;
  if (ip) out.push({ key: 'network.peer.address', value: { stringValue: ip } });
  if (r?.port) out.push({ key: 'network.peer.port', value: { intValue: String(r.port) } });
  return out;
}

/**
 * One span in the protobuf JSON mapping of opentelemetry.proto.trace.v1.Span. OTLP/JSON wants
 * ids as hex (not base64, its one departure from the mapping), 64-bit times as decimal strings,
 * and 128-bit trace ids: a 64-bit B3 id is left-padded, as it is in traceparent.
 */
function otlpSpan(s: ZipkinSpan): Record<string, unknown> {
  // Microseconds to nanoseconds by appending digits: exact, where a Number would lose precision.
  const start = s.timestamp;
  const end = s.timestamp + s.duration;
  const o: Record<string, unknown> = {
    traceId: s.traceId.padStart(32, '0'),
    spanId: s.id,
    name: s.name,
    kind: KIND[s.kind],
    startTimeUnixNano: `${start}000`,
    endTimeUnixNano: `${end}000`,
    attributes: attributes(s),
  };
  if (s.parentId) o.parentSpanId = s.parentId;
  if (s.tags.error === 'true') o.status = { code: STATUS_ERROR };
  return o;
}

/** Posts batches as an ExportTraceServiceRequest (OTLP/HTTP, JSON encoding), one resource per service name. */
export class OtlpReporter extends BatchReporter {
  constructor(
    private readonly sink: OtlpSink,
    clusters: ClusterManager,
    root: Scope,
  ) {
    const st = root.scope('tracing').scope('opentelemetry').table(OTLP_STATS);
    super({ cluster: sink.cluster, path: sink.path, hostname: sink.hostname, timeoutMs: sink.timeoutMs, headers: sink.headers, what: 'opentelemetry' }, clusters, {
      sent: (n) => {
        st.http_reports_sent.value++;
        st.spans_sent.value += n;
      },
      refused: () => st.http_reports_dropped.value++,
      dropped: () => st.spans_dropped.value++,
      failed: () => st.http_reports_failed.value++,
      noCluster: () => st.reports_skipped_no_cluster.value++,
      timerFlushed: () => st.timer_flushed.value++,
    });
  }

  protected encode(spans: ZipkinSpan[]): string {
    const byService = new Map<string, Array<Record<string, unknown>>>();
    for (const s of spans) {
      const svc = this.sink.serviceName || s.localEndpoint.serviceName || 'strait';
      let list = byService.get(svc);
      if (!list) byService.set(svc, (list = []));
      list.push(otlpSpan(s));
    }
    const resourceSpans = [];
    for (const [svc, list] of byService) {
      resourceSpans.push({
        resource: { attributes: [{ key: 'service.name', value: { stringValue: svc } }] },
        scopeSpans: [{ scope: { name: 'strait' }, spans: list }],
      });
    }
    return JSON.stringify({ resourceSpans });
  }
}

const REPORTERS = new Map<string, OtlpReporter>();

/** The process's reporter for a receiver; tracers with the same settings share one batch. */
export function otlpReporterFor(sink: OtlpSink, clusters: ClusterManager, root: Scope): OtlpReporter {
  const key = JSON.stringify(sink);
  let r = REPORTERS.get(key);
  if (!r) REPORTERS.set(key, (r = new OtlpReporter(sink, clusters, root)));
  return r;
}
