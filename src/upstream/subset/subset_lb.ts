import type { Scope, StatsOf } from '../../observability/stats.js';
import type { Host } from '../host.js';
import type { LbContext } from '../lb/context.js';
import type { PrioritySet } from '../priority_set.js';
import type { FallbackPolicy, SubsetConfig } from './config.js';
import { lbMetadata, subsetKey, valueKey } from './metadata_match.js';
import { SUBSET_STATS } from './stats.js';

/**
 * Envoy's subset load balancer: every selector's keys split the hosts by their `envoy.lb`
 * metadata values into subsets, each balanced on its own (priorities, health and panic
 * included). A request whose metadata_match names exactly a subset's key/value pairs goes
 * there; otherwise the fallback policy decides — the selector's own when the criteria use its
 * keys, else the cluster's: no host, any host, or the default subset. Subsets keep their
 * balancer across membership changes, so a rotation is not reset by an unrelated host.
 */
export class SubsetLb {
  readonly stats: StatsOf<typeof SUBSET_STATS>;
  private subsets = new Map<string, PrioritySet>();
  private readonly any: PrioritySet;
  private readonly defaultSet: PrioritySet;
  private readonly selectorFallback: Map<string, FallbackPolicy>;

  constructor(
    private readonly config: SubsetConfig,
    private readonly makeSet: () => PrioritySet,
    scope: Scope,
  ) {
    this.stats = scope.table(SUBSET_STATS);
    this.any = makeSet();
    this.defaultSet = makeSet();
    this.selectorFallback = new Map(config.selectors.filter((s) => s.fallback).map((s) => [s.keys.join('\u0000'), s.fallback!]));
  }

  /** Every host of the cluster, any health. */
  update(hosts: readonly Host[]): void {
    const groups = new Map<string, Host[]>();
    for (const sel of this.config.selectors) {
      for (const h of hosts) {
        const md = lbMetadata(h);
        if (!md) continue;
        const values: string[] = [];
        for (const k of sel.keys) {
          const v = md[k];
          if (v === undefined) break;
          values.push(valueKey(v));
        }
        if (values.length !== sel.keys.length) continue;
        const key = subsetKey(sel.keys, values);
        let g = groups.get(key);
        if (!g) groups.set(key, (g = []));
        g.push(h);
      }
    }
    const next = new Map<string, PrioritySet>();
    for (const [key, members] of groups) {
      let ps = this.subsets.get(key);
      if (!ps) {
        ps = this.makeSet();
        this.stats.lb_subsets_created.value++;
      }
      ps.update(members);
      next.set(key, ps);
    }
    for (const key of this.subsets.keys()) if (!next.has(key)) this.stats.lb_subsets_removed.value++;
    this.subsets = next;
    this.stats.lb_subsets_active.value = next.size;
    this.any.update(hosts);
    const d = this.config.defaultSubset;
    this.defaultSet.update(d ? hosts.filter((h) => d.matchesHost(h)) : hosts);
  }

  pick(ctx?: LbContext | null): Host | null {
    const mm = ctx?.metadataMatch;
    let policy = this.config.fallback;
    if (mm) {
      const ps = this.subsets.get(mm.key);
      if (ps) {
        this.stats.lb_subsets_selected.value++;
        return ps.pick(ctx);
      }
      policy = this.selectorFallback.get(mm.keysKey) ?? policy;
    }
    this.stats.lb_subsets_fallback.value++;
    switch (policy) {
      case 'NO_FALLBACK':
        return null;
      case 'ANY_ENDPOINT':
        return this.any.pick(ctx);
      case 'DEFAULT_SUBSET':
        return this.defaultSet.pick(ctx);
    }
  }
}
