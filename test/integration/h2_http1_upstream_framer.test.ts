// An h2c request forwarded to an HTTP/1.1 upstream reads the response body with its upstream
// connection's framer (H1Try takes the connection's, one response at a time), not one of its own.
// One pooled connection then carries chunked, content-length and bodiless responses in turn, and
// a chunked response abandoned by its client (the connection drained, upstream/http1_drain.ts):
// each body must reach its own request whole, none of it the previous request's.
import http from 'node:http';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingUpstream, hcmListener, simpleRoutes, type CountingUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** /chunked/<tag>, /length/<tag>, /empty/<tag> (204), /slow-chunked/<tag> (second chunk 100 ms later). */
function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  req.resume();
  const [, kind, tag] = (req.url ?? '').split('/');
  if (kind === 'chunked') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(`chunk one of ${tag}|`);
    res.end(`chunk two of ${tag}`);
  } else if (kind === 'length') {
    res.end(`whole body of ${tag}`);
  } else if (kind === 'empty') {
    res.writeHead(204).end();
  } else {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(`first of ${tag}|`);
    setTimeout(() => res.end(`last of ${tag}`), 100);
  }
}

function get(c: http2.ClientHttp2Session, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const rq = c.request({ ':path': path, ':authority': 'svc' });
    let status = 0;
    let body = '';
    rq.on('response', (h) => (status = Number(h[':status'])));
    rq.on('data', (d: Buffer) => (body += d.toString()));
    rq.on('end', () => resolve({ status, body }));
    rq.on('error', reject);
    rq.end();
  });
}

describe.each(ENGINES)('h2c to an HTTP/1.1 upstream: responses framed on one pooled connection (%s engine)', (engine) => {
  let up: CountingUpstream;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    up = await countingUpstream(handler);
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('edge', simpleRoutes('c1'))}
  clusters:
${staticCluster('c1', [up.port])}`,
      { engine },
    );
    port = await strait.port('edge');
  });

  afterAll(async () => {
    await strait?.stop();
    up?.server.close();
  });

  it('chunked, content-length and bodiless responses in turn each reach their own request whole', async () => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const before = up.accepted;
      const seq = ['chunked', 'length', 'empty', 'chunked', 'chunked', 'length', 'length', 'empty', 'chunked'];
      for (let i = 0; i < seq.length; i++) {
        const kind = seq[i]!;
        const r = await get(c, `/${kind}/r${i}`);
        if (kind === 'chunked') expect(r).toEqual({ status: 200, body: `chunk one of r${i}|chunk two of r${i}` });
        else if (kind === 'length') expect(r).toEqual({ status: 200, body: `whole body of r${i}` });
        else expect(r).toEqual({ status: 204, body: '' });
      }
      // One after another: the first connection carried them all.
      expect(up.accepted - before).toBe(1);
    } finally {
      c.close();
    }
  });

  it('after a chunked response its client abandoned (the connection drained), the next body is its own', async () => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', () => {});
    try {
      const before = up.accepted;
      const rq = c.request({ ':path': '/slow-chunked/gone', ':authority': 'svc' });
      rq.on('error', () => {});
      await new Promise<void>((r) => rq.once('data', () => r()));
      rq.close(http2.constants.NGHTTP2_CANCEL);
      // The drain reads the rest (100 ms later) and pools the connection again.
      await new Promise((r) => setTimeout(r, 300));
      expect(await get(c, '/length/next')).toEqual({ status: 200, body: 'whole body of next' });
      expect(await get(c, '/chunked/after')).toEqual({ status: 200, body: 'chunk one of after|chunk two of after' });
      expect(up.accepted - before).toBe(0);
    } finally {
      c.close();
    }
  });
});
