// An HTTP/1.1 stream a closed connection leaves behind serves the first request of the next
// connection (streamPool in http_connection_manager/http1_session.ts), whichever listener
// accepted it. Two listeners with different server names and upstreams take turns: every
// answer must carry its own listener's server header and upstream, on both engines, for
// connections closed after one request (`connection: close`) and keep-alive connections the
// client closes.
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** Answers every request with its tag, sized. */
async function tagUpstream(tag: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => res.end(tag));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Complete responses at the start of `text` (each sized by content-length). */
function responses(text: string): string[] {
  const out: string[] = [];
  let at = 0;
  for (;;) {
    const head = text.indexOf('\r\n\r\n', at);
    if (head < 0) return out;
    const m = /content-length: (\d+)\r\n/i.exec(text.slice(at, head + 2));
    const end = head + 4 + (m ? Number(m[1]) : 0);
    if (text.length < end) return out;
    out.push(text.slice(at, end));
    at = end;
  }
}

/** The responses on one connection: `requests` GETs, the last with `connection: close` when `close`, else the client closes after them. */
function exchange(port: number, requests: number, close: boolean): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (!close && responses(got).length === requests) s.end();
    });
    s.on('close', () => resolve(responses(got)));
    let req = '';
    for (let i = 0; i < requests; i++) req += `GET /r${i} HTTP/1.1\r\nhost: svc\r\n${close && i === requests - 1 ? 'connection: close\r\n' : ''}\r\n`;
    s.write(req);
  });
}

describe.each(ENGINES)('HTTP/1.1 streams reused across connections (%s engine)', (engine) => {
  let strait: StraitProcess;
  const ports: Record<string, number> = {};
  const ups: Awaited<ReturnType<typeof tagUpstream>>[] = [];

  beforeAll(async () => {
    ups.push(await tagUpstream('up-a'), await tagUpstream('up-b'));
    strait = await startStrait(
      `${ADMIN}
static_resources:
  listeners:
${hcmListener('la', simpleRoutes('ca'), '          server_name: la\n')}${hcmListener('lb', simpleRoutes('cb'), '          server_name: lb\n')}
  clusters:
${staticCluster('ca', [ups[0]!.port])}${staticCluster('cb', [ups[1]!.port])}`,
      { engine },
    );
    ports.la = await strait.port('la');
    ports.lb = await strait.port('lb');
  });
  afterAll(async () => {
    await strait?.stop();
    for (const u of ups) await u.close();
  });

  it('answers each connection with its own listener\'s server name and upstream, taking turns', async () => {
    for (let i = 0; i < 20; i++) {
      const l = i % 2 === 0 ? 'la' : 'lb';
      const keepAlive = i % 4 >= 2;
      const answers = await exchange(ports[l]!, keepAlive ? 2 : 1, !keepAlive);
      expect(answers.length, `connection ${i} (${l})`).toBe(keepAlive ? 2 : 1);
      for (const a of answers) {
        expect(a.startsWith('HTTP/1.1 200 ')).toBe(true);
        expect(a).toContain(`server: ${l}\r\n`);
        expect(a.endsWith(l === 'la' ? 'up-a' : 'up-b')).toBe(true);
      }
    }
  });
});
