/*
 * What the bench's C tools share (header-only: each tool is still one `cc` of its .c file, and
 * bench/lib/tools.js hashes this header with the source so an edit here rebuilds every tool).
 *   now_ns()             CLOCK_MONOTONIC in nanoseconds
 *   unhex()              bytes from a hex argument (frames are encoded once by the bench in JS)
 *   record/percentile()  a log-linear latency histogram: exact microseconds below 2048 us, then
 *                        1024 buckets per power of two (0.1 % resolution) up to 2^40 us
 */
#ifndef STRAIT_BENCH_TOOL_UTIL_H
#define STRAIT_BENCH_TOOL_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* NULL on odd length or a non-hex digit. */
static inline unsigned char *unhex(const char *s, size_t *n) {
  size_t l = strlen(s);
  if (l % 2) return NULL;
  unsigned char *b = malloc(l / 2 + 1);
  if (!b) return NULL;
  for (size_t i = 0; i < l / 2; i++) {
    int h = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (h < 0 || lo < 0) {
      free(b);
      return NULL;
    }
    b[i] = (unsigned char)(h << 4 | lo);
  }
  *n = l / 2;
  return b;
}

#ifdef TOOL_HISTOGRAM
#define SUB 1024
#define NBUCKETS (2 * SUB + 30 * SUB)
static uint64_t hist[NBUCKETS];
static uint64_t nsamples, sum_us, max_us;

static inline int bucket_of(uint64_t us) {
  if (us < 2 * SUB) return (int)us;
  int msb = 63 - __builtin_clzll(us);
  int shift = msb - 10;
  if (shift > 30) return NBUCKETS - 1;
  return 2 * SUB + (shift - 1) * SUB + (int)((us >> shift) - SUB);
}

/* A bucket's midpoint. */
static inline double value_of(int b) {
  if (b < 2 * SUB) return b;
  int shift = (b - 2 * SUB) / SUB + 1;
  uint64_t sub = (uint64_t)((b - 2 * SUB) % SUB) + SUB;
  return (double)(sub << shift) + (double)((1ull << shift) - 1) / 2.0;
}

static inline void record(uint64_t us) {
  hist[bucket_of(us)]++;
  nsamples++;
  sum_us += us;
  if (us > max_us) max_us = us;
}

static inline double percentile(double q) {
  if (!nsamples) return 0;
  uint64_t rank = (uint64_t)(q / 100.0 * (double)nsamples + 0.999999);
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (int b = 0; b < NBUCKETS; b++) {
    seen += hist[b];
    if (seen >= rank) return value_of(b);
  }
  return (double)max_us;
}
#endif

#endif
