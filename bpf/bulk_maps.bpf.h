/* Per-connection state of the bulk detector (redirect.bpf.c), shared with sockops.bpf.c, which
 * takes switched sockets out of sock_hash and deletes entries when a socket closes. The loader
 * makes both objects use one kernel map. */
#ifndef STRAIT_BPF_BULK_MAPS_H
#define STRAIT_BPF_BULK_MAPS_H

#include "intercept.h"

/* One direction of a connection: the current run of sends with no send from the other side. */
struct bulk_dir {
	__u64 run_start;  /* bpf_ktime_get_ns of the run's first message */
	__u64 run_bytes;
	__u64 sent;       /* messages this end ever sent through the verdict (atomic) */
	__u64 on_tcp;     /* set once this direction is switched to TCP; never cleared (atomic;
			   * 64-bit because clang's default BPF target has no 32-bit fetch-or) */
	__u32 run_msgs;
	__u32 pad;
};

/* Keyed by the connection's lower end (see canonical() in redirect.bpf.c): dir[0] is what that
 * end sends, dir[1] what the other end sends. One entry, so a send can end the other side's run. */
struct bulk_conn {
	struct bulk_dir dir[2];
};

/* A plain hash, not LRU: an evicted entry would forget on_tcp and let a switched socket redirect
 * again, which reorders its stream (redirect.bpf.c). A full map only means no detection for new
 * connections. Entries go when either end closes (sockops state callback). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STRAIT_SOCK_MAP_SIZE / 2);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sock_key);
	__type(value, struct bulk_conn);
} bulk_state SEC(".maps");

/* The key of the entry both ends use: the view of the end with the lower (port, address). */
static __always_inline int bulk_canonical(const struct sock_key *own, struct sock_key *out)
{
	int lower = own->local_port < own->remote_port ||
		    (own->local_port == own->remote_port && own->local_ip[0] <= own->remote_ip[0] &&
		     own->local_ip[3] <= own->remote_ip[3]);

	__builtin_memset(out, 0, sizeof(*out));
	out->netns = own->netns;
	out->family = own->family;
	if (lower) {
		out->local_port = own->local_port;
		out->remote_port = own->remote_port;
		for (int i = 0; i < 4; i++) {
			out->local_ip[i] = own->local_ip[i];
			out->remote_ip[i] = own->remote_ip[i];
		}
		return 0;
	}
	out->local_port = own->remote_port;
	out->remote_port = own->local_port;
	for (int i = 0; i < 4; i++) {
		out->local_ip[i] = own->remote_ip[i];
		out->remote_ip[i] = own->local_ip[i];
	}
	return 1;
}

#endif
