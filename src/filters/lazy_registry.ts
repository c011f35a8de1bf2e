/**
 * Extensions known by name before their code is loaded. A sidecar pays in idle memory for every
 * module it imports, so a filter's module is imported only once a config names it: config
 * loading (and each xDS update) awaits `load` for what it names, then parsing looks factories up
 * synchronously with `find`, as before. Names and type URLs live here, next to the loader, so an
 * unknown filter is still reported at once with the list of supported ones.
 */
export interface LazyEntry<F> {
  readonly name: string;
  readonly typeUrls: readonly string[];
  /** Type URLs of the filter's per-route config (`typed_per_filter_config`), if it takes one. */
  readonly perRouteTypeUrls?: readonly string[];
  readonly load: () => Promise<F>;
}

interface Slot<F> {
  readonly entry: LazyEntry<F>;
  factory: F | null;
  loading: Promise<void> | null;
}

type Factory = { readonly name: string; readonly typeUrls: readonly string[]; readonly perRoute?: { readonly typeUrls: readonly string[] } };

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

export class LazyRegistry<F extends Factory> {
  private readonly slots: Slot<F>[] = [];
  private readonly byName = new Map<string, Slot<F>>();
  private readonly byType = new Map<string, Slot<F>>();
  private readonly byPerRouteType = new Map<string, Slot<F>>();

  constructor(
    /** For messages: "network filter", "HTTP filter". */
    private readonly kind: string,
    entries: readonly LazyEntry<F>[],
  ) {
    for (const entry of entries) {
      if (this.byName.has(entry.name)) throw new Error(`${kind} ${entry.name} registered twice`);
      const slot: Slot<F> = { entry, factory: null, loading: null };
      this.slots.push(slot);
      this.byName.set(entry.name, slot);
      for (const t of entry.typeUrls) this.byType.set(t, slot);
      for (const t of entry.perRouteTypeUrls ?? []) this.byPerRouteType.set(t, slot);
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** Loads the extensions whose name, type URL or per-route type URL is in `words`. */
  loadNamed(words: ReadonlySet<string>): Promise<void> {
    const want = new Set<Slot<F>>();
    for (const w of words) {
      const s = this.byName.get(w) ?? this.byType.get(w) ?? this.byPerRouteType.get(w);
      if (s && !s.factory) want.add(s);
    }
    return this.loadSlots(want);
  }

  loadAll(): Promise<void> {
    return this.loadSlots(this.slots.filter((s) => !s.factory));
  }

  private async loadSlots(slots: Iterable<Slot<F>>): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const s of slots) {
      s.loading ??= s.entry.load().then((f) => {
        // The table above and the factory must agree, or lookups would find the wrong filter.
        if (f.name !== s.entry.name || !sameList(f.typeUrls, s.entry.typeUrls) || !sameList(f.perRoute?.typeUrls, s.entry.perRouteTypeUrls)) {
          throw new Error(`${this.kind} ${s.entry.name}: the registry's names and type URLs differ from its factory's`);
        }
        s.factory = f;
      });
      pending.push(s.loading);
    }
    await Promise.all(pending);
  }

  private loaded(s: Slot<F> | undefined): F | undefined {
    if (!s) return undefined;
    // A path that parses config without loading what it names first: a bug, not a config error.
    if (!s.factory) throw new Error(`${this.kind} ${s.entry.name} is used before its module was loaded (preloadExtensions)`);
    return s.factory;
  }

  /** Envoy resolves by the typed_config's type URL first, by name only without one. */
  find(name: string, typeUrl: string | undefined): F | undefined {
    return this.loaded(typeUrl ? this.byType.get(typeUrl) : this.byName.get(name));
  }

  findPerRoute(typeUrl: string): F | undefined {
    return this.loaded(this.byPerRouteType.get(typeUrl));
  }
}
