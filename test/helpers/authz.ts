import fs from 'node:fs';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { REPO } from './strait.js';

const DEPS = path.join(REPO, 'node_modules/@grpc/grpc-js-xds/deps');
const ROOTS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(DEPS, d)).concat(path.join(REPO, 'node_modules/protobufjs'));

type Obj = Record<string, any>;

/** envoy.service.auth.v3 CheckRequest / CheckResponse, loaded here with protobufjs on its own (not through Strait's registry). */
function loadAuthTypes(): { req: protobuf.Type; res: protobuf.Type } {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const r of ROOTS) {
      const p = path.join(r, target);
      if (fs.existsSync(p)) return p;
    }
    return target;
  };
  root.loadSync('envoy/service/auth/v3/external_auth.proto', { keepCase: true });
  return { req: root.lookupType('envoy.service.auth.v3.CheckRequest'), res: root.lookupType('envoy.service.auth.v3.CheckResponse') };
}

/**
 * Plain JSON as a google.protobuf.Struct message object (protobufjs has no JSON mapping for it;
 * its own google/protobuf types, used here, have camelCase fields whatever keepCase says).
 */
function struct(o: Record<string, unknown>): Obj {
  const value = (v: unknown): Obj => {
    if (typeof v === 'string') return { stringValue: v };
    if (typeof v === 'number') return { numberValue: v };
    if (typeof v === 'boolean') return { boolValue: v };
    if (Array.isArray(v)) return { listValue: { values: v.map(value) } };
    if (v && typeof v === 'object') return { structValue: struct(v as Record<string, unknown>) };
    return { nullValue: 0 };
  };
  return { fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, value(v)])) };
}

export interface AuthzServer {
  readonly port: number;
  /** Every CheckRequest received, decoded (snake_case fields). */
  readonly checks: Obj[];
  close(): Promise<void>;
}

/**
 * A gRPC envoy.service.auth.v3.Authorization server deciding by the checked request's
 * `x-authz` header: `allow` → OK with `x-authz-user: alice` set and `x-remove-me` removed;
 * `deny` → 401 `go away` with `x-denied-by: authz`; `slow` → OK after 1 s; anything else →
 * PERMISSION_DENIED without a denied_response; `respond` → OK with response_headers_to_add
 * (`x-authz-said: ok`, `x-upstream: authz` overwriting the upstream's, `x-authz-append: yes` appended);
 * `query` → OK setting query parameters `a=new` and `sp=a b` and removing `drop`; `meta` → OK with
 * dynamic_metadata `{user: alice, level: 3, tags: {team: blue}}`; `meta-ok` → OK with the outer
 * dynamic_metadata `{from: outer}` and the deprecated ok_response one `{from: ok}`; `meta-deny` →
 * 403 with dynamic_metadata `{reason: nope}`.
 */
export async function authzServer(): Promise<AuthzServer> {
  const t = loadAuthTypes();
  const checks: Obj[] = [];
  const server = new grpc.Server();
  const enc = (o: Obj) => Buffer.from(t.res.encode(t.res.fromObject(o)).finish());
  server.addService(
    {
      Check: {
        path: '/envoy.service.auth.v3.Authorization/Check',
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => t.req.toObject(t.req.decode(b), { longs: Number, defaults: false }),
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    {
      Check: (call: grpc.ServerUnaryCall<Obj, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const rq = call.request;
        checks.push({ ...rq, metadata: call.metadata.getMap() });
        const h = (rq.attributes?.request?.http?.headers ?? {}) as Record<string, string>;
        const mode = h['x-authz'];
        if (mode === 'allow') cb(null, enc({ status: { code: 0 }, ok_response: { headers: [{ header: { key: 'x-authz-user', value: 'alice' } }], headers_to_remove: ['x-remove-me'] } }));
        else if (mode === 'deny') cb(null, enc({ status: { code: 7 }, denied_response: { status: { code: 401 }, headers: [{ header: { key: 'x-denied-by', value: 'authz' } }], body: 'go away' } }));
        else if (mode === 'respond')
          cb(
            null,
            enc({
              status: { code: 0 },
              ok_response: {
                response_headers_to_add: [{ header: { key: 'x-authz-said', value: 'ok' } }, { header: { key: 'x-upstream', value: 'authz' } }, { header: { key: 'x-authz-append', value: 'yes' }, append: { value: true } }],
              },
            }),
          );
        else if (mode === 'query') cb(null, enc({ status: { code: 0 }, ok_response: { query_parameters_to_set: [{ key: 'a', value: 'new' }, { key: 'sp', value: 'a b' }], query_parameters_to_remove: ['drop'] } }));
        else if (mode === 'meta') cb(null, enc({ status: { code: 0 }, dynamic_metadata: struct({ user: 'alice', level: 3, tags: { team: 'blue' } }) }));
        else if (mode === 'meta-ok') cb(null, enc({ status: { code: 0 }, dynamic_metadata: struct({ from: 'outer' }), ok_response: { dynamic_metadata: struct({ from: 'ok' }) } }));
        else if (mode === 'meta-deny') cb(null, enc({ status: { code: 7 }, dynamic_metadata: struct({ reason: 'nope' }) }));
        else if (mode === 'slow') setTimeout(() => cb(null, enc({ status: { code: 0 } })), 1000);
        else cb(null, enc({ status: { code: 7 } }));
      },
    },
  );
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return {
    port,
    checks,
    close: () => new Promise<void>((r) => server.tryShutdown(() => r())),
  };
}
