import type { FieldError } from '../../errors.js';
import type { Scope } from '../../observability/stats.js';
import type { HeaderLookup } from '../../router/header_matcher.js';

/** What an HTTP filter sees of a request, whatever the codec. `header` takes lower-case names. */
export interface HttpFilterRequest {
  readonly method: string;
  readonly path: string;
  readonly header: HeaderLookup;
  /** content-type application/grpc*: a local reply must be a gRPC status. */
  readonly grpc: boolean;
  /** The connection the request came on (addresses, TLS peer), for filters that judge the client. */
  readonly downstream?: import('../../io/engine.js').Downstream;
}

/** A response the filter wants the connection manager to send instead of routing. */
export interface FilterReply {
  readonly status: number;
  readonly body: string;
  /** For gRPC requests: the grpc-status to send (HTTP 200); derived from `status` when absent. */
  readonly grpcStatus?: number;
  readonly headers?: ReadonlyArray<readonly [string, string]>;
}

/** null = carry on untouched. `delayMs` comes first, then `reply` (if any) or routing. */
export interface FilterVerdict {
  readonly delayMs: number;
  readonly reply: FilterReply | null;
}

/**
 * A configured HTTP filter, shared by every request of its connection manager. Decisions are
 * synchronous and made once per request, before the route's action runs: the filters Strait
 * has (fault, local rate limit) need nothing else.
 */
export interface HttpFilter {
  onRequest(req: HttpFilterRequest): FilterVerdict | null;
  /** The exchange a non-null verdict was given for is over. */
  onDone?(): void;
}

export interface HttpFilterParseContext {
  readonly errors: FieldError[];
  readonly warnings: FieldError[];
}

/** Registered by Envoy name and type URL, like network filters; `parse` validates once, `create` binds stats. */
export interface HttpFilterFactory<Config = unknown> {
  readonly name: string;
  readonly typeUrls: readonly string[];
  parse(typedConfig: Record<string, any>, path: string, ctx: HttpFilterParseContext): Config | null;
  /** `scope` is the connection manager's `http.<stat_prefix>` scope; `root` the store's root. */
  create(config: Config, scope: Scope, root: Scope): HttpFilter;
}

/** Envoy's FractionalPercent as a probability in [0, 1]. Unset means 0, as in Envoy. */
export function fraction(p: Record<string, any> | undefined | null): number {
  if (!p) return 0;
  const d = p.denominator === 'TEN_THOUSAND' ? 10_000 : p.denominator === 'MILLION' ? 1_000_000 : 100;
  return Math.min(1, Number(p.numerator ?? 0) / d);
}
