import type { FilterVerdict, HttpFilter } from '../types.js';
import type { BufferConfig } from './config.js';

/**
 * Envoy's buffer filter: the request goes upstream only once its whole body arrived, and a body
 * over max_request_bytes gets 413 ("Payload Too Large"). The connection manager does the holding
 * (it owns the body bytes, and knows the route's BufferPerRoute): see `maxRequestBytes`. A
 * Content-Length over the limit is answered at once, so such a body is never read.
 */
export class BufferFilter implements HttpFilter {
  readonly maxRequestBytes: number;

  constructor(config: BufferConfig) {
    this.maxRequestBytes = config.maxRequestBytes;
  }

  onRequest(): FilterVerdict | null {
    return null;
  }
}
