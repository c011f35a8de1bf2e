import http from 'node:http';
import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { Client } from 'undici';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster } from '../helpers/strait.js';

const MiB = 1024 * 1024;
const TOTAL = 384 * MiB;
const CHUNK = Buffer.alloc(MiB, 0x61);

/**
 * Bodies stream through with backpressure both ways: a reader that stalls for a while must not
 * make the proxy buffer the body. RSS is sampled while 384 MiB move each way.
 */
describe.each(ENGINES.slice(0, 1))('http_connection_manager backpressure on the %s engine', (engine) => {
  it('streams 384 MiB down to a stalling client and up to a stalling upstream with bounded RSS', { timeout: 120_000 }, async () => {
    let uploaded = 0;
    const upstream = http.createServer((req, res) => {
      if (req.method === 'POST') {
        let stalled = false;
        req.on('data', (d: Buffer) => {
          uploaded += d.length;
          if (!stalled && uploaded > 64 * MiB) {
            stalled = true;
            req.pause();
            setTimeout(() => req.resume(), 1500);
          }
        });
        req.on('end', () => res.end(String(uploaded)));
        return;
      }
      res.writeHead(200, { 'content-length': String(TOTAL) });
      let sent = 0;
      const pump = () => {
        while (sent < TOTAL) {
          sent += CHUNK.length;
          if (!res.write(CHUNK)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upPort = (upstream.address() as net.AddressInfo).port;
    const strait = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${hcmListener('bp', simpleRoutes('sink', 'timeout: 60s'))}\n  clusters:\n${staticCluster('sink', [upPort])}`, { engine });
    let maxRss = 0;
    const sampler = setInterval(() => (maxRss = Math.max(maxRss, strait.rssBytes())), 50);
    const client = new Client(`http://127.0.0.1:${await strait.port('bp')}`);
    try {
      // Down: the client stops reading for 1.5 s after 64 MiB.
      const r = await client.request({ path: '/down', method: 'GET' });
      let got = 0;
      let paused = false;
      await new Promise<void>((resolve, reject) => {
        r.body.on('data', (d: Buffer) => {
          got += d.length;
          if (!paused && got > 64 * MiB) {
            paused = true;
            r.body.pause();
            setTimeout(() => r.body.resume(), 1500);
          }
        });
        r.body.on('end', resolve);
        r.body.on('error', reject);
      });
      expect(got).toBe(TOTAL);
      // Up: a generator body; the upstream stalls after 64 MiB.
      async function* gen() {
        for (let sent = 0; sent < TOTAL; sent += CHUNK.length) yield CHUNK;
      }
      const up = await client.request({ path: '/up', method: 'POST', body: gen() });
      expect(await up.body.text()).toBe(String(TOTAL));
      expect(paused).toBe(true);
      expect(maxRss).toBeLessThan(160 * MiB);
    } finally {
      clearInterval(sampler);
      await client.close();
      await strait.stop();
      upstream.close();
    }
  });
});
