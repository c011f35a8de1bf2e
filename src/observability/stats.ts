/**
 * Stats with Envoy's names. A stat is a plain object with a numeric `value`, so the data path
 * increments a field (`stats.upstream_cx_total.value++`) and never looks anything up by name.
 * Each scope knows its Envoy prefix (`cluster.backend`) and the Prometheus tag it carries
 * (`envoy_cluster_name="backend"`), so rendering needs no regex tag extraction.
 */

export type StatKind = 'counter' | 'gauge';

export interface Stat {
  readonly kind: StatKind;
  /** Envoy name: `cluster.backend.upstream_cx_total`. */
  readonly name: string;
  /** Prometheus metric name without labels: `envoy_cluster_upstream_cx_total`. */
  readonly promName: string;
  /** Rendered label set including braces, or '' (`{envoy_cluster_name="backend"}`). */
  readonly promLabels: string;
  value: number;
}

export type Counter = Stat & { readonly kind: 'counter' };
export type Gauge = Stat & { readonly kind: 'gauge' };

/** A stats table: the counters and gauges one filter, cluster or listener declares. */
export interface StatsTable<C extends string, G extends string> {
  readonly counters: readonly C[];
  readonly gauges: readonly G[];
}

export type StatsOf<T> = T extends StatsTable<infer C, infer G>
  ? { readonly [K in C]: Counter } & { readonly [K in G]: Gauge }
  : never;

export function defineStats<C extends string, G extends string>(table: {
  counters: readonly C[];
  gauges: readonly G[];
}): StatsTable<C, G> {
  return table;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function promSanitize(name: string): string {
  return name.replace(/[^a-zA-Z0-9_:]/g, '_');
}

export class Scope {
  /**
   * @param store      the owning store
   * @param prefix     Envoy prefix, e.g. `cluster.backend` ('' for the root)
   * @param promPrefix the prefix with tag values removed, e.g. `cluster`
   * @param labels     Prometheus labels carried by every stat in this scope
   */
  constructor(
    private readonly store: StatsStore,
    readonly prefix: string,
    private readonly promPrefix: string,
    private readonly labels: ReadonlyArray<readonly [string, string]>,
  ) {}

  /** A child scope. With `tag`, `segment` is the tag's value and is dropped from the Prometheus name. */
  scope(segment: string, tag?: string): Scope {
    const prefix = this.prefix ? `${this.prefix}.${segment}` : segment;
    if (tag) return new Scope(this.store, prefix, this.promPrefix, [...this.labels, [tag, segment]]);
    const promPrefix = this.promPrefix ? `${this.promPrefix}_${segment}` : segment;
    return new Scope(this.store, prefix, promPrefix, this.labels);
  }

  counter(name: string): Counter {
    return this.stat('counter', name) as Counter;
  }

  gauge(name: string): Gauge {
    return this.stat('gauge', name) as Gauge;
  }

  /** Instantiate a stats table in this scope. */
  table<C extends string, G extends string>(table: StatsTable<C, G>): StatsOf<StatsTable<C, G>> {
    const out: Record<string, Stat> = {};
    for (const c of table.counters) out[c] = this.counter(c);
    for (const g of table.gauges) out[g] = this.gauge(g);
    return Object.freeze(out) as StatsOf<StatsTable<C, G>>;
  }

  private stat(kind: StatKind, name: string): Stat {
    const full = this.prefix ? `${this.prefix}.${name}` : name;
    const existing = this.store.get(full);
    if (existing) {
      if (existing.kind !== kind) throw new Error(`stat ${full} registered as ${existing.kind}, requested as ${kind}`);
      return existing;
    }
    const promName = 'envoy_' + promSanitize(this.promPrefix ? `${this.promPrefix}_${name}` : name);
    const promLabels = this.labels.length
      ? `{${this.labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`
      : '';
    const stat: Stat = { kind, name: full, promName, promLabels, value: 0 };
    this.store.add(stat);
    return stat;
  }
}

export class StatsStore {
  private readonly stats = new Map<string, Stat>();
  readonly root: Scope = new Scope(this, '', '', []);

  get(name: string): Stat | undefined {
    return this.stats.get(name);
  }

  add(stat: Stat): void {
    this.stats.set(stat.name, stat);
  }

  /** Every stat, sorted by Envoy name (the order /stats prints). */
  all(): Stat[] {
    return [...this.stats.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Envoy's text format: `name: value` per line. */
  renderText(filter?: RegExp): string {
    let out = '';
    for (const s of this.all()) if (!filter || filter.test(s.name)) out += `${s.name}: ${s.value}\n`;
    return out;
  }

  renderJson(filter?: RegExp): string {
    const stats = this.all()
      .filter((s) => !filter || filter.test(s.name))
      .map((s) => ({ name: s.name, value: s.value }));
    return JSON.stringify({ stats }, null, 1);
  }

  /** Prometheus text exposition format 0.0.4, one TYPE line per metric family. */
  renderPrometheus(): string {
    const families = new Map<string, Stat[]>();
    for (const s of this.stats.values()) {
      let fam = families.get(s.promName);
      if (!fam) families.set(s.promName, (fam = []));
      fam.push(s);
    }
    const names = [...families.keys()].sort();
    let out = '';
    for (const name of names) {
      const fam = families.get(name)!;
      out += `# TYPE ${name} ${fam[0]!.kind}\n`;
      for (const s of fam) out += `${name}${s.promLabels} ${s.value}\n`;
    }
    return out;
  }
}
