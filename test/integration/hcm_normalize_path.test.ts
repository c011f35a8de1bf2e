// normalize_path: true (Istio sets it on every HTTP connection manager): the path is made
// canonical before routing and goes upstream that way, so `/public/../admin` and `/%61dmin` reach
// the /admin route rather than slipping past it; `%00` is a 400. Without it, paths pass as they
// came. HTTP/1.1 by raw bytes and HTTP/2 with node:http2, on both engines.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2cGet, hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** Answers every request with its own name and records the request lines it got. */
async function namedUpstream(name: string) {
  const lines: string[] = [];
  const server = net.createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        lines.push(buf.slice(0, buf.indexOf('\r\n')));
        buf = buf.slice(i + 4);
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${name.length}\r\n\r\n${name}`);
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, lines, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function rawGet(port: number, target: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d) => {
      text += d.toString('latin1');
      const he = text.indexOf('\r\n\r\n');
      const cl = /content-length: (\d+)/i.exec(text);
      if (he >= 0 && cl && text.length >= he + 4 + Number(cl[1])) s.destroy();
    });
    s.on('close', () => resolve(text));
    s.on('error', () => resolve(text));
    s.write(`GET ${target} HTTP/1.1\r\nHost: svc\r\n\r\n`, 'latin1');
  });
}

const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/admin" }
    route: { cluster: admin }
  - match: { prefix: "/" }
    route: { cluster: rest }`;

describe.each(ENGINES)('normalize_path on the %s engine', (engine) => {
  let admin: Awaited<ReturnType<typeof namedUpstream>>;
  let rest: Awaited<ReturnType<typeof namedUpstream>>;
  let strait: StraitProcess;
  let port: number;
  let plainPort: number;

  beforeAll(async () => {
    admin = await namedUpstream('admin');
    rest = await namedUpstream('rest');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('normalized', routes, '          normalize_path: true\n          path_with_escaped_slashes_action: KEEP_UNCHANGED\n          stream_idle_timeout: 0s\n')}
${hcmListener('plain', routes)}
${hcmListener('decode_merge', routes, '          normalize_path: true\n          merge_slashes: true\n          path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD\n')}
${hcmListener('redirect', routes, '          path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT\n')}
${hcmListener('reject', routes, '          path_with_escaped_slashes_action: REJECT_REQUEST\n')}
  clusters:
${staticCluster('admin', [admin.port])}
${staticCluster('rest', [rest.port])}`,
      { engine },
    );
    port = await strait.port('normalized');
    plainPort = await strait.port('plain');
  });

  afterAll(async () => {
    await strait?.stop();
    await admin?.close();
    await rest?.close();
  });

  it.each([
    ['/public/../admin/x', '/admin/x'],
    ['/%61dmin/y', '/admin/y'],
    ['/public/%2e%2e/admin', '/admin'],
    ['/public\\..\\admin/z?q=/../a', '/admin/z?q=/../a'],
  ])('HTTP/1.1 %s is routed and forwarded as %s', async (target, want) => {
    const r = await rawGet(port, target);
    expect(r).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\n\r\nadmin$/);
    expect(admin.lines.at(-1)).toBe(`GET ${want} HTTP/1.1`);
  });

  it('HTTP/2 paths are normalized the same way', async () => {
    const r = await h2cGet(port, '/public/../admin/h2');
    expect([r.status, r.body]).toEqual([200, 'admin']);
    expect(admin.lines.at(-1)).toBe('GET /admin/h2 HTTP/1.1');
    const bad = await h2cGet(port, '/a%00b');
    expect(bad.status).toBe(400);
  });

  it('answers 400 for %00 and forwards nothing', async () => {
    const seen = admin.lines.length + rest.lines.length;
    expect(await rawGet(port, '/admin%00')).toMatch(/^HTTP\/1\.1 400 /);
    expect(admin.lines.length + rest.lines.length).toBe(seen);
  });

  it("decodes escaped slashes and merges slashes as Istio's DECODE_AND_MERGE_SLASHES sets it", async () => {
    const port2 = await strait.port('decode_merge');
    const r = await rawGet(port2, '/public%2F..%2Fadmin//x?q=a//b');
    expect(r.endsWith('admin')).toBe(true);
    expect(admin.lines.at(-1)).toBe('GET /admin/x?q=a//b HTTP/1.1');
    const h2 = await h2cGet(port2, '//admin%5C%2E%2E%2Fadmin///h2');
    expect([h2.status, h2.body]).toEqual([200, 'admin']);
    expect(admin.lines.at(-1)).toBe('GET /admin/h2 HTTP/1.1');
  });

  it('redirects to the unescaped path (307) or refuses it (400), forwarding nothing', async () => {
    const seen = admin.lines.length + rest.lines.length;
    const redirect = await strait.port('redirect');
    expect(await rawGet(redirect, '/admin%2Fx')).toMatch(/^HTTP\/1\.1 307 [\s\S]*\r\nlocation: \/admin\/x\r\n/);
    const h2 = await h2cGet(redirect, '/admin%2fy');
    expect([h2.status, h2.headers.location]).toEqual([307, '/admin/y']);
    expect(await rawGet(await strait.port('reject'), '/admin%2Fx')).toMatch(/^HTTP\/1\.1 400 /);
    expect(admin.lines.length + rest.lines.length).toBe(seen);
    // Without an escaped slash, the same listeners route as usual.
    expect((await rawGet(redirect, '/admin/ok')).endsWith('admin')).toBe(true);
  });

  it('leaves paths as they came without normalize_path', async () => {
    const r = await rawGet(plainPort, '/public/../admin/x');
    expect(r.endsWith('rest')).toBe(true);
    expect(rest.lines.at(-1)).toBe('GET /public/../admin/x HTTP/1.1');
  });
});
