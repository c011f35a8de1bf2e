// A client that sends calls but does not read the answers must not make the proxy buffer every
// answer: the proxy stops reading that client, the provider stops getting its calls, and
// nothing is lost once the client reads again.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleCodec, exampleFrame, ExampleType } from '../../src/protocols/example/codec.js';
import { H } from '../../src/protocols/types.js';
import { connect } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess, rpcProxyListener } from '../helpers/strait.js';

const CALLS = 3000;
const ANSWER = Buffer.alloc(64 * 1024, 0x61); // 3000 answers = ~190 MiB if all were buffered
// Calls of 4 KiB: the proxy reads them in chunks, so pausing the client takes effect.

describe.each(ENGINES)('rpc_proxy memory under a client that stops reading, %s engine', (engine) => {
  let server: net.Server;
  let received = 0;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    server = net.createServer((s) => {
      s.on('error', () => {});
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const h = new Int32Array(H.SIZE);
        for (;;) {
          exampleCodec.decodeHeader(buf, 0, buf.length, 1 << 20, h);
          if (h[H.STATE] !== 1) break;
          received++;
          s.write(exampleFrame(ExampleType.RESPONSE, h[H.ID_LO]!, 0, '', ANSWER));
          buf = buf.subarray(h[H.FRAME_LEN]!);
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const up = (server.address() as net.AddressInfo).port;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc', `          codec: example
          route_config: [ { interface: "*", routes: [ { match: {}, route: { cluster: up } } ] } ]`)}
  clusters:
${staticCluster('up', [up], '    circuit_breakers: { thresholds: [ { max_requests: 100000 } ] }\n')}`,
      { engine },
    );
    port = await strait.port('rpc');
  });

  afterAll(async () => {
    await strait?.stop();
    server?.close();
  });

  it('stops reading the client, keeps RSS bounded, and delivers every answer once it reads', async () => {
    const c = await connect(port);
    c.pause();
    const calls = [];
    for (let i = 1; i <= CALLS; i++) calls.push(exampleFrame(ExampleType.REQUEST, i, 0, 'service=s\nmethod=m\n', Buffer.alloc(4096, i % 251)));
    c.write(Buffer.concat(calls));
    // Let the proxy take what it will.
    let last = -1;
    let maxRss = 0;
    for (let i = 0; i < 40 && received !== last; i++) {
      last = received;
      await new Promise((r) => setTimeout(r, 150));
      maxRss = Math.max(maxRss, strait.rssBytes());
    }
    expect(received).toBeLessThan(CALLS);
    expect(maxRss).toBeLessThan(150 * 1024 * 1024);

    // Now read: every answer arrives, once, for the right id.
    const seen = new Set<number>();
    let buf = Buffer.alloc(0);
    const h = new Int32Array(H.SIZE);
    await new Promise<void>((resolve) => {
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          exampleCodec.decodeHeader(buf, 0, buf.length, 1 << 20, h);
          if (h[H.STATE] !== 1) break;
          expect(seen.has(h[H.ID_LO]!)).toBe(false);
          seen.add(h[H.ID_LO]!);
          buf = buf.subarray(h[H.FRAME_LEN]!);
        }
        if (seen.size === CALLS) resolve();
      });
      c.resume();
    });
    expect(received).toBe(CALLS);
    c.destroy();
  }, 60_000);
});
