import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { closedWithin, connect, echoServer } from '../helpers/net.js';
import { ADMIN, startStrait, staticCluster, tcpListener } from '../helpers/strait.js';

function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

describe('process lifecycle', () => {
  it('SIGTERM stops accepting, lets open connections finish, then exits 0', async () => {
    const echo = await echoServer();
    const p = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${tcpListener('l', 'e')}\n  clusters:\n${staticCluster('e', [echo.port])}`, {
      args: ['--drain-time-s', '10'],
    });
    try {
      const port = await p.port('l');
      const open = await connect(port);
      open.write('a');
      await new Promise((r) => open.once('data', r));
      const t0 = Date.now();
      p.proc.kill('SIGTERM');
      // New connections are refused soon after the signal.
      let state = 'connected';
      // (A connect that races the close lands in the backlog and is reset: try again.)
      for (let i = 0; i < 40 && (state === 'connected' || state === 'ECONNRESET'); i++) {
        state = await tryConnect(port);
        if (state !== 'ECONNREFUSED') await new Promise((r) => setTimeout(r, 25));
      }
      expect(state).toBe('ECONNREFUSED');
      // The admin says DRAINING while the open connection is still served.
      expect(await p.get('/ready')).toEqual({ status: 503, text: 'DRAINING\n' });
      const echoed = new Promise<string>((r) => open.once('data', (d) => r(String(d))));
      open.write('still here');
      expect(await echoed).toBe('still here');
      // When the last connection ends, the process exits 0 well before the drain time.
      open.end();
      expect(await p.wait()).toBe(0);
      expect(Date.now() - t0).toBeLessThan(8000);
    } finally {
      await p.stop();
      await echo.close();
    }
  });

  it('SIGTERM closes connections still open when the drain time runs out', async () => {
    const echo = await echoServer();
    const p = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${tcpListener('l', 'e')}\n  clusters:\n${staticCluster('e', [echo.port])}`, {
      args: ['--drain-time-s', '1'],
    });
    try {
      const open = await connect(await p.port('l'));
      open.write('a');
      await new Promise((r) => open.once('data', r));
      const t0 = Date.now();
      p.proc.kill('SIGTERM');
      expect(await closedWithin(open, 5000)).toBe('closed');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      expect(await p.wait()).toBe(0);
    } finally {
      await p.stop();
      await echo.close();
    }
  });

  it('a listener that cannot bind stops start-up with exit 1 and releases the admin port', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const taken = (blocker.address() as net.AddressInfo).port;
    const echo = await echoServer();
    const p = await startStrait(
      `${ADMIN}static_resources:\n  listeners:\n${tcpListener('l', 'e', '', `{ socket_address: { address: 127.0.0.1, port_value: ${taken} } }`)}\n  clusters:\n${staticCluster('e', [echo.port])}`,
      { waitReady: false },
    );
    try {
      expect(await p.wait()).toBe(1);
      expect(p.stderr).toContain(`listener "l": cannot listen on 127.0.0.1:${taken}`);
    } finally {
      await p.stop();
      blocker.close();
      await echo.close();
    }
  });
});
