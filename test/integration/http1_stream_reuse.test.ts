// One keep-alive connection carries requests of different kinds back to back: forwarded ones
// (with and without a body, HTTP/1.0 and 1.1, with and without a client x-request-id), a direct
// response and a route whose cluster_header names no cluster. A finished exchange's stream serves the
// connection's next request (Http1Stream.reuse), so each answer, each request the upstream
// sees and each access log line must be that request's own: no status, flag, request id, byte
// count, body, response header or keep-alive wording carried over from the one before (the
// stream also refills its last response head rather than making a new one, and the connection's
// next owned parse refills its last request head: a field, method or length left over from the
// request before would reach the upstream here).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const ROUTES = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/direct" }
    direct_response: { status: 418, body: { inline_string: "teapot" } }
  - match: { prefix: "/gone" }
    route: { cluster_header: x-cluster }
  - match: { prefix: "/" }
    route: { cluster: up }`;

const FORMAT = '"%REQ(:PATH)%|%RESPONSE_CODE%|%RESPONSE_FLAGS%|%UPSTREAM_CLUSTER%|%BYTES_RECEIVED%|%BYTES_SENT%\\n"';

/**
 * Answers `<path> <request body> <content-length or -> <x-request-id>` for every request,
 * keep-alive, with `x-many: n` extra `x-extra-<i>: <path>` response headers when asked.
 */
async function echoUpstream(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const i = buf.indexOf('\r\n\r\n');
        if (i === -1) return;
        const head = buf.subarray(0, i).toString('latin1');
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < i + 4 + len) return;
        const body = buf.subarray(i + 4, i + 4 + len).toString('latin1');
        buf = buf.subarray(i + 4 + len);
        const rid = /\r\nx-request-id: *([^\r]*)/i.exec(head)?.[1] ?? '-';
        const reqPath = head.split(' ')[1];
        const answer = `${reqPath} ${body || '-'} ${/\r\ncontent-length:/i.test(head) ? len : '-'} ${rid}`;
        let extra = '';
        for (let k = 0; k < Number(/\r\nx-many: *(\d+)/i.exec(head)?.[1] ?? 0); k++) extra += `x-extra-${k}: ${reqPath}\r\n`;
        s.write(`HTTP/1.1 200 OK\r\n${extra}content-length: ${answer.length}\r\n\r\n${answer}`);
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Sends `req` on `s` and reads one Content-Length response: its head (lower-cased names) and body. */
function exchange(s: net.Socket, req: string): Promise<{ head: string; body: string }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const i = buf.indexOf('\r\n\r\n');
      if (i === -1) return;
      const head = buf.slice(0, i);
      const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < i + 4 + len) return;
      s.off('data', onData);
      s.off('end', onEnd);
      resolve({ head: head.toLowerCase(), body: buf.slice(i + 4, i + 4 + len) });
    };
    const onEnd = () => reject(new Error(`connection ended before a whole response: ${JSON.stringify(buf)}`));
    s.on('data', onData);
    s.once('end', onEnd);
    s.write(req);
  });
}

describe.each(ENGINES)('HTTP/1.1 requests of different kinds back to back on one connection on the %s engine', (engine) => {
  let strait: StraitProcess;
  let up: Awaited<ReturnType<typeof echoUpstream>>;
  let port: number;
  let logFile: string;

  beforeAll(async () => {
    up = await echoUpstream();
    const extra = `          always_set_request_id_in_response: true
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{{TMP}}/access.log"
              log_format: { text_format: ${FORMAT} }
          http_protocol_options: { accept_http_10: true }
`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('web', ROUTES, extra)}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    logFile = path.join(strait.dir, 'access.log');
    port = await strait.port('web');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('answers each request as its own, and logs each as its own', async () => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    await new Promise<void>((r) => s.once('connect', () => r()));
    const tag = `${engine}-${Date.now()}`;
    const rid = /\r\nx-request-id: *([^\r]*)/;

    const a = await exchange(s, `POST /${tag}/a HTTP/1.1\r\nhost: h\r\nx-request-id: given-a\r\nx-many: 3\r\ncontent-length: 5\r\n\r\nhello`);
    expect(a.head).toMatch(/^http\/1\.1 200 ok\r\n/);
    expect(a.head.match(/\r\nx-extra-\d: [^\r]*/g)).toEqual([0, 1, 2].map((k) => `\r\nx-extra-${k}: /${tag}/a`));
    expect(a.body).toBe(`/${tag}/a hello 5 given-a`);
    expect(rid.exec(a.head)?.[1]).toBe('given-a');

    // No body, no client id: the upstream sees neither the body nor the id of the request before.
    // Fewer response headers than the response before: none of its lines come back.
    const b = await exchange(s, `GET /${tag}/b HTTP/1.1\r\nhost: h\r\n\r\n`);
    expect(b.head).not.toContain('x-extra');
    const [bPath, bBody, bLen, bRid] = b.body.split(' ');
    expect([bPath, bBody, bLen]).toEqual([`/${tag}/b`, '-', '-']);
    expect(bRid).toMatch(/^[0-9a-f-]{36}$/);
    expect(rid.exec(b.head)?.[1]).toBe(bRid);

    const c = await exchange(s, `GET /gone/${tag}/c HTTP/1.1\r\nhost: h\r\nx-cluster: nope\r\n\r\n`);
    expect(c.head).toMatch(/^http\/1\.1 503 /);

    const d = await exchange(s, `GET /direct/${tag}/d HTTP/1.1\r\nhost: h\r\n\r\n`);
    expect(d.head).toMatch(/^http\/1\.1 418 /);
    expect(d.body).toBe('teapot');

    // HTTP/1.0 keep-alive is answered with `connection: keep-alive`; the 1.1 request after it is not.
    const e = await exchange(s, `GET /${tag}/e HTTP/1.0\r\nhost: h\r\nconnection: keep-alive\r\nx-many: 2\r\n\r\n`);
    expect(e.head).toMatch(/^http\/1\.1 200 ok\r\n/);
    expect(e.head.match(/\r\nx-extra-\d: [^\r]*/g)).toEqual([0, 1].map((k) => `\r\nx-extra-${k}: /${tag}/e`));
    expect(e.head).toContain('\r\nconnection: keep-alive');
    const f = await exchange(s, `GET /${tag}/f HTTP/1.1\r\nhost: h\r\n\r\n`);
    expect(f.head).toMatch(/^http\/1\.1 200 ok\r\n/);
    expect(f.head).not.toContain('connection:');
    expect(f.head).not.toContain('x-extra');
    const [fPath, fBody, , fRid] = f.body.split(' ');
    expect([fPath, fBody]).toEqual([`/${tag}/f`, '-']);
    expect(fRid).not.toBe(bRid);
    s.destroy();

    const line = async (p: string): Promise<string[]> => {
      for (let i = 0; i < 400; i++) {
        const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
        const hit = text.split('\n').find((l) => l.startsWith(`${p}|`));
        if (hit) return hit.split('|');
        await sleep(25);
      }
      throw new Error(`no access log line for ${p}`);
    };
    expect(await line(`/${tag}/a`)).toEqual([`/${tag}/a`, '200', '-', 'up', '5', String(`/${tag}/a hello 5 given-a`.length)]);
    expect(await line(`/${tag}/b`)).toEqual([`/${tag}/b`, '200', '-', 'up', '0', String(b.body.length)]);
    expect((await line(`/gone/${tag}/c`)).slice(0, 5)).toEqual([`/gone/${tag}/c`, '503', 'NC', '-', '0']);
    expect(await line(`/direct/${tag}/d`)).toEqual([`/direct/${tag}/d`, '418', '-', '-', '0', '6']);
    expect(await line(`/${tag}/e`)).toEqual([`/${tag}/e`, '200', '-', 'up', '0', String(e.body.length)]);
    expect(await line(`/${tag}/f`)).toEqual([`/${tag}/f`, '200', '-', 'up', '0', String(f.body.length)]);
  }, 20_000);
});
