/*
 * TCP bulk sender and sink for the Strait bench (compiled by the bench on first use).
 *
 *   bulk sink                listen on 127.0.0.1:0, print "port N", then for every connection
 *                            (one thread each) one JSON line when the peer half-closes:
 *                            {"id":..,"bytes":..,"a":"..","b":"..","t_first_ns":..,"t_last_ns":..}
 *   bulk send PORT BYTES ID  connect, send a 16-byte header then BYTES of the pattern,
 *                            shutdown(SHUT_WR), wait for EOF, print one JSON line of timestamps
 *   bulk expect BYTES        print the checksum a sink must report for BYTES of the pattern
 *
 * The header ("STRAITBK" + little-endian id) lets the runner tell its transfer from readiness
 * probes that proxies forward as empty upstream connections. The checksum is Fletcher-style over
 * 64-bit words of the stream (a += w; b += a), so it is order-sensitive, independent of how reads
 * split the stream, and cheap enough (about one cycle per word) never to be the bottleneck.
 * Timestamps are CLOCK_MONOTONIC, which is one clock for all processes on the machine.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tool_util.h"

#define CHUNK (256 * 1024)
/* Not a power of two, so pattern repeats do not line up with read or write sizes. */
#define PATLEN ((1u << 20) + 8 * 509 + 3)
static const char MAGIC[8] = {'S', 'T', 'R', 'A', 'I', 'T', 'B', 'K'};

static unsigned char *make_pattern(void) {
  unsigned char *p = malloc(PATLEN);
  if (!p) { perror("malloc"); exit(2); }
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < PATLEN; i++) {
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    p[i] = (unsigned char)((x * 0x2545F4914F6CDD1Dull) >> 56);
  }
  return p;
}

typedef struct { uint64_t a, b; unsigned char carry[8]; unsigned ncarry; } sum_t;

static void sum_update(sum_t *s, const unsigned char *buf, size_t len) {
  uint64_t a = s->a, b = s->b, w;
  while (s->ncarry && len) {
    s->carry[s->ncarry++] = *buf++; len--;
    if (s->ncarry == 8) { memcpy(&w, s->carry, 8); a += w; b += a; s->ncarry = 0; }
  }
  while (len >= 8) { memcpy(&w, buf, 8); a += w; b += a; buf += 8; len -= 8; }
  while (len) { s->carry[s->ncarry++] = *buf++; len--; }
  s->a = a; s->b = b;
}

static void sum_final(sum_t *s) {
  if (s->ncarry) {
    uint64_t w = 0;
    memcpy(&w, s->carry, s->ncarry);
    s->a += w; s->b += s->a; s->ncarry = 0;
  }
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    p += w; n -= (size_t)w;
  }
  return 0;
}

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void *sink_conn(void *arg) {
  int fd = (int)(intptr_t)arg;
  unsigned char *buf = malloc(CHUNK);
  unsigned char hdr[16];
  size_t nhdr = 0;
  uint64_t bytes = 0, t_first = 0, t_last = 0;
  sum_t s = {0};
  int64_t id = -1;
  for (;;) {
    ssize_t r = read(fd, buf, CHUNK);
    if (r < 0) { if (errno == EINTR) continue; break; }
    uint64_t t = now_ns();
    if (r == 0) { t_last = t; break; }
    if (!t_first) t_first = t;
    size_t off = 0;
    while (nhdr < 16 && off < (size_t)r) hdr[nhdr++] = buf[off++];
    if (off < (size_t)r) { sum_update(&s, buf + off, (size_t)r - off); bytes += (uint64_t)r - off; }
    t_last = t;
  }
  sum_final(&s);
  if (nhdr == 16 && memcmp(hdr, MAGIC, 8) == 0) memcpy(&id, hdr + 8, 8);
  pthread_mutex_lock(&out_lock);
  printf("{\"id\":%" PRId64 ",\"bytes\":%" PRIu64 ",\"a\":\"%016" PRIx64 "\",\"b\":\"%016" PRIx64
         "\",\"t_first_ns\":%" PRIu64 ",\"t_last_ns\":%" PRIu64 "}\n",
         id, bytes, s.a, s.b, t_first, t_last);
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);
  close(fd);
  free(buf);
  return NULL;
}

static int cmd_sink(void) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 1024)) { perror("sink: bind/listen"); return 2; }
  socklen_t sl = sizeof sa;
  getsockname(ls, (struct sockaddr *)&sa, &sl);
  printf("port %d\n", ntohs(sa.sin_port));
  fflush(stdout);
  for (;;) {
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) { if (errno == EINTR || errno == ECONNABORTED) continue; perror("sink: accept"); return 2; }
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, sink_conn, (void *)(intptr_t)fd)) { close(fd); }
    pthread_attr_destroy(&at);
  }
}

static int cmd_send(int port, uint64_t total, int64_t id) {
  const unsigned char *pat = make_pattern();
  uint64_t t_start = now_ns();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) { perror("send: connect"); return 2; }
  uint64_t t_connected = now_ns();
  unsigned char hdr[16];
  memcpy(hdr, MAGIC, 8);
  memcpy(hdr + 8, &id, 8);
  if (write_all(fd, hdr, 16)) { perror("send: write"); return 2; }
  uint64_t sent = 0;
  while (sent < total) {
    size_t off = (size_t)(sent % PATLEN);
    size_t n = CHUNK;
    if (n > PATLEN - off) n = PATLEN - off;
    if (n > total - sent) n = (size_t)(total - sent);
    if (write_all(fd, pat + off, n)) { perror("send: write"); return 2; }
    sent += n;
  }
  shutdown(fd, SHUT_WR);
  uint64_t t_sent = now_ns();
  unsigned char buf[4096];
  uint64_t back = 0;
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0) { if (errno == EINTR) continue; break; }
    if (r == 0) break;
    back += (uint64_t)r;
  }
  uint64_t t_eof = now_ns();
  close(fd);
  printf("{\"sent\":%" PRIu64 ",\"received_back\":%" PRIu64 ",\"t_start_ns\":%" PRIu64 ",\"t_connected_ns\":%" PRIu64
         ",\"t_sent_ns\":%" PRIu64 ",\"t_eof_ns\":%" PRIu64 "}\n",
         sent, back, t_start, t_connected, t_sent, t_eof);
  return 0;
}

static int cmd_expect(uint64_t total) {
  const unsigned char *pat = make_pattern();
  sum_t s = {0};
  uint64_t done = 0;
  while (done < total) {
    size_t off = (size_t)(done % PATLEN);
    size_t n = PATLEN - off;
    if (n > total - done) n = (size_t)(total - done);
    sum_update(&s, pat + off, n);
    done += n;
  }
  sum_final(&s);
  printf("{\"bytes\":%" PRIu64 ",\"a\":\"%016" PRIx64 "\",\"b\":\"%016" PRIx64 "\"}\n", total, s.a, s.b);
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && !strcmp(argv[1], "sink")) return cmd_sink();
  if (argc >= 5 && !strcmp(argv[1], "send")) return cmd_send(atoi(argv[2]), strtoull(argv[3], NULL, 10), strtoll(argv[4], NULL, 10));
  if (argc >= 3 && !strcmp(argv[1], "expect")) return cmd_expect(strtoull(argv[2], NULL, 10));
  fprintf(stderr, "usage: bulk sink | bulk send PORT BYTES ID | bulk expect BYTES\n");
  return 64;
}
