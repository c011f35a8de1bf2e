import fs from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigError, type FieldError } from '../errors.js';
import { fromJson, newContext, type DecodeContext } from './proto-json.js';
import { lookupType, typeFromUrl } from './registry.js';
import type { Bootstrap } from './types.js';

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

/** Parses YAML or JSON text (JSON is YAML, but JSON files get JSON's error messages). */
export function parseConfigText(text: string, fileName: string): unknown {
  if (fileName.endsWith('.json')) {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new ConfigError([{ path: '', message: `invalid JSON: ${(err as Error).message}` }], fileName);
    }
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigError(
      doc.errors.map((e) => ({ path: '', message: `YAML ${e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : ''}: ${e.message.split('\n')[0]}` })),
      fileName,
    );
  }
  return doc.toJS({ maxAliasCount: 1000 });
}

/** Decodes one resource (a Bootstrap, Listener, Cluster, …) given by type name or type URL. */
export function decodeResource(typeNameOrUrl: string, value: unknown, path: string, ctx: DecodeContext): unknown {
  const type = typeNameOrUrl.includes('/') ? typeFromUrl(typeNameOrUrl) : lookupType(typeNameOrUrl);
  if (!type) {
    ctx.errors.push({ path, message: `unknown type "${typeNameOrUrl}"` });
    return undefined;
  }
  return fromJson(type, value, path, ctx);
}

export interface LoadedBootstrap {
  readonly bootstrap: Bootstrap;
  readonly warnings: readonly FieldError[];
  /** Decode errors, when `keepErrors` asked for them instead of a throw. */
  readonly errors: readonly FieldError[];
}

export interface LoadOptions {
  readonly unknownAny?: DecodeContext['unknownAny'];
  /**
   * Return decode errors instead of throwing, with the fields that did decode, so the caller
   * can add its semantic checks and report everything at once.
   */
  readonly keepErrors?: boolean;
}

/** Decodes Bootstrap text; throws one ConfigError listing every problem (unless keepErrors). */
export function parseBootstrapText(text: string, source: string, opts: LoadOptions = {}): LoadedBootstrap {
  const raw = parseConfigText(text, source);
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new ConfigError([{ path: '', message: 'a bootstrap must be a mapping (YAML) or an object (JSON)' }], source);
  }
  const ctx = newContext(opts.unknownAny ?? 'error');
  const bootstrap = (decodeResource(BOOTSTRAP_TYPE, raw ?? {}, '', ctx) ?? {}) as Bootstrap;
  if (ctx.errors.length && !opts.keepErrors) throw new ConfigError(ctx.errors, source);
  return { bootstrap, warnings: ctx.warnings, errors: ctx.errors };
}

export function loadBootstrapFile(file: string, opts: LoadOptions = {}): LoadedBootstrap {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read: ${(err as Error).message}` }], file);
  }
  return parseBootstrapText(text, file, opts);
}
