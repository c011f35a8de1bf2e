import fs from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigError, type FieldError } from '../errors.js';
import { fromJson, newContext, type DecodeContext } from './proto-json.js';
import { lookupType, typeFromUrl } from './registry.js';
import type { Bootstrap } from './types.js';
import { ANY, describe, fullName, isObject, joinPath } from './wkt.js';

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

/**
 * Parses configuration text: JSON when the file is `.json` or the text starts with `{`,
 * YAML otherwise (YAML 1.2 with `<<` merge keys; duplicate keys are errors, as in Envoy).
 * Syntax errors become a ConfigError whose messages carry `line:column`.
 */
export function parseConfigText(text: string, fileName: string): unknown {
  const isJsonFile = fileName.endsWith('.json');
  if (isJsonFile || /^\s*\{/.test(text)) {
    try {
      return JSON.parse(text);
    } catch (err) {
      // Not JSON after all? A `.yaml` file may start with a YAML flow mapping.
      if (!isJsonFile) return parseYaml(text, fileName);
      // JSON is YAML: the YAML parser knows where things went wrong when V8's message does not.
      const msg = (err as Error).message.split('\n')[0]!;
      const pos = /position (\d+)/.exec(msg);
      const where = pos ? lineCol(text, Number(pos[1])) : yamlErrors(text)[0]?.at;
      throw new ConfigError([{ path: '', message: `JSON syntax error${where ? ` at ${where}` : ''}: ${msg.replace(/ in JSON at position \d+.*$/, '').replace(/, ".*$/, '')}` }], fileName);
    }
  }
  return parseYaml(text, fileName);
}

function yamlErrors(text: string): Array<{ at?: string; message: string }> {
  const doc = parseDocument(text, { uniqueKeys: true, merge: true });
  return doc.errors.map((e) => ({ at: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : undefined, message: e.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '') }));
}

function parseYaml(text: string, fileName: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, merge: true });
  if (doc.errors.length) {
    throw new ConfigError(
      yamlErrors(text).map((e) => ({ path: '', message: `YAML syntax error${e.at ? ` at ${e.at}` : ''}: ${e.message}` })),
      fileName,
    );
  }
  return doc.toJS({ maxAliasCount: 10_000 });
}

/**
 * Decodes one resource (a Bootstrap, Listener, Cluster, … or an Any) given by type name or
 * type URL into the normalized form, reporting problems to `ctx`. A value that carries its own
 * `@type` (an xDS resource file entry) is checked against the type asked for.
 */
export function decodeResource(typeUrlOrName: string, value: unknown, path: string, ctx: DecodeContext): unknown {
  const type = typeUrlOrName.includes('/') ? typeFromUrl(typeUrlOrName) : lookupType(typeUrlOrName);
  if (!type) {
    ctx.errors.push({ path, message: `unknown type "${typeUrlOrName}"` });
    return undefined;
  }
  if (fullName(type) !== ANY && isObject(value) && '@type' in value) {
    const { ['@type']: url, ...rest } = value;
    const given = typeof url === 'string' ? typeFromUrl(url) : null;
    if (given !== type) {
      ctx.errors.push({ path: joinPath(path, '@type'), message: `expected "${fullName(type)}", got ${typeof url === 'string' ? JSON.stringify(url) : describe(url)}` });
      return undefined;
    }
    return fromJson(type, rest, path, ctx);
  }
  return fromJson(type, value, path, ctx);
}

export interface LoadedBootstrap {
  readonly bootstrap: Bootstrap;
  readonly warnings: readonly FieldError[];
  /** Decode errors, when `keepErrors` asked for them instead of a throw (else always empty). */
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
  if (raw !== null && raw !== undefined && !isObject(raw)) {
    throw new ConfigError([{ path: '', message: `a bootstrap must be a mapping (YAML) or an object (JSON), got ${describe(raw)}` }], source);
  }
  const ctx = newContext(opts.unknownAny ?? 'error');
  const bootstrap = (decodeResource(BOOTSTRAP_TYPE, raw ?? {}, '', ctx) ?? {}) as Bootstrap;
  if (ctx.errors.length && !opts.keepErrors) throw new ConfigError(ctx.errors, source);
  return { bootstrap, warnings: ctx.warnings, errors: ctx.errors };
}

/** Reads and decodes a Bootstrap file (YAML or JSON); throws ConfigError(errors, file) on any problem. */
export function loadBootstrapFile(file: string, opts: LoadOptions = {}): LoadedBootstrap {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read: ${(err as Error).message}` }], file);
  }
  return parseBootstrapText(text, file, opts);
}
