/**
 * Stats with Envoy's names. A stat is a plain object with a numeric `value`, so the data path
 * increments a field (`stats.upstream_cx_total.value++`) and never looks anything up by name.
 * Each scope knows its Envoy prefix (`cluster.backend`) and the Prometheus tag it carries
 * (`envoy_cluster_name="backend"`), so without a `stats_config` rendering needs no regex tag
 * extraction. With one (stats_config.ts), the Prometheus name and labels are worked out once, when
 * the stat is created, and a stat its matcher rejects is handed out but never registered: the code
 * holding it bumps it as usual and nothing shows it.
 */
import { extractTags, type ScopeTag, type StatsSettings, type TaggedName } from './stats_config.js';

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

/** Prometheus label names allow no `:` (Envoy's `envoy.cluster_name` → `envoy_cluster_name`). */
function labelSanitize(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, '_');
}

function labelBody(tags: ReadonlyArray<readonly [string, string]>): string {
  return tags.map(([k, v]) => `${labelSanitize(k)}="${escapeLabel(v)}"`).join(',');
}

/** Envoy's name for a built-in tag Strait's scopes name by its Prometheus label (`envoy_cluster_name`). */
function envoyTagName(label: string): string {
  return label.startsWith('envoy_') ? `envoy.${label.slice(6)}` : label;
}

export class Scope {
  /**
   * @param store      the owning store
   * @param prefix     Envoy prefix, e.g. `cluster.backend` ('' for the root)
   * @param promPrefix the prefix with tag values removed, e.g. `cluster`
   * @param labels     Prometheus labels carried by every stat in this scope
   * @param tags       the same tags by Envoy's names, with where their values sit in the name
   */
  constructor(
    private readonly store: StatsStore,
    readonly prefix: string,
    private readonly promPrefix: string,
    private readonly labels: ReadonlyArray<readonly [string, string]>,
    private readonly tags: readonly ScopeTag[] = [],
  ) {}

  /** A child scope. With `tag`, `segment` is the tag's value and is dropped from the Prometheus name. */
  scope(segment: string, tag?: string): Scope {
    const prefix = this.prefix ? `${this.prefix}.${segment}` : segment;
    if (tag) {
      const t: ScopeTag = { name: envoyTagName(tag), value: segment, start: this.prefix ? this.prefix.length + 1 : 0 };
      return new Scope(this.store, prefix, this.promPrefix, [...this.labels, [tag, segment]], [...this.tags, t]);
    }
    const promPrefix = this.promPrefix ? `${this.promPrefix}_${segment}` : segment;
    return new Scope(this.store, prefix, promPrefix, this.labels, this.tags);
  }

  counter(name: string): Counter {
    return this.stat('counter', name) as Counter;
  }

  gauge(name: string): Gauge {
    return this.stat('gauge', name) as Gauge;
  }

  /** A histogram in this scope (milliseconds, Envoy's default buckets unless `bounds` is given). */
  histogram(name: string, bounds: Float64Array = DEFAULT_BUCKETS): Histogram {
    const full = this.prefix ? `${this.prefix}.${name}` : name;
    const existing = this.store.getHistogram(full) ?? this.store.rejectedHistogram(full);
    if (existing) return existing;
    if (this.store.get(full)) throw new Error(`stat ${full} registered as ${this.store.get(full)!.kind}, requested as histogram`);
    const settings = this.store.settings;
    if (settings && bounds === DEFAULT_BUCKETS) bounds = settings.buckets.find((b) => b.match(full))?.bounds ?? bounds;
    let h: Histogram;
    if (settings?.tagging) {
      const tagged = this.tagged(full, settings.tagging);
      h = new Histogram(full, 'envoy_' + promSanitize(tagged.name), labelBody(tagged.tags), bounds);
    } else {
      const promName = 'envoy_' + promSanitize(this.promPrefix ? `${this.promPrefix}_${name}` : name);
      h = new Histogram(full, promName, this.labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(','), bounds);
      if (this.store.keepTags) this.store.noteTagged(full, this.taggedName(full));
    }
    if (settings?.accept && !settings.accept(full)) this.store.reject(h);
    else this.store.addHistogram(h);
    return h;
  }

  /** Tag extraction for one new stat, kept for the sinks that send tags. */
  private tagged(full: string, tagging: NonNullable<StatsSettings['tagging']>): TaggedName {
    const t = extractTags(full, this.tags, tagging);
    this.store.noteTagged(full, t);
    return t;
  }

  /** The tag-extracted name and tags of a stat of this scope, by Envoy's tag names. */
  taggedName(full: string): TaggedName {
    let name = full;
    const tags: Array<[string, string]> = [];
    for (let i = this.tags.length - 1; i >= 0; i--) {
      const t = this.tags[i]!;
      name = name.slice(0, t.start) + name.slice(t.start + t.value.length + 1);
      tags.unshift([t.name, t.value]);
    }
    return { name, tags };
  }

  /** Instantiate a stats table in this scope. */
  table<C extends string, G extends string>(table: StatsTable<C, G>): StatsOf<StatsTable<C, G>> {
    // Object.fromEntries keeps the object's properties fast at any size; keyed stores into `{}`
    // turn it into a dictionary past ~16 names, and every `stats.x.value++` then misses its inline cache.
    const out = Object.fromEntries([
      ...table.counters.map((c): [string, Stat] => [c, this.counter(c)]),
      ...table.gauges.map((g): [string, Stat] => [g, this.gauge(g)]),
    ]);
    return Object.freeze(out) as StatsOf<StatsTable<C, G>>;
  }

  private stat(kind: StatKind, name: string): Stat {
    const full = this.prefix ? `${this.prefix}.${name}` : name;
    const existing = this.store.get(full) ?? this.store.rejected(full);
    if (existing) {
      if (existing.kind !== kind) throw new Error(`stat ${full} registered as ${existing.kind}, requested as ${kind}`);
      return existing;
    }
    const settings = this.store.settings;
    let promName: string;
    let promLabels: string;
    if (settings?.tagging) {
      const tagged = this.tagged(full, settings.tagging);
      promName = 'envoy_' + promSanitize(tagged.name);
      promLabels = tagged.tags.length ? `{${labelBody(tagged.tags)}}` : '';
    } else {
      promName = 'envoy_' + promSanitize(this.promPrefix ? `${this.promPrefix}_${name}` : name);
      promLabels = this.labels.length ? `{${this.labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}` : '';
      if (this.store.keepTags) this.store.noteTagged(full, this.taggedName(full));
    }
    const stat: Stat = { kind, name: full, promName, promLabels, value: 0 };
    if (settings?.accept && !settings.accept(full)) this.store.reject(stat);
    else this.store.add(stat);
    return stat;
  }
}

export class StatsStore {
  private readonly stats = new Map<string, Stat>();
  private readonly hists = new Map<string, Histogram>();
  /**
   * Stats the matcher rejected, so asking again gives the same object. Envoy hands out a null stat
   * instead; a working one keeps every behaviour that reads a stat's value unchanged.
   */
  private readonly dropped = new Map<string, Stat | Histogram>();
  /** Tag-extracted names for the sinks that send tags (DogStatsD); filled only when `keepTags`. */
  private readonly taggedNames = new Map<string, TaggedName>();
  readonly root: Scope = new Scope(this, '', '', []);

  /**
   * @param settings  from the bootstrap's stats_config; null keeps Strait's built-in naming
   * @param keepTags  remember each stat's tag-extracted name and tags (a DogStatsD sink sends them)
   */
  constructor(
    readonly settings: StatsSettings | null = null,
    readonly keepTags = false,
  ) {}

  /** Whether a stat by this full name would be kept (the stats matcher). */
  accepts(name: string): boolean {
    return !this.settings?.accept || this.settings.accept(name);
  }

  rejected(name: string): Stat | undefined {
    const s = this.dropped.get(name);
    return s && s.kind !== 'histogram' ? s : undefined;
  }

  rejectedHistogram(name: string): Histogram | undefined {
    const s = this.dropped.get(name);
    return s && s.kind === 'histogram' ? s : undefined;
  }

  reject(s: Stat | Histogram): void {
    this.dropped.set(s.name, s);
  }

  noteTagged(name: string, t: TaggedName): void {
    if (this.keepTags) this.taggedNames.set(name, t);
  }

  /** The tag-extracted name and tags of a kept stat (`keepTags`), else the name itself untagged. */
  tagged(name: string): TaggedName {
    return this.taggedNames.get(name) ?? { name, tags: [] };
  }

  get(name: string): Stat | undefined {
    return this.stats.get(name);
  }

  getHistogram(name: string): Histogram | undefined {
    return this.hists.get(name);
  }

  addHistogram(h: Histogram): void {
    if (this.stats.has(h.name)) throw new Error(`stat ${h.name} registered as ${this.stats.get(h.name)!.kind}, requested as histogram`);
    h.sampleSink = this.sampleSink;
    this.hists.set(h.name, h);
  }

  private sampleSink: HistogramSampleSink | null = null;

  /**
   * Hands every sample of the kept histograms, present and future, to `f` (null: none). Rejected
   * histograms never get it. Costs a histogram one field check per sample otherwise.
   */
  setHistogramSampleSink(f: HistogramSampleSink | null): void {
    this.sampleSink = f;
    for (const h of this.hists.values()) h.sampleSink = f;
  }

  /** Every histogram, sorted by Envoy name. */
  histograms(): Histogram[] {
    return [...this.hists.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  add(stat: Stat): void {
    if (this.hists.has(stat.name)) throw new Error(`stat ${stat.name} registered as histogram, requested as ${stat.kind}`);
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
    // Envoy prints histograms after counters and gauges, as quantile summaries.
    for (const h of this.histograms()) if (!filter || filter.test(h.name)) out += `${h.name}: ${h.summaryText()}\n`;
    return out;
  }

  renderJson(filter?: RegExp): string {
    const stats = this.all()
      .filter((s) => !filter || filter.test(s.name))
      .map((s): Record<string, unknown> => ({ name: s.name, value: s.value }));
    const hs = this.histograms().filter((h) => !filter || filter.test(h.name));
    if (hs.length) {
      // Envoy's shape: one entry holding the quantiles every histogram is summarised at.
      stats.push({
        histograms: {
          supported_quantiles: QUANTILES.map((q) => q * 100),
          computed_quantiles: hs.map((h) => ({ name: h.name, values: QUANTILES.map((q) => ({ interval: null, cumulative: h.count ? h.quantile(q) : null })) })),
        },
      });
    }
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
    const hfams = new Map<string, Histogram[]>();
    for (const h of this.hists.values()) {
      let fam = hfams.get(h.promName);
      if (!fam) hfams.set(h.promName, (fam = []));
      fam.push(h);
    }
    for (const name of [...hfams.keys()].sort()) {
      out += `# TYPE ${name} histogram\n`;
      for (const h of hfams.get(name)!) out += h.renderPrometheus();
    }
    return out;
  }
}

/**
 * Envoy's default histogram buckets (milliseconds for the `_time` stats): the bucket bounds
 * Prometheus sees, so dashboards built on Envoy's `le` values work unchanged.
 */
export const DEFAULT_BUCKETS: Float64Array = Float64Array.from([0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000]);

/** The quantiles Envoy's /stats text summarises a histogram at (P0 … P100). */
export const QUANTILES: readonly number[] = [0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1];

/** Envoy-like number text: integers plain, others to at most 6 significant digits. */
function num(v: number): string {
  if (!Number.isFinite(v)) return 'nan';
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
}

/**
 * A cumulative histogram with fixed bucket bounds. `record` only adds to preallocated typed
 * arrays and numbers, so the data path allocates nothing; quantiles and text are computed when
 * /stats asks, never per sample.
 */
/** Receives every sample of the kept histograms (statsd timers). */
export type HistogramSampleSink = (h: Histogram, v: number) => void;

export class Histogram {
  readonly kind = 'histogram' as const;
  /** counts[i] = samples in (bounds[i-1], bounds[i]]; the last slot is the overflow (+Inf) bucket. */
  readonly counts: Float64Array;
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  /** Set on kept histograms while a statsd sink runs: each sample goes to it (Envoy's onHistogramComplete). */
  sampleSink: HistogramSampleSink | null = null;

  constructor(
    readonly name: string,
    readonly promName: string,
    /** Label pairs without braces (`envoy_cluster_name="a"`), '' when none: `le` is added per bucket. */
    readonly promLabelBody: string,
    readonly bounds: Float64Array,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  record(v: number): void {
    const b = this.bounds;
    let i = 0;
    // A linear scan beats a binary search for ~20 bounds and the small values requests take.
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (this.sampleSink !== null) this.sampleSink(this, v);
  }

  /**
   * The value at quantile q in [0, 1], interpolated linearly inside the bucket holding it;
   * P0 and P100 are the exact minimum and maximum seen. NaN without samples.
   */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    if (q <= 0) return this.min;
    if (q >= 1) return this.max;
    const rank = q * this.count;
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const c = this.counts[i]!;
      if (c === 0) continue;
      if (seen + c >= rank) {
        // The bucket's edges, narrowed to what was actually observed.
        const lo = Math.max(i === 0 ? 0 : this.bounds[i - 1]!, this.min);
        const hi = Math.min(i < this.bounds.length ? this.bounds[i]! : this.max, this.max);
        return lo + ((hi - lo) * (rank - seen)) / c;
      }
      seen += c;
    }
    return this.max;
  }

  /**
   * Envoy's /stats line body: `P0(interval,cumulative) P25(...)…`, or `No recorded values`.
   * Strait has no periodic stats flush, so the interval figure is always `nan`.
   */
  summaryText(): string {
    if (this.count === 0) return 'No recorded values';
    let out = '';
    for (const q of QUANTILES) out += `${out ? ' ' : ''}P${num(q * 100)}(nan,${num(this.quantile(q))})`;
    return out;
  }

  /** `_bucket` lines (cumulative, ending in +Inf), `_sum` and `_count`, as Prometheus expects. */
  renderPrometheus(): string {
    const lab = this.promLabelBody;
    const sep = lab ? ',' : '';
    let out = '';
    let cum = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cum += this.counts[i]!;
      out += `${this.promName}_bucket{${lab}${sep}le="${num(this.bounds[i]!)}"} ${cum}\n`;
    }
    out += `${this.promName}_bucket{${lab}${sep}le="+Inf"} ${this.count}\n`;
    const braces = lab ? `{${lab}}` : '';
    out += `${this.promName}_sum${braces} ${num(this.sum)}\n`;
    out += `${this.promName}_count${braces} ${this.count}\n`;
    return out;
  }
}
