/* Types shared by the BPF programs (sockops.bpf.c, redirect.bpf.c, capture.bpf.c) and their loader
 * (native/bpf/). One definition: the loader reads these structs, it never restates sizes. */
#ifndef STRAIT_BPF_INTERCEPT_H
#define STRAIT_BPF_INTERCEPT_H

/* A connected socket seen from its own side. Both programs build keys with every byte
 * written (padding included), because the map compares raw bytes: a stray byte = a miss. */
struct sock_key {
	__u64 netns;          /* bpf_get_netns_cookie: equal 4-tuples in two namespaces differ */
	__u32 family;         /* AF_INET or AF_INET6 */
	__u32 local_port;     /* host order */
	__u32 remote_port;    /* host order */
	__u32 pad;            /* explicit, always 0 */
	__u32 local_ip[4];    /* network order; IPv4 uses [0] and zeroes the rest */
	__u32 remote_ip[4];
};

/* Where a captured connection was headed: the address the app passed to connect(). */
struct orig_dst {
	__u32 family;         /* AF_INET or AF_INET6 */
	__u16 port;           /* network order, as in a sockaddr */
	__u16 pad;            /* explicit, always 0 */
	__u32 ip[4];          /* network order; IPv4 uses [0] and zeroes the rest */
};

/* The app's socket between connect() and the SYN: its port is not chosen yet, so the record
 * is keyed by the socket's cookie until sockops can re-key it by 4-tuple. */
struct cookie_key {
	__u64 cookie;         /* bpf_get_socket_cookie */
	__u64 netns;          /* bpf_get_netns_cookie */
};

/* Index of each counter in the per-CPU `stats` array. */
enum strait_stat {
	STAT_SOCKETS_ADDED = 0, /* sockops: established socket inserted into the map */
	STAT_SOCKETS_SKIPPED,   /* sockops: established socket left out (not loopback, excluded port) */
	STAT_MSG_REDIRECTED,    /* sk_msg: message handed to the peer socket */
	STAT_MSG_PASSED,        /* sk_msg: peer not in the map, message goes through TCP */
	STAT_CONNECT_CAPTURED,  /* connect4/6: destination rewritten to the sidecar */
	STAT_CONNECT_EXEMPT,    /* connect4/6: left alone because the caller is the sidecar's uid/gid */
	STAT_ORIG_DST_ANSWERED, /* getsockopt: SO_ORIGINAL_DST answered from a capture record */
	STAT_SOCKETS_BULK,      /* sockops: captured socket to a bulk port left on TCP (also counted as skipped) */
	STAT_INBOUND_STEERED,   /* sk_lookup: inbound connection handed to the sidecar's inbound listener */
	STAT_BULK_SWITCHED,     /* sk_msg: a sending socket detected as bulk, switched to TCP for good */
	STAT_MSG_BULK_TCP,      /* sk_msg: message of a switched socket, sent through TCP */
	STAT_BULK_UNMAPPED,     /* sockops: a switched socket taken out of sock_hash (plain TCP socket again) */
	STAT_SIDECAR_CONNECT,   /* connect4/6: a loopback connect by the sidecar's identity, noted for sockops */
	STAT_SIDECAR_UNMAPPED,  /* sockops: a sidecar socket whose peer never joined, taken out at its first ACK */
	STAT_COUNT
};

#define STRAIT_MAX_PORTS 16
#define STRAIT_SOCK_MAP_SIZE 65536
#define STRAIT_MAX_IDS 8            /* exempt uids, and exempt gids */
#define STRAIT_CAPTURE_MAP_SIZE 65536
#define STRAIT_SIDECAR_MAP_SIZE 4096 /* sidecar connects between connect() and ESTABLISHED */

#endif
