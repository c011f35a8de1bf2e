import type { FieldError } from '../errors.js';
import { compileStringMatcher, type StringMatch } from './string_matcher.js';

type Obj = Record<string, any>;

/** Looks a header (HTTP), attachment (Dubbo) or header-map entry (Bolt) up by name. */
export type HeaderLookup = (name: string) => string | undefined;

export type HeaderMatch = (get: HeaderLookup) => boolean;

/** A compiled Envoy `config.route.v3.HeaderMatcher`, shared by every protocol's routes. */
export function compileHeaderMatcher(h: Obj, path: string, errors: FieldError[]): HeaderMatch | null {
  const name = String(h.name ?? '');
  const invert = h.invert_match === true;
  const missingAsEmpty = h.treat_missing_header_as_empty === true;
  let test: ((v: string | undefined) => boolean) | null = null;
  if (h.present_match !== undefined) {
    const want = h.present_match === true;
    test = (v) => (v !== undefined) === want;
  } else if (h.string_match) {
    const m = compileStringMatcher(h.string_match, `${path}.string_match`, errors);
    if (m) test = (v) => v !== undefined && m(v);
  } else if (h.exact_match !== undefined || h.prefix_match !== undefined || h.suffix_match !== undefined || h.contains_match !== undefined || h.safe_regex_match) {
    // The deprecated per-kind fields are StringMatcher in disguise.
    const m: StringMatch | null = compileStringMatcher(
      { exact: h.exact_match, prefix: h.prefix_match, suffix: h.suffix_match, contains: h.contains_match, safe_regex: h.safe_regex_match },
      path,
      errors,
    );
    if (m) test = (v) => v !== undefined && m(v);
  } else if (h.range_match) {
    const start = Number(h.range_match.start);
    const end = Number(h.range_match.end);
    test = (v) => {
      if (v === undefined || !/^-?\d+$/.test(v)) return false;
      const n = Number(v);
      return n >= start && n < end;
    };
  } else {
    // No value matcher: the header must be present.
    test = (v) => v !== undefined;
  }
  if (!test) return null;
  const t = test;
  return (get) => {
    let v = get(name);
    if (v === undefined && missingAsEmpty) v = '';
    return t(v) !== invert;
  };
}
