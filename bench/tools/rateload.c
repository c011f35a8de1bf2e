/*
 * rateload: open-loop HTTP/1.1 load at a fixed request rate, for latency at equal load
 * (compiled at run time by bench/lib/tools.js, like rpcload.c).
 *
 *   rateload PORT CONNS RATE SECONDS REQUEST_HEX RESPONSE_LEN
 *     CONNS connections to 127.0.0.1:PORT share RATE requests/s: each one has its own schedule
 *     (RATE / CONNS, staggered) and keeps at most one request in flight, as a keep-alive client
 *     does. REQUEST_HEX is the request's bytes; RESPONSE_LEN the exact size of the response
 *     (measured by the bench's preflight): any other size or a status other than 200 is an error.
 *
 * Why not wrk: wrk is closed-loop, so a slower proxy is also offered less load and its p99 is
 * read at another throughput than its peers'. Here every peer gets the same schedule, and a
 * request's latency runs from the time it was due, not the time it could be sent: a request
 * held back because its connection was still waiting is charged that wait (the correction for
 * coordinated omission that wrk2 makes).
 *
 * Prints one JSON object: requests completed within the window, the rate achieved, latency
 * percentiles in microseconds, how many requests left more than 1 ms late (the schedule could
 * not be kept: the peer or this generator is saturated, and the row is not a fixed-rate one),
 * and error counters.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOOL_HISTOGRAM
#include "tool_util.h"

#define INCAP (1 << 16)
#define DRAIN_NS 2000000000ull
#define LATE_NS 1000000ull

typedef struct {
  int fd, connecting, dead, inflight;
  uint64_t due;      /* when this connection's next request is due */
  uint64_t intended; /* when the request in flight was due */
  size_t in_len;
  unsigned char in[INCAP];
} conn_t;

static unsigned char *req;
static size_t req_len, resp_len;
static uint64_t interval_ns;
static int ep;
static struct {
  uint64_t connect, closed, bad_status, bad_length, lost, short_send;
} err;
static uint64_t completed_window, sent, late;

static void kill_conn(conn_t *c) {
  if (c->dead) return;
  c->dead = 1;
  if (c->inflight) err.lost++;
  c->inflight = 0;
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
}

/* Sends the due request. A request is a few dozen bytes and one is in flight per connection,
 * so the socket buffer always takes it whole; anything else is an error, not a queue. */
static void send_due(conn_t *c, uint64_t now) {
  ssize_t w = send(c->fd, req, req_len, MSG_NOSIGNAL);
  if (w != (ssize_t)req_len) {
    if (w >= 0 || errno == EAGAIN) err.short_send++;
    else err.closed++;
    kill_conn(c);
    return;
  }
  if (now - c->due > LATE_NS) late++;
  c->intended = c->due;
  c->due += interval_ns;
  c->inflight = 1;
  sent++;
}

static void on_readable(conn_t *c, uint64_t now, int counting) {
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
    c->in_len += (size_t)r;
    if (!c->inflight || c->in_len > resp_len) {
      err.bad_length++; /* bytes nobody asked for, or a response longer than the preflight's */
      kill_conn(c);
      return;
    }
    if (c->in_len < resp_len) continue;
    if (memcmp(c->in, "HTTP/1.1 200 ", 13) != 0) err.bad_status++;
    c->in_len = 0;
    c->inflight = 0;
    if (counting) {
      completed_window++;
      record((now - c->intended) / 1000);
    }
    return;
  }
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: rateload PORT CONNS RATE SECONDS REQUEST_HEX RESPONSE_LEN\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int port = atoi(argv[1]), nconn = atoi(argv[2]);
  double rate = atof(argv[3]), seconds = atof(argv[4]);
  req = unhex(argv[5], &req_len);
  resp_len = (size_t)atol(argv[6]);
  if (!req || req_len < 16 || nconn < 1 || rate <= 0 || seconds <= 0 || resp_len < 16 || resp_len > INCAP) {
    fprintf(stderr, "rateload: bad arguments\n");
    return 2;
  }
  interval_ns = (uint64_t)((double)nconn * 1e9 / rate);

  ep = epoll_create1(0);
  if (ep < 0) {
    perror("epoll_create1");
    return 2;
  }
  conn_t *conns = calloc((size_t)nconn, sizeof(conn_t));
  if (!conns) return 2;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < nconn; i++) {
    conn_t *c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
      perror("socket");
      return 2;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
      err.connect++;
      c->dead = 1;
      close(c->fd);
      continue;
    }
    c->connecting = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
      perror("epoll_ctl");
      return 2;
    }
  }

  /* Connections are set up before the clock starts, so connect time is not latency. */
  uint64_t deadline = now_ns() + 2000000000ull;
  int pending = 0;
  for (int i = 0; i < nconn; i++) pending += conns[i].connecting;
  struct epoll_event evs[256];
  while (pending > 0 && now_ns() < deadline) {
    int n = epoll_wait(ep, evs, 256, 10);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c->connecting) continue;
      int e = 0;
      socklen_t el = sizeof e;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
      c->connecting = 0;
      pending--;
      if (e || (evs[i].events & (EPOLLERR | EPOLLHUP))) {
        err.connect++;
        c->dead = 1;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        continue;
      }
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
      epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
  }
  for (int i = 0; i < nconn; i++) {
    if (conns[i].connecting) {
      err.connect++;
      kill_conn(&conns[i]);
    }
  }

  uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
  for (int i = 0; i < nconn; i++) conns[i].due = start + (uint64_t)((double)i * 1e9 / rate);
  int alive = 0;
  for (;;) {
    uint64_t now = now_ns();
    int sending = now < end;
    /* Send what is due, and find the next due time among idle connections. */
    uint64_t next = UINT64_MAX;
    alive = 0;
    int busy = 0;
    for (int i = 0; i < nconn; i++) {
      conn_t *c = &conns[i];
      if (c->dead) continue;
      alive++;
      if (!c->inflight && sending) {
        if (c->due <= now) send_due(c, now);
        else if (c->due < next) next = c->due;
      }
      busy += c->inflight;
    }
    if (!sending && (busy == 0 || now > end + DRAIN_NS)) break;
    if (!alive) break;
    struct timespec ts = {0, 0};
    uint64_t wait = sending ? (next == UINT64_MAX ? 1000000ull : (next > now ? next - now : 0)) : 10000000ull;
    ts.tv_sec = (time_t)(wait / 1000000000ull);
    ts.tv_nsec = (long)(wait % 1000000000ull);
    int n = epoll_pwait2(ep, evs, 256, &ts, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_pwait2");
      return 2;
    }
    now = now_ns();
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c->dead) continue;
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, now, now <= end + DRAIN_NS);
    }
  }
  for (int i = 0; i < nconn; i++) {
    if (conns[i].inflight) err.lost++;
    if (!conns[i].dead) close(conns[i].fd);
  }
  double window_s = seconds;
  printf(
      "{\"requests\":%llu,\"sent\":%llu,\"rate\":%.1f,\"rps\":%.1f,\"duration_us\":%.0f,\"late\":%llu,"
      "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%llu,\"mean\":%.1f},"
      "\"errors\":{\"connect\":%llu,\"closed\":%llu,\"bad_status\":%llu,\"bad_length\":%llu,\"lost\":%llu,\"short_send\":%llu}}\n",
      (unsigned long long)completed_window, (unsigned long long)sent, rate, (double)completed_window / window_s, window_s * 1e6,
      (unsigned long long)late, percentile(50), percentile(90), percentile(99), percentile(99.9), (unsigned long long)max_us,
      nsamples ? (double)sum_us / (double)nsamples : 0.0, (unsigned long long)err.connect, (unsigned long long)err.closed,
      (unsigned long long)err.bad_status, (unsigned long long)err.bad_length, (unsigned long long)err.lost,
      (unsigned long long)err.short_send);
  return 0;
}
