// A small end-to-end workout of every native object, meant to run under valgrind (see
// native/README.md). Exits 0 after printing "leak-check: ok"; all peers are node net sockets.
import crypto from 'node:crypto';
import net from 'node:net';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const b = createRequire(import.meta.url)('../../build/Release/strait_native.node');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const check = (ok, what) => {
  if (!ok) throw new Error(`leak-check: ${what}`);
};

if (process.argv[2] === 'worker') {
  // Worker mode: open objects and let the host terminate us.
  const lfd = b.listenTcp('127.0.0.1', 0, 4, false);
  new b.Acceptor(lfd, () => {}, () => {});
  b.connect('127.0.0.1', b.localAddress(lfd).port, 0, () => {});
  setInterval(() => {}, 1000);
} else {
  const echo = net.createServer({ allowHalfOpen: true }, (s) => s.on('error', () => {}).pipe(s));
  await new Promise((r) => echo.listen(0, '127.0.0.1', r));
  const upPort = echo.address().port;

  const lfd = b.listenTcp('127.0.0.1', 0, 64, false);
  const closes = [];
  const pipes = [];
  const acceptor = new b.Acceptor(lfd, (fd) => {
    b.connect('127.0.0.1', upPort, 2000, (status, ufd) => {
      check(status === 0, `connect ${status}`);
      pipes.push(new b.Pipe(fd, ufd, { idleTimeoutMs: 300, highWaterMark: 256 << 10 }, (reason) => closes.push(reason)));
    });
  }, () => {});
  const port = b.localAddress(lfd).port;

  // 1: a full exchange with half-close (DONE).
  const payload = crypto.randomBytes(4 << 20);
  await new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let got = 0;
    c.on('data', (d) => (got += d.length));
    c.on('end', () => {
      check(got === payload.length, `echoed ${got}`);
      c.end();
      resolve();
    });
    c.end(payload);
  });
  // 2: a reset, 3: close() from JS, 4: an idle timeout.
  const c2 = net.connect({ host: '127.0.0.1', port });
  c2.on('error', () => {});
  await new Promise((r) => c2.once('connect', r));
  c2.write('x');
  await sleep(50);
  c2.resetAndDestroy();
  const c3 = net.connect({ host: '127.0.0.1', port }).on('error', () => {});
  const c4 = net.connect({ host: '127.0.0.1', port }).on('error', () => {});
  await sleep(100);
  pipes.at(-1).close();
  await sleep(600);
  c3.destroy();
  c4.destroy();
  // Connect failures: refused, timeout, cancel.
  const dead = b.listenTcp('127.0.0.1', 0, 0, false);
  const deadPort = b.localAddress(dead).port;
  const fillers = [0, 1, 2].map(() => net.connect({ host: '127.0.0.1', port: deadPort }).on('error', () => {}));
  await sleep(50);
  await new Promise((r) => b.connect('127.0.0.1', deadPort, 50, (s) => (check(s < 0, 'timeout'), r())));
  b.connect('127.0.0.1', deadPort, 50, () => check(false, 'cancelled callback ran')).cancel();
  fillers.forEach((f) => f.destroy());
  b.closeFd(dead);
  await new Promise((r) => b.connect('127.0.0.1', deadPort, 0, (s) => (check(s < 0, 'refused'), r())));
  acceptor.close();
  echo.close();
  check(closes.length === 4, `closes ${closes}`);
  // A worker torn down with open handles.
  const w = new Worker(new URL(import.meta.url), { argv: ['worker'] });
  await sleep(500);
  await w.terminate();
  const st = b.stats();
  check(st.pipesActive === 0 && st.poolChunksInUse === 0, JSON.stringify(st));
  console.log(`leak-check: ok (close reasons ${closes.join(',')})`);
}
