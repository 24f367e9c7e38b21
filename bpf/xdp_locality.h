/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lblc and lblcr: the kernel's locality-based schedulers (ip_vs_lblc.c,
 * ip_vs_lblcr.c). A table keyed by (service, destination address) keeps
 * the server (lblc) or the set of servers (lblcr) that address was last
 * given; wlc over the service's list (lc_step) chooses when the table
 * has none that can take the connection. Included by xdp_lb.c after
 * lc_step.
 *
 * How it differs from the kernel, which serializes the whole choice under
 * a lock and ages its table with a timer:
 *   - the table is an LRU hash (MAX_LOCALITY entries for all services):
 *     a full table forgets the least recently used address, where the
 *     kernel drops entries idle for 6 minutes once it holds 16384; an
 *     entry idle for LOC_EXPIRY (the kernel's lblc_expiration default,
 *     24 h) counts as absent, where the kernel's collector drops it within
 *     the next 30 minutes;
 *   - an lblcr set keeps at most LOC_SET servers: adding one more drops
 *     the one added first (the kernel's set grows without bound, but only
 *     while all its members are overloaded);
 *   - CPUs update an entry without a lock: two connections for one
 *     address at the same moment may both see the old server.
 */
#ifndef GVS_XDP_LOCALITY_H
#define GVS_XDP_LOCALITY_H

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_LOCALITY);
	__type(key, struct locality_key);
	__type(value, struct locality_val);
} locality SEC(".maps");

/* usable is the test the kernel puts a remembered server to before the
 * overload check: in service (of this service) with a weight above 0. */
static __always_inline struct dest_info *loc_usable(__u32 idx, __u32 svc)
{
	struct dest_info *d = bpf_map_lookup_elem(&dests, &idx);
	if (!d || !(d->flags & DEST_F_AVAILABLE) || d->weight <= 0 || d->svc != svc)
		return 0;
	return d;
}

static __always_inline struct dest_load *load_of(__u32 idx)
{
	return bpf_map_lookup_elem(&loads, &idx);
}

static __always_inline __s64 overhead(struct dest_load *l)
{
	return (l->active << 8) + l->inactive;
}

/* half_step looks for a server of the list below half its weight in
 * active connections (is_overloaded's second half): found = 1. */
static long half_step(__u32 i, struct walk *w)
{
	struct list_entry e;
	int rc = list_entry(w, i, &e);
	if (rc)
		return rc > 0;
	if (e.l->active * 2 < (__s64)e.d->weight) {
		w->found = 1;
		return 1;
	}
	return 0;
}

/* loc_overloaded is the kernel's is_overloaded: more active connections
 * than weight while some server of the service is below half of its. */
static __always_inline int loc_overloaded(struct svc_info *s, __u32 idx, struct dest_info *d)
{
	struct dest_load *l = load_of(idx);
	if (!l || l->active <= (__s64)d->weight)
		return 0;
	struct walk w = {.svc = s->index, .gen = s->gen, .len = s->tab_len, .found = 0};
	bpf_loop(MAX_SVC_DESTS, half_step, &w, 0);
	return w.found;
}

/* loc_wlc is __ip_vs_lblc_schedule (and lblcr's): wlc over the list. */
static __always_inline __u32 loc_wlc(struct svc_info *s)
{
	struct walk w = {.svc = s->index, .gen = s->gen, .len = s->tab_len, .found = NO_DEST, .kind = SCHED_WLC};
	bpf_loop(MAX_SVC_DESTS, lc_step, &w, 0);
	return w.found;
}

/* set_min is ip_vs_dest_set_min: wlc over the set's members that are not
 * over their upper threshold, available and of weight above 0. */
static __always_inline __u32 set_min(struct locality_val *v, __u32 svc)
{
	__u32 least = NO_DEST;
	__s64 loh = 0, lw = 0;
	__u32 n = v->n < LOC_SET ? v->n : LOC_SET;
#pragma unroll
	for (int i = 0; i < LOC_SET; i++) {
		if (i >= n)
			continue;
		__u32 idx = v->set[i];
		struct dest_info *d = loc_usable(idx, svc);
		struct dest_load *l = load_of(idx);
		if (!d || !l || l->overloaded)
			continue;
		__s64 doh = overhead(l), dw = d->weight;
		if (least == NO_DEST || loh * dw > doh * lw) {
			least = idx;
			loh = doh;
			lw = dw;
		}
	}
	return least;
}

/* set_erase_max is ip_vs_dest_set_max and ip_vs_dest_set_erase: the
 * member with the highest overhead per weight (of weight above 0) goes. */
static __always_inline void set_erase_max(struct locality_val *v, __u32 svc)
{
	int most = -1;
	__s64 moh = 0, mw = 0;
	__u32 n = v->n < LOC_SET ? v->n : LOC_SET;
#pragma unroll
	for (int i = 0; i < LOC_SET; i++) {
		if (i >= n)
			continue;
		__u32 idx = v->set[i];
		struct dest_info *d = bpf_map_lookup_elem(&dests, &idx);
		struct dest_load *l = load_of(idx);
		if (!d || !l || d->weight <= 0)
			continue;
		__s64 doh = overhead(l), dw = d->weight;
		if (most < 0 || moh * dw < doh * mw) {
			most = i;
			moh = doh;
			mw = dw;
		}
	}
	if (most < 0)
		return;
#pragma unroll
	for (int i = 0; i < LOC_SET - 1; i++)
		if (i >= most)
			v->set[i] = v->set[i + 1];
	v->n = n - 1;
}

/* set_insert puts idx first in the set unless it is a member already. */
static __always_inline void set_insert(struct locality_val *v, __u32 idx, __u32 now)
{
	__u32 n = v->n < LOC_SET ? v->n : LOC_SET;
#pragma unroll
	for (int i = 0; i < LOC_SET; i++)
		if (i < n && v->set[i] == idx)
			return;
#pragma unroll
	for (int i = LOC_SET - 1; i > 0; i--)
		v->set[i] = v->set[i - 1];
	v->set[0] = idx;
	v->n = n < LOC_SET ? n + 1 : LOC_SET;
	v->last_mod = now;
}

/* locality_schedule chooses for lblc and lblcr, or returns NO_DEST. */
static __noinline __u32 locality_schedule(struct svc_info *s, struct pkt *p)
{
	struct locality_key k = {.svc = s->index};
	__u32 now = bpf_ktime_get_coarse_ns() >> CONN_CLOCK_SHIFT;
	__u32 idx;
	struct dest_info *d;

#pragma unroll
	for (int i = 0; i < 4; i++)
		k.addr[i] = p->daddr[i];
	struct locality_val *v = bpf_map_lookup_elem(&locality, &k);
	if (v && (__s32)(now - v->last_use) >= LOC_EXPIRY)
		v = 0; /* idle too long: as if the collector had dropped it */

	if (s->sched == SCHED_LBLC) {
		if (v) {
			v->last_use = now;
			idx = v->set[0];
			d = loc_usable(idx, s->index);
			if (d && !loc_overloaded(s, idx, d))
				return idx;
		}
		idx = loc_wlc(s);
		if (idx == NO_DEST)
			return NO_DEST;
		if (v) {
			v->set[0] = idx;
			v->n = 1;
		} else {
			struct locality_val nv = {.last_use = now, .last_mod = now, .n = 1};
			nv.set[0] = idx;
			bpf_map_update_elem(&locality, &k, &nv, BPF_ANY);
		}
		return idx;
	}

	/* lblcr */
	if (!v) {
		idx = loc_wlc(s);
		if (idx == NO_DEST)
			return NO_DEST;
		struct locality_val nv = {.last_use = now, .last_mod = now, .n = 1};
		nv.set[0] = idx;
		bpf_map_update_elem(&locality, &k, &nv, BPF_ANY);
		return idx;
	}
	v->last_use = now;
	idx = set_min(v, s->index);
	if (v->n > 1 && (__s32)(now - v->last_mod) > LOC_EXPIRY) {
		set_erase_max(v, s->index);
		v->last_mod = now;
	}
	if (idx != NO_DEST) {
		d = bpf_map_lookup_elem(&dests, &idx);
		if (d && !loc_overloaded(s, idx, d))
			return idx;
	}
	idx = loc_wlc(s);
	if (idx == NO_DEST)
		return NO_DEST;
	set_insert(v, idx, now);
	return idx;
}

#endif
