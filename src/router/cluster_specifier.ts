import type { FieldError } from '../errors.js';

type Obj = Record<string, any>;

/** Picks the cluster for one request or connection: fixed, or weighted at random. */
export interface ClusterPicker {
  /** Every cluster this action can pick, for validation and on-demand discovery. */
  readonly names: readonly string[];
  pick(random?: number): string;
}

/**
 * Compiles `cluster` or `weighted_clusters` (Envoy's route and tcp_proxy actions share the
 * shape). Unknown cluster names are reported against `known`; zero-weight entries are dropped.
 */
export function compileClusterSpecifier(action: Obj, path: string, known: ReadonlySet<string>, errors: FieldError[]): ClusterPicker | null {
  const start = errors.length;
  if (typeof action.cluster === 'string') {
    const name = action.cluster;
    if (!known.has(name)) errors.push({ path: `${path}.cluster`, message: `unknown cluster "${name}"` });
    return errors.length > start ? null : { names: [name], pick: () => name };
  }
  const wc = action.weighted_clusters as Obj | undefined;
  if (!wc) {
    errors.push({ path, message: 'needs cluster or weighted_clusters' });
    return null;
  }
  const names: string[] = [];
  const upTo: number[] = [];
  let total = 0;
  ((wc.clusters ?? []) as Obj[]).forEach((c, i) => {
    const p = `${path}.weighted_clusters.clusters[${i}]`;
    const name = String(c.name ?? '');
    if (!known.has(name)) errors.push({ path: `${p}.name`, message: `unknown cluster "${name}"` });
    for (const f of ['metadata_match', 'cluster_header', 'request_headers_to_add', 'host_rewrite_literal'] as const) {
      if (c[f] !== undefined) errors.push({ path: `${p}.${f}`, message: 'is not supported yet' });
    }
    const w = Number(c.weight ?? 0);
    if (w <= 0) return;
    total += w;
    names.push(name);
    upTo.push(total);
  });
  if (total === 0) errors.push({ path: `${path}.weighted_clusters.clusters`, message: 'needs at least one cluster with a positive weight' });
  if (errors.length > start) return null;
  const last = names.length - 1;
  return {
    names,
    pick(random = Math.random()) {
      const r = random * total;
      for (let i = 0; i < last; i++) if (r < upTo[i]!) return names[i]!;
      return names[last]!;
    },
  };
}
