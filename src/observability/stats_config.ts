/**
 * The bootstrap's `stats_config` (envoy.config.metrics.v3.StatsConfig): which stats exist
 * (`stats_matcher`), how their names split into a tag-extracted name and tags (`stats_tags`,
 * `use_all_default_tags`) and the histogram buckets (`histogram_bucket_settings`).
 *
 * Everything here runs when a stat is created — once per stat name, as names never change — and
 * never when a stat is bumped or rendered.
 */
import type { FieldError } from '../errors.js';
import { compileStringMatcher, type StringMatch } from '../router/string_matcher.js';

type Obj = Record<string, any>;

/** One `stats_tags` entry with a regex. */
export interface RegexTag {
  readonly name: string;
  readonly regex: RegExp;
  /**
   * Envoy files an extractor whose regex starts with `^word\.` (or `^word(?=\.)`) under that first
   * name token and tries it only on stats starting with it, after the extractors without such a
   * prefix. Keeping that order gives the same label order as Envoy's output.
   */
  readonly prefix: string | null;
}

/** A tag a scope carries by construction (Strait's built-in default tags): `segment` at `start`. */
export interface ScopeTag {
  /** Envoy's tag name, `envoy.cluster_name`. */
  readonly name: string;
  readonly value: string;
  /** Offset of the value in the full stat name; the value and the `.` after it are removed. */
  readonly start: number;
}

export interface StatsSettings {
  /** False for a stat the matcher rejects (not kept, not shown, not sent); null keeps every stat. */
  readonly accept: StringMatch | null;
  /**
   * null: Strait's built-in tags only, rendered exactly as without a stats_config. Otherwise tag
   * extraction as configured: these regex tags after the built-in ones Strait keeps
   * (`defaultTags`), then `fixed` added to every stat.
   */
  readonly tagging: {
    readonly defaultTags: ReadonlySet<string> | 'all' | 'none';
    readonly regexes: readonly RegexTag[];
    readonly fixed: ReadonlyArray<readonly [string, string]>;
  } | null;
  /** First match wins; stats that match none keep the buckets their code asks for. */
  readonly buckets: ReadonlyArray<{ readonly match: StringMatch; readonly bounds: Float64Array }>;
}

/**
 * The tags Strait's stats scopes produce themselves, by Envoy's names. They stand for Envoy's
 * default tag regexes (`use_all_default_tags`), of which Strait has only these: a `tag_name`
 * without a regex must name one of them.
 */
export const BUILTIN_TAGS: ReadonlySet<string> = new Set([
  'envoy.cluster_name',
  'envoy.listener_address',
  'envoy.http_conn_manager_prefix',
  'envoy.tcp_prefix',
  'envoy.rds_route_config',
  'envoy.rpc_prefix',
  'envoy.dubbo_prefix',
]);

/** The POSIX classes Envoy's std::regex (ECMAScript grammar) accepts inside brackets, in JS terms. */
const POSIX_CLASSES: Record<string, string> = {
  alnum: 'a-zA-Z0-9',
  alpha: 'a-zA-Z',
  blank: ' \\t',
  cntrl: '\\x00-\\x1f\\x7f',
  digit: '0-9',
  d: '0-9',
  graph: '\\x21-\\x7e',
  lower: 'a-z',
  print: '\\x20-\\x7e',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\s',
  s: '\\s',
  upper: 'A-Z',
  w: '\\w',
  xdigit: '0-9A-Fa-f',
};

/**
 * Envoy compiles tag regexes with std::regex (ECMAScript grammar), which, unlike JavaScript, reads
 * `[:digit:]` inside a bracket expression as a character class — Istio's `http_conn_manager_prefix`
 * and `listener_address` regexes rely on it. Rewrites those classes; everything else is the same
 * grammar. Throws on an unknown class name.
 */
export function translateStdRegex(src: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\') {
      out += src.slice(i, i + 2);
      i++;
      continue;
    }
    if (inClass) {
      if (c === '[' && src[i + 1] === ':') {
        const end = src.indexOf(':]', i + 2);
        if (end > 0) {
          const name = src.slice(i + 2, end);
          const js = POSIX_CLASSES[name];
          if (js === undefined) throw new Error(`unknown character class [:${name}:]`);
          out += js;
          i = end + 1;
          continue;
        }
      }
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // `[]` and `[^]` are complete classes in ECMAScript; a `]` right after `[` or `[^` closes it.
      if (src[i + 1] === '^') {
        out += '^';
        i++;
      }
      continue;
    }
    out += c;
  }
  return out;
}

function regexPrefix(src: string): string | null {
  const m = /^\^([A-Za-z0-9_]+)(?:\\\.|\(\?=\\\.\))/.exec(src);
  return m ? m[1]! : null;
}

/** Builds the settings from `stats_config` (and checks it), or null when it changes nothing. */
export function buildStatsSettings(cfg: Obj | undefined, path: string, errors: FieldError[]): StatsSettings | null {
  if (!cfg) return null;
  let accept: StringMatch | null = null;
  const sm = cfg.stats_matcher as Obj | undefined;
  if (sm) {
    const mpath = `${path}.stats_matcher`;
    const list = (l: Obj | undefined, lpath: string): StringMatch[] =>
      ((l?.patterns ?? []) as Obj[]).map((p, i) => compileStringMatcher(p, `${lpath}.patterns[${i}]`, errors)).filter((m): m is StringMatch => m !== null);
    if (sm.inclusion_list) {
      const ms = list(sm.inclusion_list, `${mpath}.inclusion_list`);
      accept = (name) => ms.some((m) => m(name));
    } else if (sm.exclusion_list) {
      const ms = list(sm.exclusion_list, `${mpath}.exclusion_list`);
      accept = (name) => !ms.some((m) => m(name));
    } else if (sm.reject_all === true) {
      accept = () => false;
    } else if (sm.reject_all !== false) {
      errors.push({ path: mpath, message: 'needs one of reject_all, exclusion_list or inclusion_list' });
    }
  }

  const useDefaults = cfg.use_all_default_tags !== false;
  const tags = (cfg.stats_tags ?? []) as Obj[];
  let tagging: StatsSettings['tagging'] = null;
  if (tags.length || !useDefaults) {
    const names = new Map<string, number>();
    const regexes: RegexTag[] = [];
    const fixed: Array<[string, string]> = [];
    const named = new Set<string>();
    tags.forEach((t, i) => {
      const tpath = `${path}.stats_tags[${i}]`;
      const name = String(t.tag_name ?? '');
      if (!name) {
        errors.push({ path: `${tpath}.tag_name`, message: 'is required' });
        return;
      }
      const prev = names.get(name);
      if (prev !== undefined) {
        errors.push({ path: `${tpath}.tag_name`, message: `tag name "${name}" is specified twice (also ${path}.stats_tags[${prev}])` });
        return;
      }
      names.set(name, i);
      if (typeof t.fixed_value === 'string' && t.regex === undefined) {
        fixed.push([name, t.fixed_value]);
        return;
      }
      const src = typeof t.regex === 'string' ? t.regex : '';
      if (!src) {
        // Envoy looks the name up among its default tags and uses that regex.
        if (BUILTIN_TAGS.has(name)) named.add(name);
        else errors.push({ path: tpath, message: `no regex or fixed_value, and "${name}" is not one of Strait's default tags (${[...BUILTIN_TAGS].join(', ')})` });
        return;
      }
      if (Buffer.byteLength(src) > 1024) {
        errors.push({ path: `${tpath}.regex`, message: 'is longer than 1024 bytes' });
        return;
      }
      try {
        // `d`: the first group's offsets say what to cut from the name.
        const regex = new RegExp(translateStdRegex(src), 'd');
        if (new RegExp(`${regex.source}|`).exec('')!.length < 2) {
          errors.push({ path: `${tpath}.regex`, message: 'needs a capture group (the part of the name to remove)' });
          return;
        }
        regexes.push({ name, regex, prefix: regexPrefix(src) });
      } catch (err) {
        errors.push({ path: `${tpath}.regex`, message: `invalid regex: ${(err as Error).message}` });
      }
    });
    // A custom tag by a default tag's name takes that tag over.
    const defaultTags: ReadonlySet<string> | 'all' | 'none' = useDefaults
      ? names.size === 0 ? 'all' : new Set([...BUILTIN_TAGS].filter((n) => !names.has(n) || named.has(n)))
      : named.size ? named : 'none';
    tagging = { defaultTags, regexes: [...regexes.filter((r) => !r.prefix), ...regexes.filter((r) => r.prefix)], fixed };
  }

  const buckets: Array<{ match: StringMatch; bounds: Float64Array }> = [];
  ((cfg.histogram_bucket_settings ?? []) as Obj[]).forEach((b, i) => {
    const bpath = `${path}.histogram_bucket_settings[${i}]`;
    if (!b.match) {
      errors.push({ path: `${bpath}.match`, message: 'is required' });
      return;
    }
    const match = compileStringMatcher(b.match, `${bpath}.match`, errors);
    const values = ((b.buckets ?? []) as unknown[]).map(Number);
    if (!values.length) errors.push({ path: `${bpath}.buckets`, message: 'needs at least one bucket' });
    if (values.some((v) => !(v > 0))) errors.push({ path: `${bpath}.buckets`, message: 'buckets must be greater than 0' });
    if (new Set(values).size !== values.length) errors.push({ path: `${bpath}.buckets`, message: 'buckets must be unique' });
    if (match) buckets.push({ match, bounds: Float64Array.from(values).sort() });
  });

  if (!accept && !tagging && !buckets.length) return null;
  return { accept, tagging, buckets };
}

/** A stat name split Envoy's way: the tag-extracted name and the tags, in Envoy's tag names. */
export interface TaggedName {
  readonly name: string;
  readonly tags: ReadonlyArray<readonly [string, string]>;
}

/**
 * Tag extraction on one full stat name. Every extractor looks at the original name (Envoy v3:
 * "independently processed"); a tag name is taken once, by the first extractor that matches; the
 * removed parts (each first capture group) are cut out together at the end.
 */
export function extractTags(full: string, scopeTags: readonly ScopeTag[], tagging: NonNullable<StatsSettings['tagging']>): TaggedName {
  const tags: Array<[string, string]> = [];
  const cuts: Array<[number, number]> = [];
  const taken = new Set<string>();
  const d = tagging.defaultTags;
  if (d !== 'none') {
    for (const t of scopeTags) {
      if (d !== 'all' && !d.has(t.name)) continue;
      if (taken.has(t.name)) continue;
      taken.add(t.name);
      tags.push([t.name, t.value]);
      cuts.push([t.start, t.start + t.value.length + 1]);
    }
  }
  const dot = full.indexOf('.');
  const first = dot < 0 ? full : full.slice(0, dot);
  for (const r of tagging.regexes) {
    if (taken.has(r.name) || (r.prefix !== null && r.prefix !== first)) continue;
    const m = r.regex.exec(full);
    const span = m?.indices?.[1];
    if (!m || !span) continue;
    taken.add(r.name);
    tags.push([r.name, (m.length > 2 ? m[2] : m[1]) ?? '']);
    cuts.push(span);
  }
  for (const f of tagging.fixed) if (!taken.has(f[0])) tags.push([f[0], f[1]]);
  if (!cuts.length) return { name: full, tags };
  cuts.sort((a, b) => a[0] - b[0]);
  let name = '';
  let at = 0;
  for (const [s, e] of cuts) {
    if (s > at) name += full.slice(at, s);
    if (e > at) at = e;
  }
  name += full.slice(at);
  return { name, tags };
}
