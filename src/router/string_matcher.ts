import type { FieldError } from '../errors.js';

type Obj = Record<string, any>;

/** A compiled Envoy `type.matcher.v3.StringMatcher`. */
export type StringMatch = (value: string) => boolean;

/**
 * exact / prefix / suffix / contains / safe_regex, with ignore_case. Regexes must match the whole
 * value, as RE2 full matches do in Envoy.
 */
export function compileStringMatcher(m: Obj, path: string, errors: FieldError[]): StringMatch | null {
  const ic = m.ignore_case === true;
  const norm = (s: string) => (ic ? s.toLowerCase() : s);
  if (typeof m.exact === 'string') {
    const e = norm(m.exact);
    return (v) => norm(v) === e;
  }
  if (typeof m.prefix === 'string') {
    const p = norm(m.prefix);
    return (v) => norm(v).startsWith(p);
  }
  if (typeof m.suffix === 'string') {
    const p = norm(m.suffix);
    return (v) => norm(v).endsWith(p);
  }
  if (typeof m.contains === 'string') {
    const p = norm(m.contains);
    return (v) => norm(v).includes(p);
  }
  if (m.safe_regex) {
    try {
      const re = new RegExp(`^(?:${String(m.safe_regex.regex ?? '')})$`, ic ? 'i' : '');
      return (v) => re.test(v);
    } catch (err) {
      errors.push({ path: `${path}.safe_regex.regex`, message: `invalid regex: ${(err as Error).message}` });
      return null;
    }
  }
  errors.push({ path, message: 'a string matcher needs exact, prefix, suffix, contains or safe_regex' });
  return null;
}
