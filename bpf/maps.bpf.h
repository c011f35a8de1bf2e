/* The maps both programs use. Each object declares them; the loader makes the second object
 * reuse the first one's maps (bpf_map__reuse_fd) so they are one map in the kernel. */
#ifndef STRAIT_BPF_MAPS_H
#define STRAIT_BPF_MAPS_H

#include "intercept.h"

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, STRAIT_SOCK_MAP_SIZE);
	__type(key, struct sock_key);
	__type(value, __u64);
} sock_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &which);

	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

#endif
