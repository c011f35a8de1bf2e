// One-request correctness checks run through every peer before it is measured: the exact body
// must come back, so a proxy that corrupts or mixes bytes fails loudly instead of being timed.
import http2 from 'node:http2';
import net from 'node:net';

/** GET over HTTP/1.1 on a raw socket; returns { status, body, rawLength } of one response. */
export function rawGet(port, urlPath, timeoutMs = 5000, extraHeaders = '') {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => finish(new Error(`no complete response within ${timeoutMs} ms (got ${buf.length} bytes)`)), timeoutMs);
    function finish(err, val) {
      clearTimeout(t);
      s.destroy();
      if (err) reject(err);
      else resolve(val);
    }
    s.on('error', (e) => finish(e));
    s.on('connect', () => s.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extraHeaders}\r\n`));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const m = head.match(/^HTTP\/1\.1 (\d{3})/);
      const cl = head.match(/\r\ncontent-length:\s*(\d+)/i);
      if (!m || !cl) return finish(new Error(`unexpected response head: ${JSON.stringify(head.slice(0, 200))}`));
      const total = end + 4 + Number(cl[1]);
      if (buf.length < total) return;
      finish(null, { status: Number(m[1]), body: buf.subarray(end + 4, total).toString('latin1'), rawLength: total });
    });
    s.on('end', () => finish(new Error(`connection closed after ${buf.length} bytes, before a complete response`)));
  });
}

/** GET over h2c (prior knowledge); returns { status, body }. */
export function h2Get(port, urlPath, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const t = setTimeout(() => finish(new Error(`no h2 response within ${timeoutMs} ms`)), timeoutMs);
    function finish(err, val) {
      clearTimeout(t);
      session.destroy();
      if (err) reject(err);
      else resolve(val);
    }
    session.on('error', (e) => finish(e));
    const req = session.request({ ':path': urlPath });
    let status = 0;
    let body = '';
    req.setEncoding('latin1');
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d) => (body += d));
    req.on('end', () => finish(null, { status, body }));
    req.on('error', (e) => finish(e));
    req.end();
  });
}
