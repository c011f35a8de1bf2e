// SPDX-License-Identifier: GPL-2.0
/* sk_msg: a send on a socket in sock_hash goes straight into the peer socket's receive queue
 * (BPF_F_INGRESS), skipping the TCP/IP stack. No peer in the map: SK_PASS, plain TCP. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"

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
