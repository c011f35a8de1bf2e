// A native object that has finished lets go of its JavaScript callback. The callback's closure
// usually holds the JavaScript side, and the JavaScript side holds the wrapper: a strong reference
// kept past the end makes a cycle the GC never frees, and every finished connection would stay in
// memory (session 28 found each HTTP/2 connection retained this way, ~4 KiB apiece).
import http2 from 'node:http2';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { NativeH2Connection } from '../../src/protocols/http2/native_session.js';
import { b, KiB, MiB, sleep, until } from './helpers.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Runs full GCs (letting finalizers run in between) until `done()` or a bound is reached. */
async function collect(done: () => boolean): Promise<void> {
  for (let i = 0; i < 40 && !done(); i++) {
    gc();
    await sleep(10);
  }
}

const N = 8;

describe('finished native objects are collectable', () => {
  it('an HTTP/2 session whose handlers hold the connection', async () => {
    let freed = 0;
    let ended = 0;
    const reg = new FinalizationRegistry<void>(() => freed++);
    const lfd = b.listenTcp('127.0.0.1', 0, 64, false);
    const acc = new b.Acceptor(
      lfd,
      (cfd) => {
        // As in the HTTP connection manager: the handlers' closures refer to the connection.
        let c: NativeH2Connection | null = null;
        c = new NativeH2Connection(cfd, { maxHeaderListSize: 16 * KiB, maxHeaderPairs: 100 }, null, {
          onStream: (s) => {
            if (c === null) throw new Error('no connection');
            s.respond({ ':status': '200' }, { endStream: true });
          },
          onIdle() {},
          onEnd: () => ended++,
        });
        reg.register(c);
      },
      () => {},
    );
    const port = b.localAddress(lfd).port;
    try {
      for (let i = 0; i < N; i++) {
        const s = http2.connect(`http://127.0.0.1:${port}`);
        s.on('error', () => {});
        const status = await new Promise<number>((resolve, reject) => {
          const rq = s.request({ ':path': '/' }, { endStream: true });
          rq.on('response', (h) => resolve(Number(h[':status'])));
          rq.on('error', reject);
          rq.resume();
        });
        expect(status).toBe(200);
        await new Promise<void>((r) => s.close(() => r()));
      }
      await until(() => ended === N);
      expect(ended).toBe(N);
      await collect(() => freed === N);
      expect(freed).toBe(N);
    } finally {
      acc.close();
    }
  }, 20_000);

  it('a pipe whose close callback holds the pipe, and the connect requests behind it', async () => {
    let pipesFreed = 0;
    let requestsFreed = 0;
    let closed = 0;
    const pipes = new FinalizationRegistry<void>(() => pipesFreed++);
    const requests = new FinalizationRegistry<void>(() => requestsFreed++);
    const upstream = net.createServer((s) => s.end()); // each upstream connection ends at once
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    const up = (upstream.address() as net.AddressInfo).port;
    const lfd = b.listenTcp('127.0.0.1', 0, 64, false);
    const acc = new b.Acceptor(
      lfd,
      (dfd) => {
        const run: { req: object | null; pipe: object | null } = { req: null, pipe: null };
        run.req = b.connect('127.0.0.1', up, 2000, (status, ufd) => {
          expect(status).toBe(0);
          // The callback holds `run`, which holds the request and (below) the pipe.
          run.pipe = new b.Pipe(dfd, ufd, { idleTimeoutMs: 0, highWaterMark: MiB }, () => {
            if (run.pipe !== null) closed++;
          });
          pipes.register(run.pipe);
        });
        requests.register(run.req);
      },
      () => {},
    );
    const port = b.localAddress(lfd).port;
    try {
      for (let i = 0; i < N; i++) {
        const c = net.connect(port, '127.0.0.1');
        c.resume();
        await new Promise<void>((r) => c.once('close', () => r()));
      }
      await until(() => closed === N);
      expect(closed).toBe(N);
      await collect(() => pipesFreed === N && requestsFreed === N);
      expect(pipesFreed).toBe(N);
      expect(requestsFreed).toBe(N);
    } finally {
      acc.close();
      upstream.close();
    }
  }, 20_000);

  it('a cancelled connect request', async () => {
    let freed = 0;
    const reg = new FinalizationRegistry<void>(() => freed++);
    const hold = await new Promise<net.Server>((r) => {
      const s = net.createServer(() => {});
      s.listen(0, '127.0.0.1', () => r(s));
    });
    const port = (hold.address() as net.AddressInfo).port;
    let called = 0;
    for (let i = 0; i < N; i++) {
      const run: { req: { cancel(): void } | null } = { req: null };
      run.req = b.connect('127.0.0.1', port, 2000, () => {
        called++;
        run.req = null;
      });
      reg.register(run.req);
      run.req.cancel();
    }
    await collect(() => freed === N);
    expect(called).toBe(0);
    expect(freed).toBe(N);
    hold.close();
  });

  it('a closed acceptor whose callback holds it', async () => {
    let freed = 0;
    const reg = new FinalizationRegistry<void>(() => freed++);
    for (let i = 0; i < N; i++) {
      const lfd = b.listenTcp('127.0.0.1', 0, 4, false);
      const holder: { acc: { close(): void } | null } = { acc: null };
      holder.acc = new b.Acceptor(lfd, () => holder.acc?.close(), () => holder.acc?.close());
      reg.register(holder.acc);
      holder.acc.close();
    }
    await collect(() => freed === N);
    expect(freed).toBe(N);
  });
});
