import { durationMs } from '../config/values.js';
import type { FieldError } from '../errors.js';
import type { PriorityLimiterConfig } from './priority_limiter.js';

type Obj = Record<string, any>;

/** The `rate_limit` block (strait.rpc_proxy.v1.RateLimit), shared by rpc_proxy and the HTTP filter. */
export interface RateLimitSpec {
  readonly limiter: PriorityLimiterConfig;
  /** Where a request's priority is read (an RPC metadata key or an HTTP header); '' = none. */
  readonly priorityKey: string;
  /** Where the calling application is named; '' = one limiter for everyone. */
  readonly sourceAppKey: string;
}

const MAX_LEVELS = 16;

/** Validates a `rate_limit` block at `path`, reporting every problem; null when it has errors. */
export function parseRateLimitSpec(rl: Obj, path: string, errors: FieldError[]): RateLimitSpec | null {
  const start = errors.length;
  const tb = rl.token_bucket as Obj | undefined;
  const rate = tb
    ? { maxTokens: Number(tb.max_tokens), tokensPerFill: tb.tokens_per_fill === undefined || tb.tokens_per_fill === null ? 1 : Number(tb.tokens_per_fill), fillIntervalMs: durationMs(tb.fill_interval) ?? 0 }
    : null;
  if (rate && !(rate.fillIntervalMs > 0)) errors.push({ path: `${path}.token_bucket.fill_interval`, message: 'must be more than 0s' });
  if (rate && !(Number.isInteger(rate.maxTokens) && rate.maxTokens > 0)) errors.push({ path: `${path}.token_bucket.max_tokens`, message: 'must be a positive integer' });
  const maxConcurrent = Number(rl.max_concurrent ?? 0);
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 0) errors.push({ path: `${path}.max_concurrent`, message: 'must be a non-negative integer' });
  if (!rate && !maxConcurrent) errors.push({ path, message: 'needs token_bucket or max_concurrent' });
  const levels = rl.levels === undefined || rl.levels === null || Number(rl.levels) === 0 ? 1 : Number(rl.levels);
  if (!Number.isInteger(levels) || levels < 1 || levels > MAX_LEVELS) errors.push({ path: `${path}.levels`, message: `must be 1-${MAX_LEVELS}` });
  const maxQueue = rl.max_queue_per_level === undefined || rl.max_queue_per_level === null ? 128 : Number(rl.max_queue_per_level);
  if (!Number.isInteger(maxQueue) || maxQueue < 0) errors.push({ path: `${path}.max_queue_per_level`, message: 'must be a non-negative integer' });
  const maxWaitMs = rl.max_wait === undefined || rl.max_wait === null ? 1000 : durationMs(rl.max_wait);
  if (maxWaitMs === null || maxWaitMs === undefined || maxWaitMs < 0) errors.push({ path: `${path}.max_wait`, message: 'must be a duration' });
  if (errors.length > start) return null;
  return Object.freeze({
    limiter: Object.freeze({
      levels,
      rate,
      ...(maxConcurrent ? { maxConcurrent } : {}),
      maxQueuePerLevel: maxQueue,
      maxWaitMs: maxWaitMs!,
    }),
    priorityKey: String(rl.priority_key ?? ''),
    sourceAppKey: String(rl.source_app_key ?? ''),
  });
}
