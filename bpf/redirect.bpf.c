// SPDX-License-Identifier: GPL-2.0
/* sk_msg: a send on a socket in sock_hash goes straight into the peer socket's receive queue
 * (BPF_F_INGRESS), skipping the TCP/IP stack. No peer in the map: SK_PASS, plain TCP.
 *
 * Bulk detection: every write of a socket in sock_hash goes through tcp_bpf_sendmsg, and with
 * both ends on one CPU a stream of small writes loses up to 40% of its throughput that way,
 * redirected or not (README, "Sockmap and bulk transfers"). So a sending direction that streams
 * a lot in small messages is switched to plain TCP, for good, and then leaves the map. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "bulk_maps.bpf.h"

/* Load-time settings (set between skeleton open and load); any of them 0 turns detection off,
 * and the verifier then drops its code. A direction is switched once it has sent at least
 * bulk_bytes in one run: messages within bulk_window_ns of the run's first one, with no
 * message from the other end in between, averaging under bulk_max_msg bytes. The "no reply"
 * part keeps request/response traffic redirected however fast it goes (4 KiB round trips
 * through Strait reach ~110 MB/s a direction, above a plain 1 MiB / 10 ms rate). */
const volatile __u64 bulk_bytes = 0;
const volatile __u64 bulk_window_ns = 0;
const volatile __u32 bulk_max_msg = 0;

/* Returns 1 when this message must go through TCP because its direction was switched.
 *
 * Why the switch is one-way: data redirected before it sits in the peer's psock ingress queue,
 * and tcp_bpf_recvmsg (net/ipv4/tcp_bpf.c) reads the TCP receive queue only while that ingress
 * queue is empty. A redirect is queued before the sending sendmsg returns, so every byte sent
 * through TCP afterwards is read after all redirected bytes: the stream stays in order. Going
 * back to redirect would queue new data in ingress ahead of TCP data not read yet, and the
 * reader would get it first. So on_tcp is never cleared, and the entry holding it is only
 * deleted when the connection closes (sockops.bpf.c).
 *
 * SK_PASS alone does not win the throughput back: a socket in sock_hash still sends through
 * tcp_bpf_sendmsg (copy into an sk_msg, verdict, push), measured as slow as the redirect for
 * 4 KiB writes. So sockops later takes the switched socket out of sock_hash, which gives it
 * plain TCP again; that drops its psock and with it anything queued in its own ingress, so it
 * is done only when the peer never sent through the verdict. The two sides agree without a
 * lock: the switching end sets on_tcp, then sockops reads the peer's `sent`; the peer adds to
 * `sent`, then reads on_tcp (atomics, fully ordered). Either sockops sees the peer has spoken
 * (the socket stays in the map) or the peer sees on_tcp before its first redirect and moves
 * its own direction to TCP for good (nothing of it was redirected, so order holds). */
static __always_inline int bulk_on_tcp(struct sk_msg_md *msg, const struct sock_key *peer)
{
	struct sock_key own, key;

	__builtin_memset(&own, 0, sizeof(own));
	own.netns = peer->netns;
	own.family = peer->family;
	own.local_port = peer->remote_port;
	own.remote_port = peer->local_port;
	own.local_ip[0] = peer->remote_ip[0];
	own.remote_ip[0] = peer->local_ip[0];
	own.local_ip[3] = peer->remote_ip[3];
	own.remote_ip[3] = peer->local_ip[3];
	int side = bulk_canonical(&own, &key);

	struct bulk_conn *c = bpf_map_lookup_elem(&bulk_state, &key);
	if (!c) {
		struct bulk_conn zero;

		__builtin_memset(&zero, 0, sizeof(zero));
		/* NOEXIST: the other end may have created it on another CPU meanwhile. A full map
		 * leaves this connection undetected (redirected), which is always correct. */
		bpf_map_update_elem(&bulk_state, &key, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&bulk_state, &key);
		if (!c)
			return 0;
	}
	/* Constant indices: the verifier checks each access without a bounds dance. */
	struct bulk_dir *d = side ? &c->dir[1] : &c->dir[0];
	struct bulk_dir *other = side ? &c->dir[0] : &c->dir[1];

	if (d->on_tcp)
		return 1;
	if (__sync_fetch_and_add(&d->sent, 1) == 0 && other->on_tcp) {
		/* First message of this end, and the peer already switched: it may be leaving the
		 * map (see above), so never redirect to it. */
		__sync_fetch_and_or(&d->on_tcp, 1);
		count(STAT_BULK_SWITCHED);
		return 1;
	}
	/* The other end spoke: its run (request/response, not a stream) starts over. The other
	 * end writes this slot under its own socket lock, so a race may lose one reset or one
	 * count; that only delays or hastens a switch, never breaks ordering. */
	other->run_bytes = 0;
	other->run_msgs = 0;

	__u64 now = bpf_ktime_get_ns();
	__u32 size = msg->size;

	if (d->run_msgs == 0 || now - d->run_start > bulk_window_ns) {
		d->run_start = now;
		d->run_bytes = 0;
		d->run_msgs = 0;
	}
	d->run_bytes += size;
	d->run_msgs += 1;
	/* Average below bulk_max_msg, without a division: bytes < max * msgs. Large writes gain
	 * under sk_msg (1.9x at 64 KiB), so they stay redirected. */
	if (d->run_bytes >= bulk_bytes && d->run_bytes < (__u64)bulk_max_msg * d->run_msgs) {
		__sync_fetch_and_or(&d->on_tcp, 1);
		count(STAT_BULK_SWITCHED);
		return 1;
	}
	return 0;
}

SEC("sk_msg")
int strait_redirect(struct sk_msg_md *msg)
{
	__u32 family = msg->family;
	struct sock_key peer;

	__builtin_memset(&peer, 0, sizeof(peer));
	/* The peer's key is our key seen from the other end: swap local and remote. */
	peer.family = family;
	peer.local_port = bpf_ntohl(msg->remote_port); /* network order in the upper 16 bits */
	peer.remote_port = msg->local_port;
	if (family == 2 /* AF_INET */) {
		peer.local_ip[0] = msg->remote_ip4;
		peer.remote_ip[0] = msg->local_ip4;
	} else {
		/* sockops only inserts ::1 <-> ::1 */
		peer.local_ip[3] = msg->remote_ip6[3];
		peer.remote_ip[3] = msg->local_ip6[3];
	}
	peer.netns = bpf_get_netns_cookie(msg);

	if (bulk_bytes && bulk_window_ns && bulk_max_msg && bulk_on_tcp(msg, &peer)) {
		count(STAT_MSG_BULK_TCP);
		return SK_PASS;
	}

	/* bpf_msg_redirect_hash returns SK_DROP when the key is missing; turn that into SK_PASS
	 * so a socket whose peer is not accelerated still talks TCP. */
	if (bpf_msg_redirect_hash(msg, &sock_hash, &peer, BPF_F_INGRESS) == SK_PASS) {
		count(STAT_MSG_REDIRECTED);
		return SK_PASS;
	}
	count(STAT_MSG_PASSED);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
