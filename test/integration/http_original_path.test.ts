import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2cRequest, hcmListener, httpUpstream, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

// Envoy's router, on a route with prefix_rewrite or regex_rewrite, sends the path it had as
// x-envoy-original-path and rewrites :path in place, so the access log's %REQ(:PATH)% is the
// rewritten path and %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% (its default format) the client's.

const ROUTES = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/v1/" }
    route: { cluster: a, prefix_rewrite: "/internal/" }
  - match: { safe_regex: { regex: "^/re/([0-9]+)$" } }
    route: { cluster: a, regex_rewrite: { pattern: { regex: "^/re/([0-9]+)$" }, substitution: "/item/\\\\1" } }
  - match: { prefix: "/" }
    route: { cluster: a }`;

const LOG = `          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{{TMP}}/access.log"
              log_format: { text_format: "%REQ(X-TAG)% %REQ(:PATH)% %REQ(X-ENVOY-ORIGINAL-PATH)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%\\n" }
`;

describe.each(ENGINES.slice(0, 1))('x-envoy-original-path on rewriting routes (%s engine)', (engine) => {
  let a: TestUpstream;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    a = await httpUpstream('a');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('mesh', ROUTES, LOG)}
  clusters:
${staticCluster('a', [a.port])}`,
      { engine },
    );
    port = await strait.port('mesh');
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
  });

  async function logLine(tag: string): Promise<string[]> {
    const file = path.join(strait.dir, 'access.log');
    for (let i = 0; i < 200; i++) {
      const line = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${tag} `)) : undefined;
      if (line) return line.split(' ');
      await sleep(20);
    }
    throw new Error(`no access log line for ${tag}`);
  }

  async function h1(p: string, tag: string, headers: Record<string, string> = {}): Promise<Echo> {
    const r = await request(`http://127.0.0.1:${port}${p}`, { headers: { 'x-tag': tag, ...headers } });
    return (await r.body.json()) as Echo;
  }

  async function h2(p: string, tag: string, headers: Record<string, string> = {}): Promise<Echo> {
    return JSON.parse((await h2cRequest(port, { path: p, headers: { 'x-tag': tag, ...headers } })).body) as Echo;
  }

  for (const [proto, send] of [
    ['HTTP/1.1', h1],
    ['h2c', h2],
  ] as const) {
    it(`${proto}: a prefix rewrite sends the original path upstream, and logs both`, async () => {
      const tag = `${proto}-prefix`;
      // A client's own x-envoy-original-path does not survive a rewrite.
      const echo = await send('/v1/users?id=7', tag, { 'x-envoy-original-path': '/forged' });
      expect(echo.url).toBe('/internal/users?id=7');
      expect(echo.headers['x-envoy-original-path']).toBe('/v1/users?id=7');
      expect(await logLine(tag)).toEqual([tag, '/internal/users?id=7', '/v1/users?id=7', '/v1/users?id=7']);
    });

    it(`${proto}: a regex rewrite too`, async () => {
      const tag = `${proto}-regex`;
      const echo = await send('/re/42', tag);
      expect(echo.url).toBe('/item/42');
      expect(echo.headers['x-envoy-original-path']).toBe('/re/42');
      expect(await logLine(tag)).toEqual([tag, '/item/42', '/re/42', '/re/42']);
    });

    it(`${proto}: a route without a rewrite adds nothing`, async () => {
      const tag = `${proto}-plain`;
      const echo = await send('/plain', tag);
      expect(echo.url).toBe('/plain');
      expect(echo.headers['x-envoy-original-path']).toBeUndefined();
      expect(await logLine(tag)).toEqual([tag, '/plain', '-', '/plain']);
    });
  }
});
