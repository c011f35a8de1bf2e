import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { deadPort } from '../helpers/net.js';
import { hcmListener, httpUpstream, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** Waits for a line of `file` that satisfies `pred` (the sink writes asynchronously by design). */
async function waitLine(file: string, pred: (line: string) => boolean): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    const hit = text.split('\n').find((l) => l && pred(l));
    if (hit) return hit;
    await sleep(25);
  }
  throw new Error(`${file}: no such line`);
}

const FORMAT = '"%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%|%RESPONSE_CODE%|%RESPONSE_FLAGS%|%UPSTREAM_HOST%|%UPSTREAM_CLUSTER%|%REQ(X-TEST-TAG)%|%RESP(X-UPSTREAM)%|%BYTES_RECEIVED%|%DURATION%\\n"';

describe.each(ENGINES.slice(0, 1))('http_connection_manager access_log on the %s engine', (engine) => {
  let a: TestUpstream;
  let strait: StraitProcess;
  let port: number;
  let logFile: string;

  beforeAll(async () => {
    a = await httpUpstream('a');
    const dead = await deadPort();
    const rc = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/ok" }
    route: { cluster: a }
  - match: { prefix: "/dead" }
    route: { cluster: dead }`;
    const extra = `          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{{TMP}}/access.log"
              log_format: { text_format: ${FORMAT} }
`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('al', rc, extra)}
  clusters:
${staticCluster('a', [a.port])}
${staticCluster('dead', [dead])}`,
      { engine },
    );
    logFile = path.join(strait.dir, 'access.log');
    port = await strait.port('al');
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
  });

  it('logs a proxied HTTP/1.1 request with its request and response headers, upstream and body size', async () => {
    const r = await request(`http://127.0.0.1:${port}/ok/1`, { method: 'POST', headers: { 'x-test-tag': 'h1-ok' }, body: 'hello' });
    expect(r.statusCode).toBe(200);
    await r.body.text();
    const line = await waitLine(logFile, (l) => l.includes('|h1-ok|'));
    const f = line.split('|');
    expect(f.slice(0, 8)).toEqual(['POST /ok/1 HTTP/1.1', '200', '-', `127.0.0.1:${a.port}`, 'a', 'h1-ok', 'a', '5']);
    expect(Number(f[8])).toBeGreaterThanOrEqual(0);
  });

  it('logs local replies with Envoy response flags: NR for no route, UF for a connect failure', async () => {
    const nr = await request(`http://127.0.0.1:${port}/nowhere`, { headers: { 'x-test-tag': 'h1-nr' } });
    expect(nr.statusCode).toBe(404);
    await nr.body.text();
    const uf = await request(`http://127.0.0.1:${port}/dead`, { headers: { 'x-test-tag': 'h1-uf' } });
    expect(uf.statusCode).toBe(503);
    await uf.body.text();
    expect((await waitLine(logFile, (l) => l.includes('|h1-nr|'))).split('|').slice(0, 5)).toEqual(['GET /nowhere HTTP/1.1', '404', 'NR', '-', '-']);
    expect((await waitLine(logFile, (l) => l.includes('|h1-uf|'))).split('|').slice(0, 3)).toEqual(['GET /dead HTTP/1.1', '503', 'UF']);
  });

  it('logs HTTP/2 requests with protocol HTTP/2', async () => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = s.request({ ':method': 'GET', ':path': '/ok/h2', 'x-test-tag': 'h2-ok' });
        let st = 0;
        req.on('response', (h) => (st = Number(h[':status'])));
        req.on('data', () => {});
        req.on('end', () => resolve(st));
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(200);
    } finally {
      s.close();
    }
    const f = (await waitLine(logFile, (l) => l.includes('|h2-ok|'))).split('|');
    expect(f.slice(0, 7)).toEqual(['GET /ok/h2 HTTP/2', '200', '-', `127.0.0.1:${a.port}`, 'a', 'h2-ok', 'a']);
  });
});
