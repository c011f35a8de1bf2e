import type { FieldError } from '../errors.js';
import type { AppendAction, HeaderAdd } from './http_route_table.js';

type Obj = Record<string, any>;

/**
 * A list of `config.core.v3.HeaderValueOption` (routes' and virtual hosts' request/response
 * headers to add, local_ratelimit's request_headers_to_add_when_not_enforced): lower-case names,
 * `raw_value` decoded, `append_action` or the deprecated `append`, `keep_empty_value`. Pseudo
 * headers (and Host, on a request) cannot be added, nor values with CR, LF or NUL.
 */
export function compileHeaderAdds(list: unknown, path: string, errors: FieldError[], request: boolean): HeaderAdd[] {
  return ((list ?? []) as Obj[]).flatMap((o, i) => {
    const p = `${path}[${i}]`;
    const h = (o.header ?? {}) as Obj;
    const name = String(h.key ?? '').toLowerCase();
    const value = h.raw_value !== undefined ? Buffer.from(String(h.raw_value), 'base64').toString('latin1') : String(h.value ?? '');
    if (!name || name.startsWith(':') || (request && name === 'host')) {
      errors.push({ path: `${p}.header.key`, message: `cannot add header "${name}"` });
      return [];
    }
    // Envoy's %FORMATTER% substitutions are not implemented; a literal "%%" is an escaped percent.
    if (/%[A-Z_]/.test(value.replace(/%%/g, ''))) {
      errors.push({ path: `${p}.header.value`, message: 'header value formatters (%...%) are not supported yet' });
      return [];
    }
    if (/[\r\n\0]/.test(value)) {
      errors.push({ path: `${p}.header.value`, message: 'must not contain CR, LF or NUL' });
      return [];
    }
    let action: AppendAction = (o.append_action as AppendAction | undefined) ?? 'APPEND_IF_EXISTS_OR_ADD';
    // The deprecated `append` (default true) maps onto the two original behaviours.
    if (o.append !== undefined && o.append !== null) action = o.append === false ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD';
    return [{ name, value: value.replace(/%%/g, '%'), action, keepEmpty: o.keep_empty_value === true }];
  });
}
