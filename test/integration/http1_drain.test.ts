// Drain (SIGTERM, /drain_listeners, LDS removal) on HTTP/1.1 keep-alive connections, as Envoy's
// drain_close does: the response in flight goes out with `connection: close` and the connection
// ends after it, and an idle keep-alive connection is closed at once, so clients reconnect
// elsewhere instead of being cut off when the drain time runs out.
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../helpers/net.js';
import { ADMIN, ENGINES, httpListener, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

describe.each(ENGINES)('HTTP/1.1 drain on the %s engine', (engine) => {
  let up: http.Server;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    up = http.createServer((req, res) => setTimeout(() => res.end(`done ${req.url}`), req.url === '/slow' ? 300 : 0));
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', () => r()));
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${httpListener('web', 'web')}
  clusters:
${staticCluster('web', [(up.address() as net.AddressInfo).port])}`,
      { engine, args: ['--drain-time-s', '30'] },
    );
    port = await strait.port('web');
  });

  afterAll(async () => {
    await strait?.stop();
    up?.close();
  });

  it('closes idle keep-alive connections at once and the busy one after its response, marked connection: close', async () => {
    const idle = await connect(port);
    const busy = await connect(port);
    const read = (s: net.Socket) => {
      let got = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => (got += d));
      // 'end': Strait's FIN (the helper's sockets are half-open, so 'close' waits for ours).
      return { text: () => got, ended: new Promise<void>((r) => s.on('end', () => r())) };
    };
    const i = read(idle);
    const b = read(busy);
    // One exchange each, so both are keep-alive connections Strait has served.
    idle.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\n');
    busy.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\n');
    for (let k = 0; k < 100 && !(i.text().includes('done /one') && b.text().includes('done /one')); k++) await new Promise((r) => setTimeout(r, 20));
    expect(i.text()).toContain('done /one');
    busy.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100)); // /slow is with the upstream
    expect((await strait.post('/drain_listeners')).status).toBe(200);
    // Both end well before the 30 s drain time.
    await Promise.all([i.ended, b.ended]);
    const slow = b.text().slice(b.text().lastIndexOf('HTTP/1.1 '));
    expect(slow).toMatch(/^HTTP\/1\.1 200/);
    expect(slow.toLowerCase()).toContain('connection: close');
    expect(slow).toContain('done /slow');
  }, 20_000);
});
