import http from 'node:http';
import grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { lookupType } from '../../../config/index.js';
import type { PeerAddress } from '../../../io/engine.js';
import type { AppendAction, HeaderAdd } from '../../../router/http_route_table.js';
import type { MetadataValue } from '../types.js';
import type { ClusterManager } from '../../../upstream/cluster_manager.js';
import type { Host } from '../../../upstream/host.js';
import type { GrpcAuthzService, HttpAuthzService, NameList } from './config.js';

/** What the service said. `error`: unreachable, timed out, a 5xx or an unreadable answer. */
export type CheckOutcome =
  | {
      readonly kind: 'ok';
      readonly headers: readonly HeaderAdd[];
      readonly remove: readonly string[];
      /**
       * For the response the client gets: a gRPC ok response's response_headers_to_add, or the
       * HTTP service's headers matching allowed_client_headers_on_success.
       */
      readonly respHeaders?: readonly HeaderAdd[];
      /** query_parameters_to_set / _to_remove of a gRPC ok response; absent when it has neither. */
      readonly query?: QueryEdit;
      readonly meta?: DynamicMetadata;
    }
  | { readonly kind: 'denied'; readonly status: number; readonly body: string; readonly headers: ReadonlyArray<readonly [string, string]>; readonly meta?: DynamicMetadata }
  | { readonly kind: 'error'; readonly why: string };

export interface QueryEdit {
  readonly set: ReadonlyArray<readonly [string, string]>;
  readonly remove: readonly string[];
}

/**
 * What the service asked to publish as the request's dynamic metadata (CheckResponse
 * dynamic_metadata, or the HTTP service's dynamic_metadata_from_headers), by top-level key.
 * Absent or empty: nothing to publish.
 */
export type DynamicMetadata = ReadonlyArray<readonly [string, MetadataValue]>;

/** What a check is about: the request as the filter saw it. */
export interface CheckInput {
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly scheme: string;
  readonly protocol: string;
  readonly requestId: string;
  /** Headers allowed into the check, lower-case names, repeated names joined with ','. */
  readonly headers: ReadonlyMap<string, string>;
  readonly source: PeerAddress;
  readonly sourcePrincipal: string;
  readonly destination: PeerAddress;
  readonly destinationPrincipal: string;
  readonly contextExtensions: ReadonlyArray<readonly [string, string]>;
  /** with_request_body: the request body (maybe cut to max_request_bytes), set when the check starts; null = none. */
  body: Buffer | null;
  /** pack_as_bytes: the body goes as raw_body bytes rather than a UTF-8 string. */
  readonly packAsBytes: boolean;
}

/**
 * The two ways to ask an authorization service (GrpcCheck, HttpCheck), behind one shape: `start`
 * sends one check and calls `done` once (unless cancelled first) with the answer or an error.
 */
export interface CheckTransport {
  start(input: CheckInput, timeoutMs: number, done: (o: CheckOutcome) => void): { cancel(): void };
  close(): void;
}

/** Hop-by-hop and framing headers: never copied between the check and the request or reply. */
const NOT_COPIED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer']);

/** Request headers an authorization service may not edit: routing already used them. */
function editable(name: string): boolean {
  return name.length > 0 && name.charCodeAt(0) !== 58 /* ':' */ && !NOT_COPIED.has(name);
}

function matches(list: NameList, name: string): boolean {
  for (const m of list) if (m(name)) return true;
  return false;
}

function target(a: PeerAddress): string {
  if (a.family === 'unix') return `unix:${a.address}`;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

// ------------------------------------------------------------------------------------------ gRPC

const CHECK = '/envoy.service.auth.v3.Authorization/Check';

let types: { req: protobuf.Type; res: protobuf.Type } | null = null;

/** CheckRequest / CheckResponse from the registry the config decoder uses (no generated code). */
function authTypes(): { req: protobuf.Type; res: protobuf.Type } {
  if (!types) {
    const req = lookupType('envoy.service.auth.v3.CheckRequest');
    const res = lookupType('envoy.service.auth.v3.CheckResponse');
    if (!req || !res) throw new Error('envoy.service.auth.v3 is missing from the Envoy API registry');
    types = { req, res };
  }
  return types;
}

function peer(a: PeerAddress, principal: string): Record<string, unknown> {
  const address = a.family === 'unix' ? { pipe: { path: a.address } } : { socket_address: { address: a.address, port_value: a.port } };
  return principal ? { address, principal } : { address };
}

/** The CheckRequest of one request, encoded. Exported for tests. */
export function encodeCheckRequest(i: CheckInput, now = Date.now()): Buffer {
  const t = authTypes().req;
  const headers: Record<string, string> = {};
  for (const [k, v] of i.headers) headers[k] = v;
  const ext: Record<string, string> = {};
  for (const [k, v] of i.contextExtensions) ext[k] = v;
  const msg = {
    attributes: {
      source: peer(i.source, i.sourcePrincipal),
      destination: peer(i.destination, i.destinationPrincipal),
      request: {
        time: { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1_000_000 },
        http: {
          id: i.requestId,
          method: i.method,
          headers,
          path: i.path,
          host: i.host,
          scheme: i.scheme,
          protocol: i.protocol,
          ...(!i.body ? {} : { size: i.body.length, ...(i.packAsBytes ? { raw_body: i.body } : { body: i.body.toString('utf8') }) }),
        },
      },
      context_extensions: ext,
    },
  };
  return Buffer.from(t.encode(t.fromObject(msg)).finish());
}

const APPEND_ACTIONS: readonly AppendAction[] = ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'];

type Obj = Record<string, any>;

function headerOption(o: Obj): { name: string; value: string; action: AppendAction; keepEmpty: boolean } | null {
  const h = (o.header ?? {}) as Obj;
  const name = String(h.key ?? '').toLowerCase();
  if (!name) return null;
  let value = String(h.value ?? '');
  if (!value && h.raw_value && h.raw_value.length) value = Buffer.from(h.raw_value as Uint8Array).toString('latin1');
  // In a CheckResponse an unset `append` means overwrite (external_auth.proto); a set
  // append_action other than the enum's zero is taken as written.
  const ap = o.append as Obj | null | undefined;
  const aa = Number(o.append_action ?? 0);
  const action: AppendAction = ap ? (ap.value === true ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD') : aa > 0 ? (APPEND_ACTIONS[aa] ?? 'OVERWRITE_IF_EXISTS_OR_ADD') : 'OVERWRITE_IF_EXISTS_OR_ADD';
  return { name, value, action, keepEmpty: o.keep_empty_value === true };
}

/**
 * A decoded google.protobuf.Value as plain JSON. The registry has google/protobuf/* from
 * protobufjs's own copies, whose fields are camelCase (the Envoy types keep snake_case).
 */
function valueJson(v: Obj | null | undefined): MetadataValue {
  if (!v) return null;
  if (v.stringValue !== undefined) return String(v.stringValue);
  if (v.numberValue !== undefined) return Number(v.numberValue);
  if (v.boolValue !== undefined) return v.boolValue === true;
  if (v.structValue !== undefined) return structJson(v.structValue as Obj);
  if (v.listValue !== undefined) return (((v.listValue as Obj).values ?? []) as Obj[]).map(valueJson);
  return null;
}

function structJson(s: Obj): Record<string, MetadataValue> {
  const out: Record<string, MetadataValue> = {};
  for (const [k, v] of Object.entries((s.fields ?? {}) as Obj)) out[k] = valueJson(v as Obj);
  return out;
}

/** A Struct's top-level keys as metadata entries; undefined when it has none. */
function structEntries(s: Obj | null | undefined): DynamicMetadata | undefined {
  if (!s) return undefined;
  const out = Object.entries(structJson(s));
  return out.length ? out : undefined;
}

/** A CheckResponse → the outcome. Exported for tests. */
export function decodeCheckResponse(b: Buffer): CheckOutcome {
  const t = authTypes().res;
  const m = t.toObject(t.decode(b), { enums: Number, longs: Number, bytes: Buffer, defaults: false }) as Obj;
  const code = Number(m.status?.code ?? 0);
  if (code === 0) {
    const ok = (m.ok_response ?? {}) as Obj;
    const headers: HeaderAdd[] = [];
    for (const o of (ok.headers ?? []) as Obj[]) {
      const h = headerOption(o);
      if (h && editable(h.name)) headers.push(Object.freeze(h));
    }
    const remove = ((ok.headers_to_remove ?? []) as string[]).map((n) => String(n).toLowerCase()).filter(editable);
    // Headers for the client's response: the same append defaults as `headers` (external_auth.proto),
    // never framing or pseudo-headers, and no value that could break an HTTP/1 head.
    const respHeaders: HeaderAdd[] = [];
    for (const o of (ok.response_headers_to_add ?? []) as Obj[]) {
      const h = headerOption(o);
      if (h && editable(h.name) && !/[\r\n\0]/.test(h.value)) respHeaders.push(Object.freeze(h));
    }
    const set = ((ok.query_parameters_to_set ?? []) as Obj[]).map((q) => [String(q.key ?? ''), String(q.value ?? '')] as const).filter(([k]) => k !== '');
    const qRemove = ((ok.query_parameters_to_remove ?? []) as string[]).map(String);
    // OkHttpResponse.dynamic_metadata is deprecated and, while it exists, wins over the outer one (as in Envoy).
    const meta = structEntries((ok.dynamic_metadata ?? m.dynamic_metadata) as Obj | undefined);
    return {
      kind: 'ok',
      headers,
      remove,
      ...(respHeaders.length ? { respHeaders } : {}),
      ...(set.length || qRemove.length ? { query: Object.freeze({ set, remove: qRemove }) } : {}),
      ...(meta ? { meta } : {}),
    };
  }
  const d = (m.denied_response ?? {}) as Obj;
  const s = Number(d.status?.code ?? 0);
  const headers: Array<readonly [string, string]> = [];
  for (const o of (d.headers ?? []) as Obj[]) {
    const h = headerOption(o);
    if (h && !NOT_COPIED.has(h.name) && h.name.charCodeAt(0) !== 58) headers.push([h.name, h.value]);
  }
  // HttpStatus Empty (0) or anything that is not a status: Envoy's default, 403.
  const meta = structEntries(m.dynamic_metadata as Obj | undefined);
  return { kind: 'denied', status: s >= 200 && s <= 599 ? s : 403, body: String(d.body ?? ''), headers, ...(meta ? { meta } : {}) };
}

/** Bytes a request target cannot carry (RFC 3986 query: pchar, '/', '?'; '%' kept as the escape it is). */
const NOT_IN_QUERY = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]/gu;

function queryText(s: string): string {
  return s.replace(NOT_IN_QUERY, (c) => encodeURIComponent(c));
}

/**
 * An ok response's query parameter edits applied to `path`, as Envoy's QueryParamsMulti does
 * them: the query is split on '&' and '=' without decoding, a set parameter replaces every
 * value of its name, removals follow, and the query is written back with names in byte order
 * (Envoy keeps them in an ordered map), each value as `name=value` (a bare `flag` becomes
 * `flag=`); with none left the '?' goes too. The path before '?' is untouched. Names and values
 * from the service are taken as written (Envoy expects them URL-encoded), except bytes a request
 * target cannot carry (space, controls, non-ASCII, '#'), which are percent-encoded so the upstream
 * request stays well-formed. Exported for tests.
 */
export function editQuery(path: string, q: QueryEdit): string {
  const at = path.indexOf('?');
  const base = at === -1 ? path : path.slice(0, at);
  const params = new Map<string, string[]>();
  if (at !== -1) {
    let start = at + 1;
    while (start < path.length) {
      let end = path.indexOf('&', start);
      if (end === -1) end = path.length;
      const eq = path.indexOf('=', start);
      const [k, v] = eq !== -1 && eq < end ? [path.slice(start, eq), path.slice(eq + 1, end)] : [path.slice(start, end), ''];
      const l = params.get(k);
      if (l) l.push(v);
      else params.set(k, [v]);
      start = end + 1;
    }
  }
  for (const [k, v] of q.set) params.set(queryText(k), [queryText(v)]);
  for (const k of q.remove) params.delete(queryText(k));
  if (params.size === 0) return base;
  let out = base;
  let sep = '?';
  for (const k of [...params.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (const v of params.get(k)!) {
      out += `${sep}${k}=${v}`;
      sep = '&';
    }
  }
  return out;
}

/**
 * envoy.service.auth.v3.Authorization/Check over @grpc/grpc-js: a channel per host of the
 * cluster (envoy_grpc, a host picked per call) or to the target URI (google_grpc). A channel
 * that failed to connect is dropped, so a service that comes back is used at once rather than
 * after grpc-js's reconnect backoff.
 */
export class GrpcCheck implements CheckTransport {
  private readonly channels = new Map<string, grpc.Client>();

  constructor(
    private readonly svc: GrpcAuthzService,
    private readonly clusters: ClusterManager | null,
  ) {}

  private channel(): { key: string; client: grpc.Client } | string {
    let key: string;
    if (this.svc.target !== null) key = this.svc.target;
    else {
      const host = this.clusters?.get(this.svc.cluster!)?.pickHost() ?? null;
      if (!host) return `no healthy host in cluster ${this.svc.cluster}`;
      key = target(host.address);
    }
    let client = this.channels.get(key);
    if (!client) {
      client = new grpc.Client(key, grpc.credentials.createInsecure(), this.svc.authority ? { 'grpc.default_authority': this.svc.authority } : {});
      this.channels.set(key, client);
    }
    return { key, client };
  }

  start(input: CheckInput, timeoutMs: number, done: (o: CheckOutcome) => void): { cancel(): void } {
    const ch = this.channel();
    if (typeof ch === 'string') {
      done({ kind: 'error', why: ch });
      return { cancel() {} };
    }
    let body: Buffer;
    try {
      body = encodeCheckRequest(input);
    } catch (err) {
      done({ kind: 'error', why: `could not encode the CheckRequest: ${(err as Error).message}` });
      return { cancel() {} };
    }
    const md = new grpc.Metadata();
    for (const [k, v] of this.svc.metadata) md.add(k, v);
    const call = ch.client.makeUnaryRequest<Buffer, Buffer>(CHECK, (b) => b, (b) => b, body, md, { deadline: Date.now() + timeoutMs }, (err, res) => {
      if (err) {
        if (err.code === grpc.status.UNAVAILABLE) this.drop(ch.key, ch.client);
        done({ kind: 'error', why: `${grpc.status[err.code] ?? err.code}: ${err.details}` });
        return;
      }
      let o: CheckOutcome;
      try {
        o = decodeCheckResponse(res!);
      } catch (e) {
        o = { kind: 'error', why: `unreadable CheckResponse: ${(e as Error).message}` };
      }
      done(o);
    });
    return { cancel: () => call.cancel() };
  }

  private drop(key: string, client: grpc.Client): void {
    if (this.channels.get(key) !== client) return;
    this.channels.delete(key);
    client.close();
  }

  close(): void {
    for (const c of this.channels.values()) c.close();
    this.channels.clear();
  }
}

// ------------------------------------------------------------------------------------------ HTTP

/** Headers a check request always carries when the client sent them (Envoy's fixed list). */
const ALWAYS_FORWARDED = new Set(['authorization']);
/** Denied-reply headers always let through when allowed_client_headers is set. */
const ALWAYS_TO_CLIENT = new Set(['www-authenticate', 'location']);
/** A denial body larger than this is not buffered: the check counts as failed. */
const MAX_DENIED_BODY = 1024 * 1024;

/**
 * The raw HTTP authorization service: the request's method and path (after path_prefix),
 * its allowed headers and Host, no body (content-length: 0). 200 allows, a 5xx is an error,
 * any other status denies with that status, the body and the allowed client headers.
 */
export class HttpCheck implements CheckTransport {
  private readonly agent = new http.Agent({ keepAlive: true });

  constructor(
    private readonly svc: HttpAuthzService,
    private readonly clusters: ClusterManager | null,
  ) {}

  start(input: CheckInput, timeoutMs: number, done: (o: CheckOutcome) => void): { cancel(): void } {
    const host: Host | null = this.clusters?.get(this.svc.cluster)?.pickHost() ?? null;
    if (!host) {
      done({ kind: 'error', why: `no healthy host in cluster ${this.svc.cluster}` });
      return { cancel() {} };
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of input.headers) if (!NOT_COPIED.has(k) && k.charCodeAt(0) !== 58) headers[k] = v;
    for (const [k, v] of this.svc.headersToAdd) headers[k] = v;
    headers.host = input.host;
    // with_request_body: the body held for the check goes as the check's own body.
    headers['content-length'] = String(input.body?.length ?? 0);
    const a = host.address;
    let over = false;
    const finish = (o: CheckOutcome) => {
      if (over) return;
      over = true;
      done(o);
    };
    const req = http.request(
      {
        agent: this.agent,
        ...(a.family === 'unix' ? { socketPath: a.address } : { host: a.address, port: a.port }),
        method: input.method,
        path: this.svc.pathPrefix + input.path,
        headers,
        timeout: timeoutMs,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status === 200) {
          res.resume();
          finish(this.allowed(res.headers, res.rawHeaders));
          return;
        }
        if (status >= 500 || status < 200) {
          res.resume();
          finish({ kind: 'error', why: `authorization service answered ${status}` });
          return;
        }
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > MAX_DENIED_BODY) {
            req.destroy();
            finish({ kind: 'error', why: 'denial body too large' });
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          const meta = this.svc.toMetadata && this.metadata(this.svc.toMetadata, res.rawHeaders);
          finish({ kind: 'denied', status, body: Buffer.concat(chunks).toString('utf8'), headers: this.toClient(res.rawHeaders), ...(meta ? { meta } : {}) });
        });
        res.on('error', (e) => finish({ kind: 'error', why: e.message }));
      },
    );
    req.on('timeout', () => {
      req.destroy();
      finish({ kind: 'error', why: 'timeout' });
    });
    req.on('error', (e) => finish({ kind: 'error', why: e.message }));
    req.end(input.body ?? undefined);
    return {
      cancel: () => {
        over = true;
        req.destroy();
      },
    };
  }

  private allowed(h: http.IncomingHttpHeaders, raw: string[]): CheckOutcome {
    const out: HeaderAdd[] = [];
    const { upstream, upstreamAppend } = this.svc;
    if (upstream || upstreamAppend) {
      for (const [name, v] of Object.entries(h)) {
        if (v === undefined || !editable(name)) continue;
        const values = Array.isArray(v) ? v : [v];
        if (upstream && matches(upstream, name)) values.forEach((value, i) => out.push({ name, value, action: i === 0 ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD', keepEmpty: false }));
        else if (upstreamAppend && matches(upstreamAppend, name)) for (const value of values) out.push({ name, value, action: 'APPEND_IF_EXISTS_OR_ADD', keepEmpty: false });
      }
    }
    // allowed_client_headers_on_success: added to the client's response (Envoy appends them), each value as it came.
    const list = this.svc.clientOnSuccess;
    let respHeaders: HeaderAdd[] | null = null;
    if (list) {
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const name = raw[i]!.toLowerCase();
        if (editable(name) && matches(list, name)) (respHeaders ??= []).push({ name, value: raw[i + 1]!, action: 'APPEND_IF_EXISTS_OR_ADD', keepEmpty: false });
      }
    }
    // Envoy's x-envoy-auth-headers-to-remove: names, comma-separated, to take off the upstream request.
    const rm = h['x-envoy-auth-headers-to-remove'];
    const remove = rm === undefined ? [] : (Array.isArray(rm) ? rm.join(',') : rm).split(',').map((n) => n.trim().toLowerCase()).filter((n) => n !== '' && editable(n));
    const meta = this.svc.toMetadata && this.metadata(this.svc.toMetadata, raw);
    return { kind: 'ok', headers: out, remove, ...(respHeaders ? { respHeaders } : {}), ...(meta ? { meta } : {}) };
  }

  /** dynamic_metadata_from_headers: each matching header of the answer, by name (a repeated one: its last value, as in Envoy). */
  private metadata(list: NameList, raw: string[]): DynamicMetadata | undefined {
    const out = new Map<string, string>();
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (matches(list, name)) out.set(name, raw[i + 1]!);
    }
    return out.size ? [...out] : undefined;
  }

  private toClient(raw: string[]): Array<readonly [string, string]> {
    const list = this.svc.client;
    const out: Array<readonly [string, string]> = [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (NOT_COPIED.has(name) || name === 'date' || name === 'server') continue;
      if (list && !ALWAYS_TO_CLIENT.has(name) && !matches(list, name)) continue;
      out.push([name, raw[i + 1]!]);
    }
    return out;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Whether a header goes into a check: allowed (or the service's default set) and not disallowed. */
export function headerAllowed(name: string, http: boolean, allowed: NameList | null, disallowed: NameList | null): boolean {
  if (disallowed && matches(disallowed, name)) return false;
  if (allowed) return matches(allowed, name) || (http && ALWAYS_FORWARDED.has(name));
  // Without a list a gRPC check carries every header; an HTTP one only the fixed set.
  return !http || ALWAYS_FORWARDED.has(name);
}
