export { TokenBucket } from './token_bucket.js';
export { KeyedLimiter, PriorityLimiter, type Grant, type PriorityLimiterConfig } from './priority_limiter.js';
export { parseRateLimitSpec, type RateLimitSpec } from './config.js';
