/*
 * rpc-echo-server: the bench's RPC upstream (compiled at run time by bench/lib/tools.js).
 *
 *   rpc-echo-server BOLT_RESPONSE_HEX DUBBO_RESPONSE_HEX
 *
 * Listens on 127.0.0.1:0, prints "port N", and answers every Bolt v1 or Dubbo 2 request with
 * the given pre-encoded success response (encoded once by the real libraries, see
 * bench/tools/rpc-frames.cjs) carrying the request's id. Each frame is recognised by its
 * first byte (0x01 Bolt v1, 0xdabb Dubbo), so one port serves both protocols. Heartbeats are
 * answered as providers do: Bolt cmdcode 0 gets an ack with the same id, a two-way Dubbo event
 * gets an event response with the same id. One-way calls get nothing; anything that is not
 * one of the two protocols closes the connection.
 *
 * One thread and epoll; every response due after one read goes out in one write, so the
 * upstream costs the same small amount for every peer.
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
#include <unistd.h>

#include "tool_util.h"

#define INCAP (1 << 20)

typedef struct {
  int fd, want_out;
  unsigned char *in;
  size_t in_len;
  unsigned char *out;
  size_t out_len, out_off, out_cap;
} conn_t;

static int ep;
static unsigned char *bolt_resp, *dubbo_resp;
static size_t bolt_len, dubbo_len;

static void die(const char *m) {
  perror(m);
  exit(2);
}

static uint64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

static unsigned char *out_reserve(conn_t *c, size_t more) {
  if (c->out_len + more > c->out_cap) {
    if (c->out_off) {
      memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
      c->out_len -= c->out_off;
      c->out_off = 0;
    }
    while (c->out_cap < c->out_len + more) c->out_cap *= 2;
    c->out = realloc(c->out, c->out_cap);
    if (!c->out) die("realloc");
  }
  unsigned char *p = c->out + c->out_len;
  c->out_len += more;
  return p;
}

static void drop(conn_t *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->in);
  free(c->out);
  free(c);
}

/* Answers every whole frame in c->in; -1 on a stream that is neither protocol. */
static int parse(conn_t *c) {
  size_t off = 0;
  for (;;) {
    unsigned char *p = c->in + off;
    size_t avail = c->in_len - off, len;
    if (avail < 1) break;
    if (p[0] == 0x01) {
      /* Bolt v1 request: 22-byte header; classLen u16 at 14, headerLen u16 at 16, contentLen u32 at 18. */
      if (avail < 22) break;
      len = 22 + be(p + 14, 2) + be(p + 16, 2) + be(p + 18, 4);
      if (len > INCAP) return -1;
      if (avail < len) break;
      unsigned type = p[1];
      uint64_t cmd = be(p + 2, 2);
      if (cmd == 1 && type != 2) { /* type 2 = one-way */
        unsigned char *f = out_reserve(c, bolt_len);
        memcpy(f, bolt_resp, bolt_len);
        memcpy(f + 5, p + 5, 4);
      } else if (cmd == 0) {
        /* Heartbeat ack: a response header (type 0) with cmdcode 0, same ver2/id/codec,
         * status success and empty class, header and content. */
        unsigned char *f = out_reserve(c, 20);
        memset(f, 0, 20);
        f[0] = 0x01;
        f[4] = p[4];
        memcpy(f + 5, p + 5, 4);
        f[9] = p[9];
      }
    } else if (p[0] == 0xda) {
      if (avail < 16) break;
      if (p[1] != 0xbb) return -1;
      uint64_t body = be(p + 12, 4);
      if (body > INCAP - 16) return -1;
      len = 16 + body;
      if (avail < len) break;
      unsigned flags = p[2];
      if ((flags & 0x80) && (flags & 0x40)) { /* two-way request */
        if (flags & 0x20) {
          unsigned char *f = out_reserve(c, 17);
          memset(f, 0, 17);
          f[0] = 0xda, f[1] = 0xbb, f[2] = 0x20 | (flags & 0x1f), f[3] = 20;
          memcpy(f + 4, p + 4, 8);
          f[15] = 1, f[16] = 0x4e; /* hessian null */
        } else {
          unsigned char *f = out_reserve(c, dubbo_len);
          memcpy(f, dubbo_resp, dubbo_len);
          memcpy(f + 4, p + 4, 8);
        }
      }
    } else {
      return -1;
    }
    off += len;
  }
  if (off) {
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
  }
  return 0;
}

static void set_out(conn_t *c, int want) {
  if (c->want_out == want) return;
  struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = want;
}

/* 0 ok, -1 connection gone. */
static int flush(conn_t *c) {
  while (c->out_off < c->out_len) {
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        set_out(c, 1);
        return 0;
      }
      return -1;
    }
    c->out_off += (size_t)w;
  }
  c->out_off = c->out_len = 0;
  set_out(c, 0);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: rpc-echo-server BOLT_RESPONSE_HEX DUBBO_RESPONSE_HEX\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  bolt_resp = unhex(argv[1], &bolt_len);
  dubbo_resp = unhex(argv[2], &dubbo_len);
  if (!bolt_resp || bolt_len < 20 || !dubbo_resp || dubbo_len < 16) {
    fprintf(stderr, "rpc-echo-server: bad response frames\n");
    return 2;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (lfd < 0) die("socket");
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
  if (listen(lfd, 4096) < 0) die("listen");
  socklen_t sl = sizeof sa;
  getsockname(lfd, (struct sockaddr *)&sa, &sl);
  printf("port %d\n", ntohs(sa.sin_port));
  fflush(stdout);

  ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c) {
        for (;;) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = calloc(1, sizeof *c);
          c->fd = fd;
          c->in = malloc(INCAP);
          c->out_cap = 64 * 1024;
          c->out = malloc(c->out_cap);
          if (!c->in || !c->out) die("malloc");
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r;
        int gone = 0;
        for (;;) {
          r = recv(c->fd, c->in + c->in_len, INCAP - c->in_len, 0);
          if (r < 0 && errno == EINTR) continue;
          if (r < 0 && errno == EAGAIN) break;
          if (r <= 0) {
            gone = 1;
            break;
          }
          c->in_len += (size_t)r;
          if (parse(c) < 0) {
            fprintf(stderr, "rpc-echo-server: not Bolt v1 or Dubbo (first byte 0x%02x); closing\n", c->in[0]);
            gone = 1;
            break;
          }
          if ((size_t)r < INCAP / 2) break;
        }
        if (gone) {
          drop(c);
          continue;
        }
      }
      if (flush(c) < 0) drop(c);
    }
  }
}
