import fs from 'node:fs';
import type { FieldError } from '../../errors.js';
import type { Scope } from '../stats.js';
import type { AccessLogEntry } from './entry.js';
import { compileEntryFilter, type EntryFilter } from './filter.js';
import { compileJsonFormat, compileTextFormat, DEFAULT_FORMAT, type Formatter } from './format.js';
import { sinkFor, type FileSink } from './sink.js';

type Obj = Record<string, any>;

const FILE_TYPE = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
const STDOUT_TYPE = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';
const STDERR_TYPE = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog';

/** One validated `access_log` entry: where and how. */
export interface AccessLogSpec {
  /** A file path, or 1 / 2 for stdout / stderr. */
  readonly target: string | number;
  readonly format: Formatter;
  /** `filter`: which entries this log takes; null logs every entry. */
  readonly filter: EntryFilter | null;
}

/** A `SubstitutionFormatString` (or a FileAccessLog's deprecated format fields). */
function formatOf(f: Obj | undefined, legacy: Obj, path: string, errors: FieldError[]): Formatter {
  if (!f) {
    if (typeof legacy.format === 'string') return compileTextFormat(legacy.format, `${path}.format`, errors, false);
    if (legacy.json_format) return compileJsonFormat(legacy.json_format, `${path}.json_format`, errors, false);
    if (legacy.typed_json_format) return compileJsonFormat(legacy.typed_json_format, `${path}.typed_json_format`, errors, false);
    return compileTextFormat(DEFAULT_FORMAT, path, errors, false);
  }
  return compileSubstitutionFormat(f, `${path}.log_format`, errors);
}

/**
 * Envoy's `SubstitutionFormatString` at `path` (access log formats, the local reply's body
 * formats): text_format, text_format_source or json_format, with omit_empty_values.
 */
export function compileSubstitutionFormat(f: Obj, p: string, errors: FieldError[]): Formatter {
  const omit = f.omit_empty_values === true;
  if (f.formatters?.length) errors.push({ path: `${p}.formatters`, message: 'formatter extensions are not supported' });
  if (f.json_format) return compileJsonFormat(f.json_format, `${p}.json_format`, errors, omit);
  if (typeof f.text_format === 'string') return compileTextFormat(f.text_format, `${p}.text_format`, errors, omit);
  const src = f.text_format_source as Obj | undefined;
  if (src) {
    let text: string | null = null;
    if (typeof src.inline_string === 'string') text = src.inline_string;
    else if (typeof src.inline_bytes === 'string') text = Buffer.from(src.inline_bytes, 'base64').toString('utf8');
    else if (typeof src.filename === 'string') {
      try {
        text = fs.readFileSync(src.filename, 'utf8');
      } catch (err) {
        errors.push({ path: `${p}.text_format_source.filename`, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
        return () => '';
      }
    } else errors.push({ path: `${p}.text_format_source`, message: 'needs inline_string, inline_bytes or filename' });
    return compileTextFormat(text ?? '', `${p}.text_format_source`, errors, omit);
  }
  return compileTextFormat(DEFAULT_FORMAT, p, errors, omit);
}

/**
 * Validates a filter's `access_log` list. Returns null when there is none, so a filter without
 * logs never builds an entry.
 */
export function parseAccessLogs(list: Obj[] | undefined, path: string, errors: FieldError[], warnings: FieldError[]): readonly AccessLogSpec[] | null {
  if (!list?.length) return null;
  const out: AccessLogSpec[] = [];
  list.forEach((al, i) => {
    const p = `${path}[${i}]`;
    const filter = al.filter ? compileEntryFilter(al.filter, `${p}.filter`, errors) : null;
    const tc = (al.typed_config ?? {}) as Obj;
    const type = tc['@type'] as string | undefined;
    const tp = `${p}.typed_config`;
    if (type === FILE_TYPE) {
      const file = String(tc.path ?? '');
      if (!file) errors.push({ path: `${tp}.path`, message: 'is required' });
      // /dev/stdout is common in Envoy configs: write it through the same non-blocking sink.
      const target = file === '/dev/stdout' ? 1 : file === '/dev/stderr' ? 2 : file;
      out.push({ target, format: formatOf(tc.log_format, tc, tp, errors), filter });
    } else if (type === STDOUT_TYPE || type === STDERR_TYPE) {
      out.push({ target: type === STDOUT_TYPE ? 1 : 2, format: formatOf(tc.log_format, {}, tp, errors), filter });
    } else {
      errors.push({
        path: type ? `${tp}.@type` : `${p}.name`,
        message: `unsupported access logger ${type ?? al.name ?? ''} (supported: envoy.access_loggers.file, envoy.access_loggers.stdout, envoy.access_loggers.stderr)`,
      });
    }
  });
  return Object.freeze(out);
}

/** The run-time side: formats an entry once per sink and queues it. */
export class AccessLogger {
  private readonly sinks: Array<{ sink: FileSink; format: Formatter; filter: EntryFilter | null }>;

  constructor(specs: readonly AccessLogSpec[], root: Scope) {
    this.sinks = specs.map((s) => ({ sink: sinkFor(root, s.target), format: s.format, filter: s.filter }));
  }

  log(e: AccessLogEntry): void {
    for (const s of this.sinks) if (s.filter === null || s.filter(e)) s.sink.write(s.format(e));
  }
}

/** null when the filter has no access log: callers test it before building an entry. */
export function createAccessLogger(specs: readonly AccessLogSpec[] | null, root: Scope): AccessLogger | null {
  return specs ? new AccessLogger(specs, root) : null;
}
