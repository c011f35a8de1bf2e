import type { FieldError } from '../../errors.js';
import { compileHeaderMatcher } from '../../router/header_matcher.js';
import type { AccessLogEntry } from './entry.js';

type Obj = Record<string, any>;

/** Whether an entry is logged; compiled once per `access_log[i].filter`. */
export type EntryFilter = (e: AccessLogEntry) => boolean;

const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/** Envoy's two-letter response flags, for validating `response_flag_filter.flags`. */
const RESPONSE_FLAGS = new Set([
  'LH', 'UH', 'UT', 'LR', 'UR', 'UF', 'UC', 'UO', 'NR', 'DI', 'FI', 'RL', 'UAEX', 'RLSE', 'DC', 'URX', 'SI',
  'IH', 'DPE', 'UMSDR', 'RFCF', 'NFCF', 'DT', 'UPE', 'NC', 'OM', 'DF', 'DO', 'DR',
]);

/** `ComparisonFilter`: op EQ (default) / GE / LE against a RuntimeUInt32's default_value. */
function comparison(c: Obj | undefined, path: string, errors: FieldError[]): ((n: number) => boolean) | null {
  const op = String(c?.op ?? 'EQ');
  const raw = c?.value?.default_value;
  const value = Number(raw ?? 0);
  if (!Number.isInteger(value) || value < 0) {
    errors.push({ path: `${path}.value.default_value`, message: `must be a non-negative integer, got ${JSON.stringify(raw)}` });
    return null;
  }
  // `value.runtime_key` is ignored: with no runtime layer Envoy uses the default too.
  switch (op) {
    case 'EQ': return (n) => n === value;
    case 'GE': return (n) => n >= value;
    case 'LE': return (n) => n <= value;
    default:
      errors.push({ path: `${path}.op`, message: `unknown op ${op} (EQ, GE or LE)` });
      return null;
  }
}

/**
 * Compiles an Envoy `config.accesslog.v3.AccessLogFilter`. Kinds that need facts Strait does not
 * record per entry (traceable, gRPC status from trailers, dynamic metadata) are refused, since
 * logging more or fewer entries than configured would be a silent change.
 */
export function compileEntryFilter(f: Obj, path: string, errors: FieldError[]): EntryFilter | null {
  const kinds = Object.keys(f).filter((k) => k.endsWith('_filter'));
  if (kinds.length !== 1) {
    errors.push({ path, message: kinds.length ? `exactly one filter kind, got ${kinds.join(', ')}` : 'needs one filter kind (status_code_filter, duration_filter, …)' });
    return null;
  }
  const kind = kinds[0]!;
  const p = `${path}.${kind}`;
  const v = (f[kind] ?? {}) as Obj;
  switch (kind) {
    case 'status_code_filter': {
      const cmp = comparison(v.comparison, `${p}.comparison`, errors);
      return cmp && ((e) => cmp(e.responseCode ?? 0));
    }
    case 'duration_filter': {
      const cmp = comparison(v.comparison, `${p}.comparison`, errors);
      return cmp && ((e) => cmp(Math.round(e.durationMs)));
    }
    case 'not_health_check_filter':
      // Strait has no health_check HTTP filter, so no request is answered as a health check.
      return () => true;
    case 'runtime_filter': {
      const ps = (v.percent_sampled ?? {}) as Obj;
      const denom = DENOMINATORS[String(ps.denominator ?? 'HUNDRED')];
      if (!denom) {
        errors.push({ path: `${p}.percent_sampled.denominator`, message: `unknown denominator ${ps.denominator}` });
        return null;
      }
      const share = Math.min(1, Number(ps.numerator ?? 0) / denom);
      return () => Math.random() < share;
    }
    case 'and_filter':
    case 'or_filter': {
      const list = (v.filters ?? []) as Obj[];
      if (list.length < 2) errors.push({ path: `${p}.filters`, message: 'needs at least two filters' });
      const subs = list.map((x, i) => compileEntryFilter(x, `${p}.filters[${i}]`, errors));
      if (subs.some((s) => !s)) return null;
      const all = subs as EntryFilter[];
      return kind === 'and_filter' ? (e) => all.every((s) => s(e)) : (e) => all.some((s) => s(e));
    }
    case 'header_filter': {
      const m = v.header ? compileHeaderMatcher(v.header, `${p}.header`, errors) : null;
      if (!m) {
        if (!v.header) errors.push({ path: `${p}.header`, message: 'is required' });
        return null;
      }
      // L4 and RPC entries have no request headers: every lookup misses.
      return (e) => m(e.requestHeader ?? (() => undefined));
    }
    case 'response_flag_filter': {
      const flags = ((v.flags ?? []) as unknown[]).map(String);
      const bad = flags.filter((x) => !RESPONSE_FLAGS.has(x));
      if (bad.length) {
        errors.push({ path: `${p}.flags`, message: `unknown response flag(s) ${bad.join(', ')}` });
        return null;
      }
      if (!flags.length) return (e) => e.responseFlags !== '';
      const want = new Set(flags);
      return (e) => e.responseFlags !== '' && e.responseFlags.split(',').some((x) => want.has(x));
    }
    default:
      errors.push({
        path: p,
        message: `${kind} is not supported (supported: status_code_filter, duration_filter, not_health_check_filter, runtime_filter, and_filter, or_filter, header_filter, response_flag_filter)`,
      });
      return null;
  }
}
