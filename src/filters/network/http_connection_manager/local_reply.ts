/**
 * The connection manager's `local_reply_config`: how replies Strait makes itself (no route, 503
 * after tries, timeouts, filter denials, direct responses) are rewritten before they leave, as
 * Envoy's LocalReply does. The first mapper whose access-log filter matches sets, in this order,
 * the body, the headers to add (formatted with the original status), the status; then the body is
 * formatted by that mapper's `body_format_override` or the config's `body_format`, with
 * `%LOCAL_REPLY_BODY%` and `%RESPONSE_CODE%` (the new status). gRPC requests get the status and
 * body rewrites (they become grpc-status and grpc-message) but no body format, as their body is
 * never sent.
 */
import type { FieldError } from '../../../errors.js';
import { compileSubstitutionFormat } from '../../../observability/access_log/config.js';
import type { AccessLogEntry } from '../../../observability/access_log/entry.js';
import { compileEntryFilter, type EntryFilter } from '../../../observability/access_log/filter.js';
import { compileTextFormat, type Formatter } from '../../../observability/access_log/format.js';

type Obj = Record<string, any>;

interface BodyFormat {
  readonly format: Formatter;
  readonly contentType: string;
}

interface HeaderToAdd {
  /** Lower-case. */
  readonly name: string;
  readonly value: Formatter;
  /** Replace a header of that name (OVERWRITE_IF_EXISTS_OR_ADD), else add another. */
  readonly overwrite: boolean;
  /** Only when the reply already has one (OVERWRITE_IF_EXISTS) / only when it has none (ADD_IF_ABSENT). */
  readonly onlyIfExists: boolean;
  readonly onlyIfAbsent: boolean;
  readonly keepEmpty: boolean;
}

interface Mapper {
  readonly filter: EntryFilter;
  readonly status: number;
  readonly body: string | null;
  readonly headers: readonly HeaderToAdd[];
  readonly format: BodyFormat | null;
}

/** What a reply becomes; `headers` are to be applied with applyLocalReplyHeaders. */
export interface RewrittenReply {
  status: number;
  body: string | Buffer;
  /** Set when the body was formatted: the reply's content-type is replaced by it. */
  contentType: string | null;
  headers: ReadonlyArray<{ readonly h: HeaderToAdd; readonly value: string }>;
}

export class LocalReplyConfig {
  constructor(
    private readonly mappers: readonly Mapper[],
    private readonly format: BodyFormat | null,
  ) {}

  /**
   * `entry` describes the exchange (request headers, flags, addresses); it is built only when
   * this runs and gets responseCode and localReplyBody set here. Returns null when nothing
   * changes (no mapper matched and there is no body_format).
   */
  rewrite(status: number, body: string | Buffer, grpc: boolean, entry: () => AccessLogEntry): RewrittenReply | null {
    const e = entry();
    e.responseCode = status;
    let mapper: Mapper | null = null;
    for (const m of this.mappers) {
      if (m.filter(e)) {
        mapper = m;
        break;
      }
    }
    const format = grpc ? null : (mapper?.format ?? this.format);
    if (mapper === null && format === null) return null;
    const out: RewrittenReply = { status, body, contentType: null, headers: [] };
    if (mapper !== null) {
      if (mapper.body !== null) out.body = mapper.body;
      if (mapper.headers.length) out.headers = mapper.headers.map((h) => ({ h, value: h.value(e) }));
      if (mapper.status) out.status = e.responseCode = mapper.status;
    }
    if (format !== null) {
      e.localReplyBody = typeof out.body === 'string' ? out.body : out.body.toString('utf8');
      out.body = format.format(e);
      out.contentType = format.contentType;
    } else if (mapper?.body && !grpc) {
      // A body of the mapper's own is plain text (Envoy's default format), whatever the reply said.
      out.contentType = 'text/plain';
    }
    return out;
  }
}

/**
 * Applies the mapper's headers to a reply's headers, held however the caller holds them: `has`
 * tells whether one is present, `set` replaces (or adds), `add` adds another.
 */
export function applyLocalReplyHeaders(r: RewrittenReply, has: (name: string) => boolean, set: (name: string, value: string) => void, add: (name: string, value: string) => void): void {
  for (const { h, value } of r.headers) {
    if (value === '' && !h.keepEmpty) continue;
    const present = has(h.name);
    if ((h.onlyIfExists && !present) || (h.onlyIfAbsent && present)) continue;
    if (h.overwrite || !present) set(h.name, value);
    else add(h.name, value);
  }
}

function dataSource(d: Obj | undefined, path: string, errors: FieldError[]): string | null {
  if (!d) return null;
  if (typeof d.inline_string === 'string') return d.inline_string;
  if (typeof d.inline_bytes === 'string') return Buffer.from(d.inline_bytes, 'base64').toString('utf8');
  if (d.filename !== undefined || d.environment_variable !== undefined) {
    errors.push({ path, message: 'only inline_string and inline_bytes bodies are supported' });
    return null;
  }
  errors.push({ path, message: 'needs inline_string or inline_bytes' });
  return null;
}

function bodyFormat(f: Obj | undefined, path: string, errors: FieldError[]): BodyFormat | null {
  if (!f) return null;
  if (f.json_format === undefined && f.text_format === undefined && f.text_format_source === undefined) {
    errors.push({ path, message: 'needs text_format, text_format_source or json_format' });
    return null;
  }
  const format = compileSubstitutionFormat(f, path, errors);
  const contentType = typeof f.content_type === 'string' && f.content_type ? f.content_type : f.json_format !== undefined ? 'application/json' : 'text/plain';
  return { format, contentType };
}

const APPEND_ACTIONS = new Set(['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS']);

function headersToAdd(list: Obj[] | undefined, path: string, errors: FieldError[]): HeaderToAdd[] {
  const out: HeaderToAdd[] = [];
  (list ?? []).forEach((o, i) => {
    const p = `${path}[${i}]`;
    const name = String(o.header?.key ?? '').toLowerCase();
    if (!name) {
      errors.push({ path: `${p}.header.key`, message: 'is required' });
      return;
    }
    if (name.startsWith(':')) {
      errors.push({ path: `${p}.header.key`, message: `pseudo-header ${name} cannot be added` });
      return;
    }
    let action = o.append_action as string | undefined;
    if (action !== undefined && !APPEND_ACTIONS.has(action)) {
      errors.push({ path: `${p}.append_action`, message: `unknown action ${action}` });
      return;
    }
    // The deprecated `append` (BoolValue, default true) when append_action is not given.
    const append = o.append?.value ?? o.append;
    if (action === undefined) action = append === false ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD';
    out.push({
      name,
      value: compileTextFormat(String(o.header?.value ?? ''), `${p}.header.value`, errors, true),
      overwrite: action === 'OVERWRITE_IF_EXISTS_OR_ADD' || action === 'OVERWRITE_IF_EXISTS',
      onlyIfExists: action === 'OVERWRITE_IF_EXISTS',
      onlyIfAbsent: action === 'ADD_IF_ABSENT',
      keepEmpty: o.keep_empty_value === true,
    });
  });
  return out;
}

/** Validates `local_reply_config`; null when absent (replies go out as made). */
export function parseLocalReplyConfig(c: Obj | undefined, path: string, errors: FieldError[]): LocalReplyConfig | null {
  if (!c) return null;
  const start = errors.length;
  const mappers: Mapper[] = [];
  ((c.mappers ?? []) as Obj[]).forEach((m, i) => {
    const p = `${path}.mappers[${i}]`;
    if (!m.filter) {
      errors.push({ path: `${p}.filter`, message: 'is required' });
      return;
    }
    const filter = compileEntryFilter(m.filter, `${p}.filter`, errors);
    const raw = m.status_code?.value ?? m.status_code;
    const status = raw === undefined || raw === null ? 0 : Number(raw);
    if (status !== 0 && !(Number.isInteger(status) && status >= 200 && status < 600)) errors.push({ path: `${p}.status_code`, message: `must be from 200 to 599, got ${JSON.stringify(raw)}` });
    const body = dataSource(m.body, `${p}.body`, errors);
    const headers = headersToAdd(m.headers_to_add, `${p}.headers_to_add`, errors);
    const format = bodyFormat(m.body_format_override, `${p}.body_format_override`, errors);
    if (filter) mappers.push({ filter, status, body, headers, format });
  });
  const format = bodyFormat(c.body_format, `${path}.body_format`, errors);
  if (errors.length > start) return null;
  if (!mappers.length && !format) return null;
  return new LocalReplyConfig(mappers, format);
}
