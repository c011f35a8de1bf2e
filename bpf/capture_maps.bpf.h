/* Capture records, shared by capture.bpf.c and sockops.bpf.c (the loader makes both objects use
 * one kernel map each, as with maps.bpf.h). A record lives in orig_by_cookie from connect() to
 * the SYN (sockops TCP_CONNECT_CB), then in orig_by_tuple until the app's socket closes. */
#ifndef STRAIT_BPF_CAPTURE_MAPS_H
#define STRAIT_BPF_CAPTURE_MAPS_H

#include "intercept.h"

/* LRU: a connect() that fails before the SYN never reaches sockops, so nothing deletes its
 * record; the LRU bound makes such leftovers harmless. Entries live microseconds otherwise. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct cookie_key);
	__type(value, struct orig_dst);
} orig_by_cookie SEC(".maps");

/* Keyed by the app's own view of the connection (local = app, remote = sidecar), the same
 * layout as sock_hash keys. Entries are deleted when the app's socket closes, so no prealloc. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STRAIT_CAPTURE_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sock_key);
	__type(value, struct orig_dst);
} orig_by_tuple SEC(".maps");

/* The sidecar's own connects to loopback (its upstreams and the local app), by socket cookie,
 * from connect() until sockops sees the socket established and accelerates it. connect() runs
 * in the caller's task, the only place the sidecar's uid/gid can be checked; sockops may run in
 * softirq. LRU for the same reason as orig_by_cookie: a failed connect leaves its entry, and
 * cookies are never reused, so a leftover can only age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STRAIT_SIDECAR_MAP_SIZE);
	__type(key, struct cookie_key);
	__type(value, __u32);
} sidecar_conn SEC(".maps");

/* ::ffff:a.b.c.d, a v4 connection on an AF_INET6 socket: keyed as IPv4 so both ends agree
 * whichever family each socket has. */
static __always_inline int v4_mapped(__u32 w0, __u32 w1, __u32 w2)
{
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff);
}

#endif
