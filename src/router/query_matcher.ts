import type { FieldError } from '../errors.js';
import { compileStringMatcher } from './string_matcher.js';

type Obj = Record<string, any>;

/** A request's query parameters, decoded, as the matchers read them. */
export type QueryMatch = (p: URLSearchParams) => boolean;

/**
 * A `config.route.v3.QueryParameterMatcher` (routes' `match.query_parameters`, rate limit
 * `query_parameter_value_match`): `string_match` on the first value, `present_match`, or with
 * neither the parameter only has to be present, as in Envoy.
 */
export function compileQueryMatcher(q: Obj, path: string, errors: FieldError[]): QueryMatch | null {
  const name = String(q.name ?? '');
  if (q.present_match !== undefined) {
    const want = q.present_match === true;
    return (p) => p.has(name) === want;
  }
  if (q.string_match) {
    const m = compileStringMatcher(q.string_match, `${path}.string_match`, errors);
    return m ? (p) => { const v = p.get(name); return v !== null && m(v); } : null;
  }
  return (p) => p.has(name);
}

/** The query of a request target, parsed (an empty one when it has none). */
export function queryOf(target: string): URLSearchParams {
  const q = target.indexOf('?');
  return new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
}
