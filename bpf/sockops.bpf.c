// SPDX-License-Identifier: GPL-2.0
/* sockops: on every established TCP connection of the cgroup, put loopback sockets into
 * sock_hash keyed by their own 4-tuple + netns cookie, so redirect.bpf.c can find the peer.
 * With capture on, it also re-keys capture.bpf.c's records from socket cookie to 4-tuple
 * when the app's SYN goes out (the first moment its port is known), and drops them on close.
 * With sidecar_accel, the sidecar's own loopback connects (noted by capture.bpf.c's connect4/6)
 * are accelerated whatever their port, and so is the peer of each when it is in the cgroup. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "capture_maps.bpf.h"
#include "bulk_maps.bpf.h"

#define AF_INET 2
#define AF_INET6 10

/* Load-time settings (set between skeleton open and load; no recompiling per mode). */
/* When port_count > 0, only connections with one end on one of these ports are accelerated
 * (the sidecar's listeners): other loopback traffic keeps plain TCP. */
const volatile __u32 port_count = 0;
const volatile __u16 ports[STRAIT_MAX_PORTS] = {};
/* Connections with one end on one of these ports are never accelerated. */
const volatile __u32 exclude_count = 0;
const volatile __u16 exclude_ports[STRAIT_MAX_PORTS] = {};
/* capture.bpf.c is attached as well: move its records (see capture_maps.bpf.h). */
const volatile __u32 capture = 0;
/* Captured connections whose original destination port is one of these keep plain TCP on the
 * app-to-sidecar hop: with both ends on one CPU, bulk streams of small writes lose up to half
 * their throughput in sock_hash (README, "Sockmap and bulk transfers"). redirect.bpf.c's bulk
 * detector does the same per socket at run time, without a port list. */
const volatile __u32 bulk_count = 0;
const volatile __u16 bulk_ports[STRAIT_MAX_PORTS] = {};
/* redirect.bpf.c's bulk detector is on: accelerated sockets ask for state callbacks (their
 * bulk_state entry goes when they close) and RTT callbacks (a switched socket leaves sock_hash
 * at its first ACK; until it sends through TCP no ACK comes, so this costs redirected traffic
 * nothing). */
const volatile __u32 bulk_detect = 0;
/* capture.bpf.c notes the sidecar's loopback connects in sidecar_conn: accelerate them. */
const volatile __u32 sidecar_accel = 0;

/* The peer an accelerated sidecar socket waits for, keyed by the peer's own view (the passive
 * end: an app or upstream listening in this netns). Lives from the sidecar socket's ESTABLISHED
 * to the peer's, which on loopback comes right after it; when the listener is outside the
 * cgroup the peer never comes, and the entry goes at the sidecar socket's first ACK or close.
 * LRU bounds whatever is missed. A stale entry could only admit an in-cgroup socket with that
 * exact 4-tuple and netns, whose peer is then not in sock_hash: its sends still pass to TCP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STRAIT_SIDECAR_MAP_SIZE);
	__type(key, struct sock_key);
	__type(value, __u32);
} sidecar_peer SEC(".maps");

static __always_inline int in_list(__u32 n, const volatile __u16 *list, __u32 a, __u32 b)
{
	/* Bounded loop over a constant: the verifier accepts it and n is known after load. */
	for (int i = 0; i < STRAIT_MAX_PORTS; i++) {
		if (i >= n)
			break;
		if (list[i] == a || list[i] == b)
			return 1;
	}
	return 0;
}

static __always_inline int is_loopback4(__u32 ip)
{
	return (bpf_ntohl(ip) >> 24) == 127;
}

/* The socket's own view of its connection, IPv4-mapped addresses keyed as IPv4. */
static __always_inline int tuple_key(struct bpf_sock_ops *skops, __u32 family, struct sock_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->local_port = skops->local_port;
	key->remote_port = bpf_ntohl(skops->remote_port);
	if (family == AF_INET) {
		key->family = AF_INET;
		key->local_ip[0] = skops->local_ip4;
		key->remote_ip[0] = skops->remote_ip4;
	} else if (family == AF_INET6) {
		__u32 l0 = skops->local_ip6[0], l1 = skops->local_ip6[1];
		__u32 l2 = skops->local_ip6[2], l3 = skops->local_ip6[3];
		__u32 r0 = skops->remote_ip6[0], r1 = skops->remote_ip6[1];
		__u32 r2 = skops->remote_ip6[2], r3 = skops->remote_ip6[3];

		if (v4_mapped(l0, l1, l2) && v4_mapped(r0, r1, r2)) {
			key->family = AF_INET;
			key->local_ip[0] = l3;
			key->remote_ip[0] = r3;
		} else {
			key->family = AF_INET6;
			key->local_ip[0] = l0, key->local_ip[1] = l1, key->local_ip[2] = l2, key->local_ip[3] = l3;
			key->remote_ip[0] = r0, key->remote_ip[1] = r1, key->remote_ip[2] = r2, key->remote_ip[3] = r3;
		}
	} else {
		return 0;
	}
	key->netns = bpf_get_netns_cookie(skops);
	return 1;
}

/* The same connection seen from the other end. */
static __always_inline void reverse_key(const struct sock_key *in, struct sock_key *out)
{
	__builtin_memset(out, 0, sizeof(*out));
	out->netns = in->netns;
	out->family = in->family;
	out->local_port = in->remote_port;
	out->remote_port = in->local_port;
	for (int i = 0; i < 4; i++) {
		out->local_ip[i] = in->remote_ip[i];
		out->remote_ip[i] = in->local_ip[i];
	}
}

/* The socket is the sidecar's own loopback connect (capture.bpf.c noted its cookie at connect()).
 * The note is taken either way: it is only needed once. */
static __always_inline int sidecar_socket(struct bpf_sock_ops *skops)
{
	struct cookie_key ck;

	__builtin_memset(&ck, 0, sizeof(ck));
	ck.cookie = bpf_get_socket_cookie(skops);
	ck.netns = bpf_get_netns_cookie(skops);
	if (!bpf_map_lookup_elem(&sidecar_conn, &ck))
		return 0;
	bpf_map_delete_elem(&sidecar_conn, &ck);
	return 1;
}

/* The passive end of an accelerated sidecar connection: its key was left by the sidecar's end. */
static __always_inline int sidecar_peer_socket(const struct sock_key *key)
{
	if (!bpf_map_lookup_elem(&sidecar_peer, key))
		return 0;
	bpf_map_delete_elem(&sidecar_peer, key);
	return 1;
}

/* An ACK on an accelerated sidecar socket: it sent through TCP. If its peer still has not joined,
 * it is outside the cgroup and never will: leave the map, so this socket stops paying the sk_msg
 * send path for nothing. Safe to drop its psock: only its peer could have redirected into it,
 * and the peer has no psock. Returns 1 when it did. */
static __always_inline int sidecar_unmap(struct bpf_sock_ops *skops, __u32 family)
{
	struct sock_key key, peer;

	if (!tuple_key(skops, family, &key))
		return 0;
	reverse_key(&key, &peer);
	if (!bpf_map_lookup_elem(&sidecar_peer, &peer))
		return 0;
	bpf_map_delete_elem(&sidecar_peer, &peer);
	if (bpf_map_delete_elem(&sock_hash, &key) == 0)
		count(STAT_SIDECAR_UNMAPPED);
	__u32 flags = skops->bpf_sock_ops_cb_flags;

	bpf_sock_ops_cb_flags_set(skops, flags & ~BPF_SOCK_OPS_RTT_CB_FLAG);
	return 1;
}

/* TCP_CONNECT_CB: the SYN is about to leave, so the app's port is chosen. A captured socket's
 * record moves to orig_by_tuple, where getsockopt on the sidecar's accepted socket finds it. */
static __always_inline void capture_rekey(struct bpf_sock_ops *skops, __u32 family)
{
	struct cookie_key ck;

	__builtin_memset(&ck, 0, sizeof(ck));
	ck.cookie = bpf_get_socket_cookie(skops);
	ck.netns = bpf_get_netns_cookie(skops);
	struct orig_dst *found = bpf_map_lookup_elem(&orig_by_cookie, &ck);
	if (!found)
		return;
	struct orig_dst od = *found;
	struct sock_key key;

	if (tuple_key(skops, family, &key) && bpf_map_update_elem(&orig_by_tuple, &key, &od, BPF_ANY) == 0) {
		__u32 flags = skops->bpf_sock_ops_cb_flags;

		/* Ask for state changes on this socket only, to delete the record when it closes. */
		bpf_sock_ops_cb_flags_set(skops, flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	}
	bpf_map_delete_elem(&orig_by_cookie, &ck);
}

/* The socket belongs to a captured connection to one of bulk_ports. The record is keyed by the
 * app's view (local = app): the app's socket (active side) finds it with its own tuple, the
 * sidecar's accepted socket (passive side) with the tuple swapped. */
static __always_inline int bulk_connection(struct bpf_sock_ops *skops, __u32 family, int passive)
{
	struct sock_key key;

	if (!tuple_key(skops, family, &key))
		return 0;
	if (passive) {
		struct sock_key app;

		__builtin_memset(&app, 0, sizeof(app));
		app.netns = key.netns;
		app.family = key.family;
		app.local_port = key.remote_port;
		app.remote_port = key.local_port;
		for (int i = 0; i < 4; i++) {
			app.local_ip[i] = key.remote_ip[i];
			app.remote_ip[i] = key.local_ip[i];
		}
		key = app;
	}
	struct orig_dst *od = bpf_map_lookup_elem(&orig_by_tuple, &key);

	if (!od)
		return 0;
	__u16 port = bpf_ntohs(od->port);
	return in_list(bulk_count, bulk_ports, port, port);
}

/* An ACK on an accelerated socket: it sent through TCP. If the bulk detector switched it, take it
 * out of sock_hash so it sends as a plain TCP socket (tcp_bpf_sendmsg costs as much as the
 * redirect it replaced), unless its peer ever sent through the verdict: dropping the socket's
 * psock would drop what that peer may have queued in its ingress. The ordering argument is in
 * redirect.bpf.c (bulk_on_tcp). Either way this socket's RTT callbacks end here. */
static __always_inline void bulk_unmap(struct bpf_sock_ops *skops, __u32 family)
{
	struct sock_key key, conn;

	if (!tuple_key(skops, family, &key))
		return;
	int side = bulk_canonical(&key, &conn);
	struct bulk_conn *c = bpf_map_lookup_elem(&bulk_state, &conn);

	if (!c)
		return;
	struct bulk_dir *d = side ? &c->dir[1] : &c->dir[0];
	struct bulk_dir *other = side ? &c->dir[0] : &c->dir[1];

	if (!d->on_tcp)
		return; /* passing because its peer is not in the map: may still switch later */
	/* A fully ordered read (fetch-add of 0), paired with the peer's add-then-check. */
	if (__sync_fetch_and_add(&other->sent, 0) == 0 && bpf_map_delete_elem(&sock_hash, &key) == 0)
		count(STAT_BULK_UNMAPPED);
	__u32 flags = skops->bpf_sock_ops_cb_flags;

	bpf_sock_ops_cb_flags_set(skops, flags & ~BPF_SOCK_OPS_RTT_CB_FLAG);
}

SEC("sockops")
int strait_sockops(struct bpf_sock_ops *skops)
{
	/* clang 14 may otherwise re-read ctx fields with offsets the verifier rejects:
	 * read each field exactly once into a local. */
	__u32 op = skops->op;
	__u32 family = skops->family;

	if (capture && op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		capture_rekey(skops, family);
		return 1;
	}
	if ((capture || bulk_detect || sidecar_accel) && op == BPF_SOCK_OPS_STATE_CB) {
		/* Only captured or accelerated sockets asked for this callback. args[1] is the new state. */
		__u32 state = skops->args[1];
		struct sock_key key, conn;

		if (state == BPF_TCP_CLOSE && tuple_key(skops, family, &key)) {
			if (capture)
				bpf_map_delete_elem(&orig_by_tuple, &key);
			/* The first end to close removes the connection's entry; the socket has left
			 * sock_hash by then, so nothing redirects to it any more. */
			if (bulk_detect) {
				bulk_canonical(&key, &conn);
				bpf_map_delete_elem(&bulk_state, &conn);
			}
			/* A sidecar socket whose peer never came (a miss costs one lookup). */
			if (sidecar_accel) {
				reverse_key(&key, &conn);
				bpf_map_delete_elem(&sidecar_peer, &conn);
			}
		}
		return 1;
	}
	if ((bulk_detect || sidecar_accel) && op == BPF_SOCK_OPS_RTT_CB) {
		if (sidecar_accel && sidecar_unmap(skops, family))
			return 1;
		if (bulk_detect) {
			bulk_unmap(skops, family);
		} else {
			__u32 flags = skops->bpf_sock_ops_cb_flags;

			bpf_sock_ops_cb_flags_set(skops, flags & ~BPF_SOCK_OPS_RTT_CB_FLAG);
		}
		return 1;
	}
	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;

	/* Taken before the loopback check, so a note never outlives its socket's ESTABLISHED. */
	int sidecar = sidecar_accel && op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && sidecar_socket(skops);
	struct sock_key key;
	__builtin_memset(&key, 0, sizeof(key));
	key.family = family;
	key.local_port = skops->local_port;              /* host order already */
	key.remote_port = bpf_ntohl(skops->remote_port); /* network order in the upper 16 bits */

	if (family == AF_INET) {
		__u32 lip = skops->local_ip4;
		__u32 rip = skops->remote_ip4;

		if (!is_loopback4(lip) || !is_loopback4(rip))
			goto skip;
		key.local_ip[0] = lip;
		key.remote_ip[0] = rip;
	} else if (family == AF_INET6) {
		__u32 l0 = skops->local_ip6[0], l1 = skops->local_ip6[1];
		__u32 l2 = skops->local_ip6[2], l3 = skops->local_ip6[3];
		__u32 r0 = skops->remote_ip6[0], r1 = skops->remote_ip6[1];
		__u32 r2 = skops->remote_ip6[2], r3 = skops->remote_ip6[3];

		/* ::1 on both ends only. */
		if (l0 | l1 | l2 | r0 | r1 | r2 || l3 != bpf_htonl(1) || r3 != bpf_htonl(1))
			goto skip;
		key.local_ip[3] = l3;
		key.remote_ip[3] = r3;
	} else {
		return 1;
	}

	key.netns = bpf_get_netns_cookie(skops);
	/* The sidecar's own connection, either end, is accelerated whatever its ports. */
	int own = sidecar || (sidecar_accel && op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && sidecar_peer_socket(&key));

	if (port_count && !own && !in_list(port_count, ports, key.local_port, key.remote_port))
		goto skip;
	if (exclude_count && in_list(exclude_count, exclude_ports, key.local_port, key.remote_port))
		goto skip;
	if (capture && bulk_count && bulk_connection(skops, family, op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)) {
		count(STAT_SOCKETS_BULK);
		goto skip;
	}

	/* A full map only costs the acceleration: the connection stays on TCP. */
	if (bpf_sock_hash_update(skops, &sock_hash, &key, BPF_ANY) == 0) {
		count(STAT_SOCKETS_ADDED);
		if (sidecar) {
			struct sock_key peer;
			__u32 one = 1;
			__u32 flags = skops->bpf_sock_ops_cb_flags;

			/* Before the peer's ESTABLISHED: our ACK, which completes it, is not sent yet. The
			 * callbacks let the entry go at close or at the first ACK (peer outside the cgroup). */
			reverse_key(&key, &peer);
			bpf_map_update_elem(&sidecar_peer, &peer, &one, BPF_ANY);
			bpf_sock_ops_cb_flags_set(skops, flags | BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG);
		}
		if (bulk_detect) {
			struct sock_key conn;
			__u32 flags = skops->bpf_sock_ops_cb_flags;

			bpf_sock_ops_cb_flags_set(skops, flags | BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG);
			/* The active end is established before either end can send: an entry for this
			 * 4-tuple now is a leftover of an earlier connection (a missed close) and must
			 * not hand its on_tcp to this one. */
			if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
				bulk_canonical(&key, &conn);
				bpf_map_delete_elem(&bulk_state, &conn);
			}
		}
	}
	return 1;
skip:
	count(STAT_SOCKETS_SKIPPED);
	return 1;
}

char LICENSE[] SEC("license") = "GPL"; /* the sockmap helpers are GPL-only */
