import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { connect } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, staticCluster, tcpListener } from '../helpers/strait.js';

const GiB = 1024 * 1024 * 1024;
const STALL_AFTER = 64 * 1024 * 1024;
const STALL_MS = 3000;
const CHUNK = Buffer.alloc(1024 * 1024, 0x5a);

/**
 * A slow reader must never make the proxy buffer unboundedly: push 1 GiB through Strait to an
 * upstream that stops reading for 3 s after the first 64 MiB, sampling Strait's RSS throughout.
 */
describe.each(ENGINES)('backpressure on the %s engine', (engine) => {
  it('moves 1 GiB to a stalling reader with RSS under 150 MB', { timeout: 180_000 }, async () => {
    let received = 0;
    let stallStarted = 0;
    const upstream = net.createServer((s) => {
      s.on('data', (d: Buffer) => {
        received += d.length;
        if (!stallStarted && received >= STALL_AFTER) {
          stallStarted = Date.now();
          s.pause();
          setTimeout(() => s.resume(), STALL_MS);
        }
      });
      s.on('end', () => s.end());
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upPort = (upstream.address() as net.AddressInfo).port;
    const strait = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${tcpListener('bulk', 'sink')}\n  clusters:\n${staticCluster('sink', [upPort])}`, { engine });
    let maxRss = 0;
    let stallSamples = 0;
    const sampler = setInterval(() => {
      maxRss = Math.max(maxRss, strait.rssBytes());
      if (stallStarted && Date.now() - stallStarted < STALL_MS) stallSamples++;
    }, 50);
    try {
      const s = await connect(await strait.port('bulk'));
      const closed = new Promise<void>((r) => s.on('close', () => r()));
      s.resume();
      let sent = 0;
      while (sent < GiB) {
        sent += CHUNK.length;
        if (!s.write(CHUNK)) await new Promise((r) => s.once('drain', r));
      }
      s.end();
      await closed;
      expect(received).toBe(GiB);
      // The stall really happened while data was flowing, and RSS was sampled during it.
      expect(stallStarted).toBeGreaterThan(0);
      expect(stallSamples).toBeGreaterThan(10);
      expect(maxRss).toBeLessThan(150 * 1024 * 1024);
      expect(await strait.waitStat('tcp.bulk.downstream_cx_rx_bytes_total', (v) => v === GiB)).toBe(GiB);
    } finally {
      clearInterval(sampler);
      await strait.stop();
      upstream.close();
    }
  });
});
