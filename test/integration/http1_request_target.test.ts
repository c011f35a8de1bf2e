// Request-target forms and chunk framing on the HTTP/1.1 downstream, by raw bytes on a socket:
// an absolute-form target (what a client configured with a proxy sends) is routed by its
// authority and forwarded in origin-form with that authority as Host (RFC 9112 §3.2.2; Envoy's
// allow_absolute_url, on by default), and a chunked body whose framing lines end in a bare LF is
// refused rather than forwarded as received.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** An upstream that records every byte per connection and answers each head with 200 + its name. */
async function recordingUpstream(name: string) {
  const conns: { bytes: string; closed: boolean }[] = [];
  const server = net.createServer((s) => {
    const rec = { bytes: '', closed: false };
    conns.push(rec);
    let buf = '';
    s.on('data', (d) => {
      rec.bytes += d.toString('latin1');
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        buf = buf.slice(i + 4);
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${name.length}\r\n\r\n${name}`);
      }
    });
    s.on('close', () => (rec.closed = true));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    conns,
    /** Every request head received so far, in order. */
    heads: () => conns.flatMap((c) => c.bytes.split('\r\n\r\n').filter((h) => /^[A-Z]+ /.test(h))),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Sends `raw` on a new connection; resolves with what came back once the proxy closed it or `ms` passed. */
function exchange(port: number, raw: string, ms = 1500): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, ms);
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('close', () => {
      clearTimeout(t);
      resolve({ text, closed: true });
    });
    s.on('error', () => {});
    s.write(raw, 'latin1');
  });
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const routes = (extraHcm = '') => `name: local
virtual_hosts:
- name: svc
  domains: ["svc.example:8080", "svc.example"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: svc }
- name: rest
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: rest }${extraHcm}`;

describe.each(ENGINES)('HTTP/1.1 request targets and chunk framing on the %s engine', (engine) => {
  let svc: Awaited<ReturnType<typeof recordingUpstream>>;
  let rest: Awaited<ReturnType<typeof recordingUpstream>>;
  let strait: StraitProcess;
  let port: number;
  let strictPort: number;

  beforeAll(async () => {
    svc = await recordingUpstream('svc');
    rest = await recordingUpstream('rest');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ingress', routes())}
${hcmListener('strict', routes(), '          http_protocol_options: { allow_absolute_url: false }\n')}
  clusters:
${staticCluster('svc', [svc.port])}
${staticCluster('rest', [rest.port])}`,
      { engine },
    );
    port = await strait.port('ingress');
    strictPort = await strait.port('strict');
  });

  afterAll(async () => {
    await strait?.stop();
    await svc?.close();
    await rest?.close();
  });

  it('routes an absolute-form request by its authority and forwards it in origin-form with that authority as Host', async () => {
    const r = await exchange(port, 'GET http://svc.example:8080/a/b?x=1 HTTP/1.1\r\nHost: elsewhere\r\nX-Kept: k\r\n\r\n', 500);
    expect(r.text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nsvc$/);
    const head = svc.heads().at(-1)!;
    expect(head.split('\r\n')[0]).toBe('GET /a/b?x=1 HTTP/1.1');
    const hosts = head.split('\r\n').filter((l) => /^host:/i.test(l));
    expect(hosts).toEqual(['host: svc.example:8080']); // the received Host is not forwarded
    expect(head).toContain('\r\nX-Kept: k');
    // Scheme case-insensitive, no path: origin-form "/" (and "/?q" for a bare query).
    const before = svc.heads().length;
    await exchange(port, 'GET HTTP://svc.example HTTP/1.1\r\nHost: elsewhere\r\n\r\n', 500);
    await exchange(port, 'GET http://svc.example?q=2 HTTP/1.1\r\nHost: elsewhere\r\n\r\n', 500);
    await waitFor(() => svc.heads().length === before + 2);
    expect(svc.heads().slice(-2).map((h) => h.split('\r\n')[0])).toEqual(['GET / HTTP/1.1', 'GET /?q=2 HTTP/1.1']);
  });

  it('routes an origin-form request by its Host as before', async () => {
    const r = await exchange(port, 'GET /p HTTP/1.1\r\nHost: svc.example\r\n\r\n', 500);
    expect(r.text.endsWith('svc')).toBe(true);
    const r2 = await exchange(port, 'GET /p HTTP/1.1\r\nHost: other\r\n\r\n', 500);
    expect(r2.text.endsWith('rest')).toBe(true);
  });

  it.each([
    ['userinfo in the authority', 'GET http://user:pw@svc.example/ HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['an empty authority', 'GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['another scheme', 'GET ftp://svc.example/x HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['a fragment', 'GET http://svc.example#f HTTP/1.1\r\nHost: a\r\n\r\n'],
  ])('answers 400 and closes for an absolute-form target with %s, forwarding nothing', async (_n, raw) => {
    const seen = svc.heads().length + rest.heads().length;
    const r = await exchange(port, raw);
    expect(r.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(r.closed).toBe(true);
    expect(svc.heads().length + rest.heads().length).toBe(seen);
  });

  it.each([
    ['a fragment in an origin-form target', 'GET /a#f HTTP/1.1\r\nHost: other\r\n\r\n'],
    ['a space in Host', 'GET /a HTTP/1.1\r\nHost: svc example\r\n\r\n'],
    ['a slash in Host', 'GET /a HTTP/1.1\r\nHost: svc.example/x\r\n\r\n'],
  ])('answers 400 and closes for %s, forwarding nothing', async (_n, raw) => {
    const seen = svc.heads().length + rest.heads().length;
    const r = await exchange(port, raw);
    expect(r.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(r.closed).toBe(true);
    expect(svc.heads().length + rest.heads().length).toBe(seen);
  });

  it('refuses absolute-form with 400 where allow_absolute_url is false', async () => {
    const seen = svc.heads().length;
    const r = await exchange(strictPort, 'GET http://svc.example/a HTTP/1.1\r\nHost: svc.example\r\n\r\n');
    expect(r.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(r.closed).toBe(true);
    expect(svc.heads().length).toBe(seen);
    // The same listener still serves origin-form.
    expect((await exchange(strictPort, 'GET /a HTTP/1.1\r\nHost: svc.example\r\n\r\n', 500)).text.endsWith('svc')).toBe(true);
  });

  it.each([
    ['with a bare LF after the chunk size', '3\nabc\r\n0\r\n\r\n', '3\n'],
    ['with a bare LF after a chunk extension', '3;a=b\nabc\r\n0\r\n\r\n', 'b\nabc'],
    ['with a bare LF after the chunk data', '3\r\nabc\n0\r\n\r\n', 'abc\n'],
    ['with a bare LF ending the body', '3\r\nabc\r\n0\r\n\n', '0\r\n\n'],
    // Sizes and trailers another parser could read otherwise ("0x3" is 3 to strtol).
    ['where a 0x prefix precedes the size', '0x3\r\nabc\r\n0\r\n\r\n', '0x3'],
    ['where whitespace ends the size line', '3 \r\nabc\r\n0\r\n\r\n', '3 \r\n'],
    ['where a trailer has no colon', '3\r\nabc\r\n0\r\nX-T\r\n\r\n', 'X-T\r\n'],
    ['where a trailer is folded', '3\r\nabc\r\n0\r\nX-T: 1\r\n 2\r\n\r\n', ' 2\r\n'],
  ])('answers 400 to a chunked body %s and never sends its bytes upstream', async (_n, body, bad) => {
    const before = rest.conns.length;
    const r = await exchange(port, `POST /chunks HTTP/1.1\r\nHost: other\r\nTransfer-Encoding: chunked\r\n\r\n${body}`);
    expect(r.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(r.closed).toBe(true);
    // The head may have left before the body's error; the connection it went on is then closed,
    // never reused, and the bad framing bytes never reach the upstream.
    for (const c of rest.conns.slice(before)) {
      if (!c.bytes.includes('POST /chunks')) continue;
      await waitFor(() => c.closed);
      expect(c.bytes).not.toContain(bad);
    }
    // A well-framed body on a new connection still goes through.
    const ok = await exchange(port, 'POST /chunks HTTP/1.1\r\nHost: other\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 500);
    expect(ok.text.endsWith('rest')).toBe(true);
  });
});
