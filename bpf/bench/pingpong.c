// Loopback hop benchmark for the sockmap accelerator (bench-sockmap.mjs drives it).
//   pingpong server tcp|unix ADDR           echo server: prints its port (or path), one client at a time
//   ADDR for tcp: PORT (127.0.0.1) or IPV4:PORT; the server binds port 0 on that address
//   pingpong rr tcp|unix ADDR SIZE SECONDS  request/response: prints "rtt_us <median> <p99> n"
//   pingpong bulk tcp|unix ADDR SIZE SECONDS  one-way stream: prints "mbps <MB/s>"
// C, not Node, so the figures show the kernel path and not a runtime's overhead.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int full(int fd, char *buf, size_t n, int rd) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = rd ? read(fd, buf + done, n - done) : write(fd, buf + done, n - done);
    if (r <= 0) return -1;
    done += r;
  }
  return 0;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int dial(const char *kind, const char *addr) {
  int fd;
  if (!strcmp(kind, "unix")) {
    struct sockaddr_un u = {.sun_family = AF_UNIX};
    strncpy(u.sun_path, addr, sizeof(u.sun_path) - 1);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&u, sizeof(u))) return -1;
  } else {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    const char *colon = strchr(addr, ':');
    a.sin_port = htons(atoi(colon ? colon + 1 : addr));
    if (colon) {
      char host[64] = {0};
      memcpy(host, addr, (size_t)(colon - addr) < sizeof(host) - 1 ? (size_t)(colon - addr) : sizeof(host) - 1);
      if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a))) return -1;
  }
  return fd;
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  const char *mode = argv[1], *kind = argv[2], *addr = argv[3];
  static char buf[1 << 20];
  if (!strcmp(mode, "server")) {
    // A proxy in front may close mid-echo: that ends one client, not the server.
    signal(SIGPIPE, SIG_IGN);
    int ls;
    if (!strcmp(kind, "unix")) {
      struct sockaddr_un u = {.sun_family = AF_UNIX};
      strncpy(u.sun_path, addr, sizeof(u.sun_path) - 1);
      unlink(addr);
      ls = socket(AF_UNIX, SOCK_STREAM, 0);
      if (bind(ls, (struct sockaddr *)&u, sizeof(u))) return perror("bind"), 1;
      printf("%s\n", addr);
    } else {
      struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
      socklen_t len = sizeof(a);
      // "0" is 127.0.0.1, "any" every address; an IPv4 address binds there (the intercept
      // bench's non-loopback upstream).
      if (!strcmp(addr, "any")) a.sin_addr.s_addr = htonl(INADDR_ANY);
      else if (strcmp(addr, "0") && inet_pton(AF_INET, addr, &a.sin_addr) != 1) return fprintf(stderr, "bad address %s\n", addr), 1;
      ls = socket(AF_INET, SOCK_STREAM, 0);
      if (bind(ls, (struct sockaddr *)&a, sizeof(a))) return perror("bind"), 1;
      getsockname(ls, (struct sockaddr *)&a, &len);
      printf("%d\n", ntohs(a.sin_port));
    }
    listen(ls, 16);
    fflush(stdout);
    for (;;) {
      int c = accept(ls, NULL, NULL);
      if (c < 0) return 1;
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      // Experiments on the receive side (bench-sockmap: the bulk-throughput study).
      if (getenv("PINGPONG_RCVBUF")) {
        int rb = atoi(getenv("PINGPONG_RCVBUF"));
        setsockopt(c, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
      }
      ssize_t r;
      // Echo what arrives; a bulk client never reads, so the echo is skipped for it (first byte 'B').
      int bulk = -1;
      while ((r = read(c, buf, sizeof(buf))) > 0) {
        if (bulk < 0) bulk = buf[0] == 'B';
        if (!bulk && full(c, buf, r, 0)) break;
      }
      close(c);
    }
  }
  if (argc < 6) return 2;
  size_t size = atoi(argv[4]);
  double secs = atof(argv[5]);
  int fd = dial(kind, addr);
  if (fd < 0) return perror("connect"), 1;
  if (!strcmp(mode, "rr")) {
    memset(buf, 'R', size);
    size_t cap = 1 << 22, n = 0;
    double *s = malloc(cap * sizeof(double));
    double end = now() + secs;
    while (n < cap) {
      double t0 = now();
      if (full(fd, buf, size, 0) || full(fd, buf, size, 1)) return perror("rr"), 1;
      double t1 = now();
      s[n++] = (t1 - t0) * 1e6;
      if (t1 > end) break;
    }
    qsort(s, n, sizeof(double), cmp);
    printf("rtt_us %.2f %.2f %zu\n", s[n / 2], s[(size_t)(n * 0.99)], n);
  } else {
    memset(buf, 'B', size);
    double t0 = now(), end = t0 + secs;
    double bytes = 0;
    while (now() < end) {
      if (full(fd, buf, size, 0)) return perror("bulk"), 1;
      bytes += size;
    }
    printf("mbps %.1f\n", bytes / (now() - t0) / 1e6);
  }
  close(fd);
  return 0;
}
