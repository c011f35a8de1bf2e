// SPDX-License-Identifier: GPL-2.0
/* Transparent capture without iptables, for the processes of one cgroup:
 *   cgroup/connect4, cgroup/connect6  an app's TCP connect() to a non-local address goes to the
 *                                     sidecar's outbound listener instead; the address it asked
 *                                     for is recorded under the socket's cookie.
 *                                     A connect of the sidecar's identity to a loopback
 *                                     address is noted (sidecar_conn) so sockops accelerates
 *                                     that hop too (sidecar_accel; capture may be off).
 *   cgroup/getsockopt                 SO_ORIGINAL_DST on the sidecar's accepted socket answers
 *                                     that address, as conntrack does after an iptables REDIRECT,
 *                                     so the listener's use_original_dst path works unchanged.
 *   cgroup/getpeername4, 6            the app's getpeername() shows that address too, so the
 *                                     rewrite stays as invisible to the app as a NAT.
 *   sk_lookup (inbound)               a connection arriving from another host to one of the
 *                                     app's ports is accepted by the sidecar's inbound listener
 *                                     instead; its local address stays the app's, so getsockname
 *                                     tells the sidecar where it was going. Per network namespace.
 * sockops.bpf.c re-keys the record by 4-tuple in between (see capture_maps.bpf.h). Unlike a
 * REDIRECT, both ends then see the same loopback 4-tuple, so sockmap acceleration still works. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "capture_maps.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h; IP6T_SO_ORIGINAL_DST has the same value */

/* Load-time settings (set between skeleton open and load). */
const volatile __u16 outbound_port = 0; /* host order: where captured connects go */
/* The sidecar's own identity: its upstream connects must reach the real destination. */
const volatile __u32 exempt_uid_count = 0;
const volatile __u32 exempt_uids[STRAIT_MAX_IDS] = {};
const volatile __u32 exempt_gid_count = 0;
const volatile __u32 exempt_gids[STRAIT_MAX_IDS] = {};
/* Destination ports never captured. */
const volatile __u32 exclude_count = 0;
const volatile __u16 exclude_ports[STRAIT_MAX_PORTS] = {};
/* Note the sidecar's loopback connects for sockops (see sidecar_conn in capture_maps.bpf.h). */
const volatile __u32 sidecar_accel = 0;
/* sk_lookup: the app's ports whose inbound connections go to the sidecar's inbound listener. */
const volatile __u32 inbound_count = 0;
const volatile __u16 inbound_ports[STRAIT_MAX_PORTS] = {};

/* The sidecar's inbound listening socket, put here by the loader (slot 0). The map holds a
 * reference; when the sidecar closes the socket it leaves the map and lookups pass again. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} inbound_listener SEC(".maps");

static __always_inline int in_ids(__u32 n, const volatile __u32 *list, __u32 id)
{
	for (int i = 0; i < STRAIT_MAX_IDS; i++) {
		if (i >= n)
			break;
		if (list[i] == id)
			return 1;
	}
	return 0;
}

static __always_inline int excluded(__u16 port)
{
	for (int i = 0; i < STRAIT_MAX_PORTS; i++) {
		if (i >= exclude_count)
			break;
		if (exclude_ports[i] == port)
			return 1;
	}
	return 0;
}

/* The caller is the sidecar (or another exempt identity). Credentials are the calling task's:
 * connect() runs in the process that owns the socket. */
static __always_inline int exempt(void)
{
	__u64 ug = bpf_get_current_uid_gid();

	return in_ids(exempt_uid_count, exempt_uids, (__u32)ug) || in_ids(exempt_gid_count, exempt_gids, (__u32)(ug >> 32));
}

/* A TCP connect by the sidecar to this host (`port` in network order): remembered by cookie, so
 * sockops accelerates the socket once established and lets its peer join when it is in the
 * cgroup. Only the sidecar's connects: other processes' loopback traffic keeps its way. */
static __always_inline void note_sidecar(struct bpf_sock_addr *ctx, __u16 port)
{
	__u32 type = ctx->type;
	__u32 protocol = ctx->protocol;
	struct cookie_key ck;
	__u32 one = 1;

	if (!sidecar_accel || type != SOCK_STREAM || protocol != IPPROTO_TCP)
		return;
	if (excluded(bpf_ntohs(port)) || !exempt())
		return;
	__builtin_memset(&ck, 0, sizeof(ck));
	ck.cookie = bpf_get_socket_cookie(ctx);
	ck.netns = bpf_get_netns_cookie(ctx);
	if (bpf_map_update_elem(&sidecar_conn, &ck, &one, BPF_ANY) == 0)
		count(STAT_SIDECAR_CONNECT);
}

/* Decides whether to capture a TCP connect to `port` (network order); 0 leaves it alone. */
static __always_inline int should_capture(struct bpf_sock_addr *ctx, __u16 port)
{
	__u32 type = ctx->type;
	__u32 protocol = ctx->protocol;

	if (type != SOCK_STREAM || protocol != IPPROTO_TCP || !outbound_port)
		return 0;
	if (excluded(bpf_ntohs(port)))
		return 0;
	if (exempt()) {
		count(STAT_CONNECT_EXEMPT);
		return 0;
	}
	return 1;
}

/* Records where the socket was going; without a record the sidecar could not tell, so a
 * failure (map full) leaves the connect alone rather than capture it blind. */
static __always_inline int record(struct bpf_sock_addr *ctx, struct orig_dst *od)
{
	struct cookie_key ck;

	__builtin_memset(&ck, 0, sizeof(ck));
	ck.cookie = bpf_get_socket_cookie(ctx);
	ck.netns = bpf_get_netns_cookie(ctx);
	if (bpf_map_update_elem(&orig_by_cookie, &ck, od, BPF_ANY) != 0)
		return 0;
	count(STAT_CONNECT_CAPTURED);
	return 1;
}

/* 127.0.0.0/8 and 0.0.0.0 are this host: local services (the sidecar included). */
static __always_inline int local4(__u32 ip)
{
	return ip == 0 || (bpf_ntohl(ip) >> 24) == 127;
}

SEC("cgroup/connect4")
int strait_connect4(struct bpf_sock_addr *ctx)
{
	__u32 ip = ctx->user_ip4;
	__u16 port = (__u16)ctx->user_port; /* network order in the low 16 bits */
	struct orig_dst od;

	if (local4(ip)) {
		note_sidecar(ctx, port);
		return 1;
	}
	if (!should_capture(ctx, port))
		return 1;
	__builtin_memset(&od, 0, sizeof(od));
	od.family = AF_INET;
	od.port = port;
	od.ip[0] = ip;
	if (!record(ctx, &od))
		return 1;
	ctx->user_ip4 = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons(outbound_port);
	return 1;
}

SEC("cgroup/connect6")
int strait_connect6(struct bpf_sock_addr *ctx)
{
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
	__u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
	__u16 port = (__u16)ctx->user_port;
	struct orig_dst od;

	__builtin_memset(&od, 0, sizeof(od));
	od.port = port;
	if (v4_mapped(a0, a1, a2)) {
		/* A dual-stack socket reaching an IPv4 address: the sidecar's IPv4 listener. */
		if (local4(a3)) {
			note_sidecar(ctx, port);
			return 1;
		}
		if (!should_capture(ctx, port))
			return 1;
		od.family = AF_INET;
		od.ip[0] = a3;
		if (!record(ctx, &od))
			return 1;
		ctx->user_ip6[3] = bpf_htonl(0x7f000001);
	} else {
		/* :: and ::1 are this host. */
		if ((a0 | a1 | a2) == 0 && (a3 == 0 || a3 == bpf_htonl(1))) {
			note_sidecar(ctx, port);
			return 1;
		}
		if (!should_capture(ctx, port))
			return 1;
		od.family = AF_INET6;
		od.ip[0] = a0, od.ip[1] = a1, od.ip[2] = a2, od.ip[3] = a3;
		if (!record(ctx, &od))
			return 1;
		/* [::1]:outbound_port: the sidecar's outbound listener must accept IPv6 there (a
		 * listener on :: does), as with an ip6tables REDIRECT. */
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	ctx->user_port = bpf_htons(outbound_port);
	return 1;
}

/* The app's own view of its connection: the key its record has in orig_by_tuple. */
static __always_inline void app_key(struct bpf_sock *sk, struct sock_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->local_port = sk->src_port;
	key->remote_port = bpf_ntohs(sk->dst_port);
}

SEC("cgroup/getpeername4")
int strait_getpeername4(struct bpf_sock_addr *ctx)
{
	__u32 ip = ctx->user_ip4;
	__u16 port = (__u16)ctx->user_port;

	/* Only a peer of 127.0.0.1:outbound_port can be a captured connection. */
	if (ip != bpf_htonl(0x7f000001) || port != bpf_htons(outbound_port))
		return 1;
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;
	struct sock_key key;

	app_key(sk, &key);
	key.family = AF_INET;
	key.local_ip[0] = sk->src_ip4;
	key.remote_ip[0] = ip;
	key.netns = bpf_get_netns_cookie(ctx);
	struct orig_dst *od = bpf_map_lookup_elem(&orig_by_tuple, &key);
	if (!od || od->family != AF_INET)
		return 1;
	ctx->user_ip4 = od->ip[0];
	ctx->user_port = od->port;
	return 1;
}

SEC("cgroup/getpeername6")
int strait_getpeername6(struct bpf_sock_addr *ctx)
{
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
	__u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
	__u16 port = (__u16)ctx->user_port;
	int mapped = v4_mapped(a0, a1, a2);

	if (port != bpf_htons(outbound_port))
		return 1;
	if (mapped ? a3 != bpf_htonl(0x7f000001) : (a0 | a1 | a2) != 0 || a3 != bpf_htonl(1))
		return 1;
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;
	struct sock_key key;

	app_key(sk, &key);
	if (mapped) {
		key.family = AF_INET;
		key.local_ip[0] = sk->src_ip6[3];
		key.remote_ip[0] = a3;
	} else {
		key.family = AF_INET6;
		key.local_ip[0] = sk->src_ip6[0];
		key.local_ip[1] = sk->src_ip6[1];
		key.local_ip[2] = sk->src_ip6[2];
		key.local_ip[3] = sk->src_ip6[3];
		key.remote_ip[3] = a3;
	}
	key.netns = bpf_get_netns_cookie(ctx);
	struct orig_dst *od = bpf_map_lookup_elem(&orig_by_tuple, &key);
	if (!od)
		return 1;
	if (od->family == AF_INET) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = od->ip[0];
	} else {
		ctx->user_ip6[0] = od->ip[0];
		ctx->user_ip6[1] = od->ip[1];
		ctx->user_ip6[2] = od->ip[2];
		ctx->user_ip6[3] = od->ip[3];
	}
	ctx->user_port = od->port;
	return 1;
}

SEC("cgroup/getsockopt")
int strait_getsockopt(struct bpf_sockopt *ctx)
{
	int level = ctx->level;
	int optname = ctx->optname;

	/* Every getsockopt of the cgroup comes here: leave all others at once. */
	if (optname != SO_ORIGINAL_DST || (level != SOL_IP && level != SOL_IPV6)) {
		/* Only the first page of a larger buffer is visible here; optlen 0 tells the kernel
		 * to keep its own answer (some kernels fail the call with EFAULT otherwise). */
		if (ctx->optlen > 4096)
			ctx->optlen = 0;
		return 1;
	}
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;

	/* The sidecar's accepted socket; the record is keyed by the app's view: swap ends. */
	struct sock_key key;
	__u32 family = sk->family;

	__builtin_memset(&key, 0, sizeof(key));
	key.local_port = bpf_ntohs(sk->dst_port);
	key.remote_port = sk->src_port;
	if (family == AF_INET) {
		key.family = AF_INET;
		key.local_ip[0] = sk->dst_ip4;
		key.remote_ip[0] = sk->src_ip4;
	} else if (family == AF_INET6) {
		__u32 d0 = sk->dst_ip6[0], d1 = sk->dst_ip6[1], d2 = sk->dst_ip6[2], d3 = sk->dst_ip6[3];
		__u32 s0 = sk->src_ip6[0], s1 = sk->src_ip6[1], s2 = sk->src_ip6[2], s3 = sk->src_ip6[3];

		if (v4_mapped(d0, d1, d2) && v4_mapped(s0, s1, s2)) {
			key.family = AF_INET;
			key.local_ip[0] = d3;
			key.remote_ip[0] = s3;
		} else {
			key.family = AF_INET6;
			key.local_ip[0] = d0, key.local_ip[1] = d1, key.local_ip[2] = d2, key.local_ip[3] = d3;
			key.remote_ip[0] = s0, key.remote_ip[1] = s1, key.remote_ip[2] = s2, key.remote_ip[3] = s3;
		}
	} else {
		return 1;
	}
	key.netns = bpf_get_netns_cookie(ctx);

	struct orig_dst *od = bpf_map_lookup_elem(&orig_by_tuple, &key);
	if (!od)
		return 1; /* not captured here: the kernel's own answer (conntrack, or an error) stands */

	if (level == SOL_IP) {
		struct sockaddr_in *sa = ctx->optval;

		if (od->family != AF_INET || (void *)(sa + 1) > ctx->optval_end)
			return 1;
		__builtin_memset(sa, 0, sizeof(*sa));
		sa->sin_family = AF_INET;
		sa->sin_port = od->port;
		sa->sin_addr.s_addr = od->ip[0];
		ctx->optlen = sizeof(*sa);
	} else {
		struct sockaddr_in6 *sa = ctx->optval;

		if ((void *)(sa + 1) > ctx->optval_end)
			return 1;
		__builtin_memset(sa, 0, sizeof(*sa));
		sa->sin6_family = AF_INET6;
		sa->sin6_port = od->port;
		if (od->family == AF_INET) {
			/* An IPv4 destination asked about on an IPv6 socket: the mapped form. */
			sa->sin6_addr.in6_u.u6_addr32[2] = bpf_htonl(0xffff);
			sa->sin6_addr.in6_u.u6_addr32[3] = od->ip[0];
		} else {
			sa->sin6_addr.in6_u.u6_addr32[0] = od->ip[0];
			sa->sin6_addr.in6_u.u6_addr32[1] = od->ip[1];
			sa->sin6_addr.in6_u.u6_addr32[2] = od->ip[2];
			sa->sin6_addr.in6_u.u6_addr32[3] = od->ip[3];
		}
		ctx->optlen = sizeof(*sa);
	}
	ctx->retval = 0;
	count(STAT_ORIG_DST_ANSWERED);
	return 1;
}

SEC("sk_lookup")
int strait_inbound(struct bpf_sk_lookup *ctx)
{
	__u32 protocol = ctx->protocol;
	__u32 family = ctx->family;
	__u16 port = (__u16)ctx->local_port; /* host order */
	int wanted = 0;

	if (protocol != IPPROTO_TCP)
		return SK_PASS;
	for (int i = 0; i < STRAIT_MAX_PORTS; i++) {
		if (i >= inbound_count)
			break;
		if (inbound_ports[i] == port)
			wanted = 1;
	}
	if (!wanted)
		return SK_PASS;
	/* Connections from this host (the sidecar forwarding to the app, local clients) keep their
	 * way: their source is one of our addresses, so it equals the destination or is loopback. */
	if (family == AF_INET) {
		__u32 src = ctx->remote_ip4, dst = ctx->local_ip4;

		if (src == dst || (bpf_ntohl(src) >> 24) == 127)
			return SK_PASS;
	} else if (family == AF_INET6) {
		__u32 s0 = ctx->remote_ip6[0], s1 = ctx->remote_ip6[1], s2 = ctx->remote_ip6[2], s3 = ctx->remote_ip6[3];
		__u32 d0 = ctx->local_ip6[0], d1 = ctx->local_ip6[1], d2 = ctx->local_ip6[2], d3 = ctx->local_ip6[3];

		if ((s0 == d0 && s1 == d1 && s2 == d2 && s3 == d3) || (!(s0 | s1 | s2) && s3 == bpf_htonl(1)))
			return SK_PASS;
	} else {
		return SK_PASS;
	}
	__u32 zero = 0;
	struct bpf_sock *sk = bpf_map_lookup_elem(&inbound_listener, &zero);

	if (!sk)
		return SK_PASS; /* no sidecar listening: the app gets the connection */
	long err = bpf_sk_assign(ctx, sk, 0);

	bpf_sk_release(sk);
	if (err == 0)
		count(STAT_INBOUND_STEERED);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
