import type { Scope } from '../../../observability/stats.js';
import type { HttpFilterFactory, HttpFilterParseContext } from '../types.js';
import { GrpcStatsFilter, type GrpcStatsConfig } from './filter.js';

export const GRPC_STATS_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig';

type Obj = Record<string, any>;

/** A BoolValue arrives as a boolean or as `{ value }`. */
function bool(v: unknown): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  return typeof v === 'object' ? (v as Obj).value === true : v === true;
}

function parse(tc: Obj, path: string, ctx: HttpFilterParseContext): GrpcStatsConfig | null {
  const before = ctx.errors.length;
  const list = tc.individual_method_stats_allowlist as Obj | undefined;
  const all = bool(tc.stats_for_all_methods);
  if (list && all !== undefined) ctx.errors.push({ path, message: 'individual_method_stats_allowlist and stats_for_all_methods are one oneof: set one' });
  let allowlist: Map<string, Set<string>> | null = null;
  if (list) {
    allowlist = new Map();
    ((list.services ?? []) as Obj[]).forEach((s, i) => {
      const p = `${path}.individual_method_stats_allowlist.services[${i}]`;
      const name = String(s.name ?? '');
      const methods = (s.method_names ?? []) as unknown[];
      if (!name) ctx.errors.push({ path: `${p}.name`, message: 'must not be empty' });
      if (!methods.length) ctx.errors.push({ path: `${p}.method_names`, message: 'needs at least one method' });
      const set = allowlist!.get(name) ?? new Set<string>();
      for (const m of methods) set.add(String(m));
      allowlist!.set(name, set);
    });
  }
  const emitFilterState = tc.emit_filter_state === true;
  if (emitFilterState) {
    // Envoy keeps the message counts as filter state for access logs and Istio's stats; the
    // counts are kept per call here, but no part of Strait reads filter state yet.
    ctx.warnings.push({ path: `${path}.emit_filter_state`, message: 'the message counts are kept but not published as filter state: Strait has no reader of it (no %FILTER_STATE% access log operator)' });
  }
  if (ctx.errors.length > before) return null;
  return Object.freeze({
    emitFilterState,
    // Neither set: stats_for_all_methods false, Envoy's default.
    statsForAllMethods: all === true,
    allowlist,
    enableUpstreamStats: tc.enable_upstream_stats === true,
    replaceDots: tc.replace_dots_in_grpc_service_name === true,
  });
}

export const grpcStatsFactory = {
  name: 'envoy.filters.http.grpc_stats',
  typeUrls: [GRPC_STATS_TYPE],
  parse,
  create: (config: GrpcStatsConfig, _scope: Scope, root: Scope) => new GrpcStatsFilter(config, root),
} satisfies HttpFilterFactory<GrpcStatsConfig>;
