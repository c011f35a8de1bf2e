import http from 'node:http';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { deadPort } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

// A route's response_headers_to_add on the replies Strait makes itself (direct responses,
// redirects, the router's own errors), over HTTP/1.1 and h2c alike, in Envoy's order: the reply's
// own fields (location, x-envoy-overloaded), then the route's edits, then a default content-type
// only where none is left — so an overwrite replaces rather than duplicates, and a route's
// content-type is the only one.

const ROUTES = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { path: "/overwrite" }
    direct_response: { status: 418, body: { inline_string: teapot } }
    response_headers_to_add:
    - { header: { key: content-type, value: application/json }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
    - { header: { key: x-route, value: r } }
  - match: { path: "/append-false" }
    direct_response: { status: 418, body: { inline_string: teapot } }
    response_headers_to_add:
    - { header: { key: content-type, value: application/json }, append: false }
  - match: { path: "/append" }
    direct_response: { status: 418, body: { inline_string: teapot } }
    response_headers_to_add:
    - { header: { key: content-type, value: application/json }, append_action: APPEND_IF_EXISTS_OR_ADD }
  - match: { path: "/empty" }
    direct_response: { status: 204 }
    response_headers_to_add:
    - { header: { key: content-type, value: application/json }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
  - match: { path: "/plain" }
    direct_response: { status: 418, body: { inline_string: teapot } }
    response_headers_to_add:
    - { header: { key: x-route, value: r } }
  - match: { prefix: "/moved" }
    redirect: { path_redirect: "/there" }
    response_headers_to_add:
    - { header: { key: location, value: "http://elsewhere/" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
  - match: { prefix: "/dead" }
    route: { cluster: dead }
    response_headers_to_add:
    - { header: { key: content-type, value: application/json }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
    - { header: { key: x-route, value: r } }
    response_headers_to_remove: [x-drop-nothing]`;

type Reply = { status: number; fields: Array<[string, string]>; body: string };

function h1(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const rq = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        const fields: Array<[string, string]> = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) fields.push([res.rawHeaders[i]!.toLowerCase(), res.rawHeaders[i + 1]!]);
        resolve({ status: res.statusCode!, fields, body });
      });
    });
    rq.on('error', reject);
  });
}

function h2(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', reject);
    const rq = c.request({ ':path': path, ...headers });
    let status = 0;
    const fields: Array<[string, string]> = [];
    rq.on('response', (_h, _flags, raw: string[]) => {
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i] === ':status') status = Number(raw[i + 1]);
        else fields.push([raw[i]!, raw[i + 1]!]);
      }
    });
    let body = '';
    rq.on('data', (d: Buffer) => (body += d.toString()));
    rq.on('end', () => {
      c.close();
      resolve({ status, fields, body });
    });
    rq.on('error', reject);
    rq.end();
  });
}

const all = (r: Reply, name: string) => r.fields.filter(([k]) => k === name).map(([, v]) => v);

describe.each(ENGINES)("a route's response_headers_to_add on local replies, %s engine", (engine) => {
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    strait = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${hcmListener('lr', ROUTES)}\n  clusters:\n${staticCluster('dead', [await deadPort()])}`, { engine });
    port = await strait.port('lr');
  }, 30_000);

  afterAll(async () => {
    await strait?.stop();
  });

  for (const [proto, send] of [
    ['HTTP/1.1', h1],
    ['HTTP/2', h2],
  ] as const) {
    it(`overwrites the direct response's content-type rather than adding a second one (${proto})`, async () => {
      for (const p of ['/overwrite', '/append-false']) {
        const r = await send(port, p);
        expect([r.status, r.body, all(r, 'content-type')]).toEqual([418, 'teapot', ['application/json']]);
      }
      expect(all(await send(port, '/overwrite'), 'x-route')).toEqual(['r']);
    });

    it(`gives a direct response the route's content-type alone, the default only where there is none (${proto})`, async () => {
      expect(all(await send(port, '/append'), 'content-type')).toEqual(['application/json']);
      expect(all(await send(port, '/plain'), 'content-type')).toEqual(['text/plain']);
      // Envoy's body-less local reply carries no content-type at all.
      const empty = await send(port, '/empty');
      expect([empty.status, all(empty, 'content-type')]).toEqual([204, []]);
    });

    it(`overwrites a redirect's location (${proto})`, async () => {
      const r = await send(port, '/moved');
      expect([r.status, all(r, 'location')]).toEqual([301, ['http://elsewhere/']]);
    });

    it(`puts the route's headers on the router's own error reply (${proto})`, async () => {
      const r = await send(port, '/dead');
      expect(r.status).toBe(503);
      expect(all(r, 'content-type')).toEqual(['application/json']);
      expect(all(r, 'x-route')).toEqual(['r']);
    });
  }

  it("keeps a gRPC error reply a gRPC one under the route's content-type (HTTP/2)", async () => {
    const r = await h2(port, '/dead', { 'content-type': 'application/grpc' });
    expect([r.status, all(r, 'content-type'), all(r, 'grpc-status'), all(r, 'x-route')]).toEqual([200, ['application/grpc'], ['14'], ['r']]);
  });
});
