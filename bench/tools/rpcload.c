/*
 * rpcload: closed-loop Bolt / Dubbo load generator for the bench (compiled at run time by
 * bench/lib/tools.js, like bulk.c).
 *
 *   rpcload PROTO PORT CONNS DEPTH SECONDS REQUEST_HEX RESPONSE_LEN
 *     PROTO         bolt (SOFARPC Bolt v1) | dubbo (Dubbo 2)
 *     CONNS, DEPTH  CONNS connections to 127.0.0.1:PORT, each keeping DEPTH calls in flight
 *     REQUEST_HEX   one request frame, encoded once by the real client library; every call
 *                   sends these bytes with its own request id written in
 *     RESPONSE_LEN  exact size of a success response: any other size is counted as an error
 *
 * Prints one JSON object: requests (responses received within the SECONDS window), rps,
 * latency percentiles in microseconds, and error counters. Every call must get exactly one
 * response with its id, the success status and the expected size; after the window the calls
 * still in flight get 2 s to finish, and those that do not are counted as lost.
 *
 * Ids are numbered from 1 per connection, as real clients number them per process, so ids
 * from different connections collide on a proxy's shared upstream connection (the proxy must
 * map them). One thread, epoll, and one write per connection per loop turn carrying every
 * call that became due, so the generator stays well below a core while the proxy works.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOOL_HISTOGRAM
#include "tool_util.h"

enum { BOLT, DUBBO };
#define SLOTS 4096 /* power of two, well above DEPTH: ids map to slots by their low bits */
#define INCAP (1 << 20)
#define DRAIN_NS 2000000000ull

typedef struct {
  uint64_t id, t;
} slot_t;

typedef struct {
  int fd, connecting, dead, want_out;
  uint64_t next_id;
  int inflight;
  unsigned char *in;
  size_t in_len;
  unsigned char *out;
  size_t out_len, out_off, out_cap;
  slot_t slots[SLOTS];
} conn_t;

static int proto, depth, ep;
static unsigned char *req;
static size_t req_len, resp_len;
static struct {
  uint64_t connect, closed, bad_frame, bad_status, bad_length, unknown_id, lost;
} err;
static uint64_t completed_window, sent, bytes_in, bytes_out, heartbeats_answered, events_ignored;
static int sending = 1;

static void die(const char *m) {
  perror(m);
  exit(2);
}

static void out_reserve(conn_t *c, size_t more) {
  if (c->out_len + more <= c->out_cap) return;
  if (c->out_off) { /* compact before growing */
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
    if (c->out_len + more <= c->out_cap) return;
  }
  while (c->out_cap < c->out_len + more) c->out_cap *= 2;
  c->out = realloc(c->out, c->out_cap);
  if (!c->out) die("realloc");
}

static void put_id(unsigned char *f, uint64_t id) {
  if (proto == BOLT) {
    uint32_t v = htonl((uint32_t)id);
    memcpy(f + 5, &v, 4);
  } else {
    for (int i = 0; i < 8; i++) f[4 + i] = (unsigned char)(id >> (56 - 8 * i));
  }
}

static void set_events(conn_t *c, int want_out) {
  if (c->want_out == want_out) return;
  struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod");
  c->want_out = want_out;
}

static void kill_conn(conn_t *c) {
  if (c->dead) return;
  c->dead = 1;
  err.lost += (uint64_t)c->inflight;
  c->inflight = 0;
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
}

/* Queues calls until DEPTH are in flight. */
static void fill(conn_t *c, uint64_t now) {
  if (!sending || c->dead || c->connecting) return;
  int n = depth - c->inflight;
  if (n <= 0) return;
  out_reserve(c, (size_t)n * req_len);
  for (int i = 0; i < n; i++) {
    uint64_t id = c->next_id++;
    if (proto == BOLT && (uint32_t)id == 0) id = c->next_id++; /* skip 0 when u32 wraps */
    slot_t *s = &c->slots[id & (SLOTS - 1)];
    if (s->t) { /* a call 4096 ids old never came back */
      err.lost++;
      c->inflight--;
    }
    s->id = id;
    s->t = now;
    unsigned char *f = c->out + c->out_len;
    memcpy(f, req, req_len);
    put_id(f, id);
    c->out_len += req_len;
    c->inflight++;
    sent++;
  }
}

static void flush(conn_t *c) {
  while (!c->dead && c->out_off < c->out_len) {
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        set_events(c, 1);
        return;
      }
      err.closed++;
      kill_conn(c);
      return;
    }
    bytes_out += (uint64_t)w;
    c->out_off += (size_t)w;
  }
  c->out_off = c->out_len = 0;
  if (!c->dead) set_events(c, 0);
}

static uint64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

static void complete(conn_t *c, uint64_t id, int ok_status, size_t len, uint64_t now) {
  slot_t *s = &c->slots[id & (SLOTS - 1)];
  if (!s->t || s->id != id) {
    err.unknown_id++;
    return;
  }
  if (!ok_status) err.bad_status++;
  else if (len != resp_len) err.bad_length++;
  if (sending) {
    completed_window++;
    record((now - s->t) / 1000);
  }
  s->t = 0;
  c->inflight--;
}

/* Parses every whole frame in c->in. Returns -1 when the stream is not the protocol. */
static int parse(conn_t *c, uint64_t now) {
  size_t off = 0;
  for (;;) {
    unsigned char *p = c->in + off;
    size_t avail = c->in_len - off;
    size_t len;
    if (proto == BOLT) {
      if (avail < 20) break;
      if (p[0] != 0x01) return -1;
      len = 20 + be(p + 12, 2) + be(p + 14, 2) + be(p + 16, 4);
      if (len > INCAP) return -1;
      if (avail < len) break;
      uint64_t cmd = be(p + 2, 2);
      if (cmd == 2) complete(c, be(p + 5, 4), be(p + 10, 2) == 0, len, now);
      else events_ignored++; /* heartbeat acks */
    } else {
      if (avail < 16) break;
      if (p[0] != 0xda || p[1] != 0xbb) return -1;
      int64_t body = (int64_t)be(p + 12, 4);
      if (body < 0 || body + 16 > INCAP) return -1;
      len = 16 + (size_t)body;
      if (avail < len) break;
      unsigned flags = p[2];
      if (flags & 0x80) {
        /* A request from the server side: providers send heartbeats on idle connections.
         * Answer two-way heartbeats as a client must: event response, same id, null body. */
        if ((flags & 0x20) && (flags & 0x40)) {
          out_reserve(c, 17);
          unsigned char *f = c->out + c->out_len;
          memset(f, 0, 17);
          f[0] = 0xda, f[1] = 0xbb, f[2] = 0x20 | (flags & 0x1f), f[3] = 20;
          memcpy(f + 4, p + 4, 8);
          f[15] = 1, f[16] = 0x4e;
          c->out_len += 17;
          heartbeats_answered++;
        } else {
          events_ignored++;
        }
      } else if (flags & 0x20) {
        events_ignored++; /* a heartbeat response */
      } else {
        complete(c, be(p + 4, 8), p[3] == 20, len, now);
      }
    }
    off += len;
  }
  if (off) {
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
  }
  return 0;
}

static void on_readable(conn_t *c, uint64_t now) {
  for (;;) {
    ssize_t r = recv(c->fd, c->in + c->in_len, INCAP - c->in_len, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      err.closed++;
      kill_conn(c);
      return;
    }
    if (r == 0) {
      err.closed++;
      kill_conn(c);
      return;
    }
    bytes_in += (uint64_t)r;
    c->in_len += (size_t)r;
    if (parse(c, now) < 0) {
      err.bad_frame++;
      kill_conn(c);
      return;
    }
    if ((size_t)r < INCAP / 2) return; /* short read: the socket is drained for this turn */
  }
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: rpcload bolt|dubbo PORT CONNS DEPTH SECONDS REQUEST_HEX RESPONSE_LEN\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (!strcmp(argv[1], "bolt")) proto = BOLT;
  else if (!strcmp(argv[1], "dubbo")) proto = DUBBO;
  else {
    fprintf(stderr, "rpcload: unknown protocol %s\n", argv[1]);
    return 2;
  }
  int port = atoi(argv[2]), nconn = atoi(argv[3]);
  depth = atoi(argv[4]);
  double seconds = atof(argv[5]);
  req = unhex(argv[6], &req_len);
  resp_len = (size_t)atol(argv[7]);
  if (!req || req_len < 22 || nconn < 1 || depth < 1 || depth > SLOTS / 4 || seconds <= 0) {
    fprintf(stderr, "rpcload: bad arguments\n");
    return 2;
  }

  ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  conn_t *conns = calloc((size_t)nconn, sizeof(conn_t));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < nconn; i++) {
    conn_t *c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->next_id = 1;
    c->in = malloc(INCAP);
    c->out_cap = (size_t)depth * req_len * 2 + 4096;
    c->out = malloc(c->out_cap);
    if (!c->in || !c->out) die("malloc");
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
      err.connect++;
      c->dead = 1;
      close(c->fd);
      continue;
    }
    c->connecting = 1;
    c->want_out = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl add");
  }

  uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9), window_end = 0, drain_end = 0;
  struct epoll_event evs[256];
  conn_t **touched = calloc((size_t)nconn, sizeof(conn_t *));
  for (;;) {
    int n = epoll_wait(ep, evs, 256, 5);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    uint64_t now = now_ns();
    int nt = 0;
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c->dead) continue;
      if (c->connecting) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
        if (e || (evs[i].events & (EPOLLERR | EPOLLHUP))) {
          err.connect++;
          c->dead = 1;
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
          close(c->fd);
          continue;
        }
        if (!(evs[i].events & EPOLLOUT)) continue;
        c->connecting = 0;
        touched[nt++] = c;
        continue;
      }
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c, now);
      touched[nt++] = c; /* refill and flush once per turn, whatever woke it */
    }
    if (sending && now >= end) {
      sending = 0;
      window_end = now;
      drain_end = now + DRAIN_NS;
    }
    for (int i = 0; i < nt; i++) {
      fill(touched[i], now);
      flush(touched[i]);
    }
    if (!sending) {
      uint64_t left = 0;
      int alive = 0;
      for (int i = 0; i < nconn; i++) {
        if (!conns[i].dead) {
          left += (uint64_t)conns[i].inflight;
          alive++;
        }
      }
      if (!left || !alive || now >= drain_end) {
        err.lost += left;
        break;
      }
    }
  }

  double dur = (double)(window_end - start) / 1e9;
  /* Our own CPU, so the report can show the generator was not the bottleneck. */
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  uint64_t errors = err.connect + err.closed + err.bad_frame + err.bad_status + err.bad_length + err.unknown_id + err.lost;
  printf("{\"protocol\":\"%s\",\"connections\":%d,\"depth\":%d,\"requests\":%" PRIu64 ",\"sent\":%" PRIu64
         ",\"duration_s\":%.6f,\"cpu_s\":%.3f,\"rps\":%.1f,"
         "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%" PRIu64 ",\"mean_us\":%.1f,"
         "\"bytes_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64 ",\"heartbeats_answered\":%" PRIu64 ",\"events_ignored\":%" PRIu64
         ",\"error_total\":%" PRIu64 ",\"errors\":{\"connect\":%" PRIu64 ",\"closed\":%" PRIu64 ",\"bad_frame\":%" PRIu64
         ",\"bad_status\":%" PRIu64 ",\"bad_length\":%" PRIu64 ",\"unknown_id\":%" PRIu64 ",\"lost\":%" PRIu64 "}}\n",
         argv[1], nconn, depth, completed_window, sent, dur, cpu, dur > 0 ? (double)completed_window / dur : 0.0, percentile(50),
         percentile(90), percentile(99), max_us, nsamples ? (double)sum_us / (double)nsamples : 0.0, bytes_out, bytes_in,
         heartbeats_answered, events_ignored, errors, err.connect, err.closed, err.bad_frame, err.bad_status, err.bad_length,
         err.unknown_id, err.lost);
  return 0;
}
