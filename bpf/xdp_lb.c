//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xdp_lb: the GVS XDP data plane for direct routing (DR, ipvsadm -g) and
 * tunnelling (TUN, ipvsadm -i: IPIP / IPv6-in-IPv6, GUE and GRE).
 *
 * Parsing: Ethernet with up to two VLAN tags (802.1Q / 802.1ad), IPv4 with
 * options (ihl), IPv6 with TCP or UDP as the first next header, TCP and UDP.
 * What this program does not handle it leaves to the kernel, untouched:
 *   - any packet that is not TCP or UDP over IPv4/IPv6 (XDP_PASS);
 *   - IPv6 packets whose first next header is not TCP or UDP (extension
 *     headers are not chased) (XDP_PASS);
 *   - IPv4 fragments (MF set or a fragment offset): the ports are not in
 *     every fragment, so they go to the stack (XDP_PASS);
 *   - truncated or malformed headers (XDP_PASS);
 *   - packets for no virtual service (XDP_PASS);
 *   - TCP packets of no known connection that are not a SYN without ACK:
 *     they are never scheduled (XDP_PASS, the local stack answers them as
 *     it would without GVS).
 * A new connection for which no real server is available is refused as
 * IPVS refuses it (ip_vs_leave): an ICMP or ICMPv6 port unreachable from
 * the virtual address back to the client, TCP and UDP alike.
 *
 * Go (internal/engine/xdp) owns everything slow: it fills the maps,
 * expires connections, corrects the per-server counters and reads stats.
 */
#include "include/gvs_bpf.h"
#include "xdp_lb.h"
#include "xdp_vlan.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SERVICES * 2);
	__type(key, struct svc_key);
	__type(value, struct svc_info);
} services SEC(".maps");

/* The firewall-mark classifier: Go compiles the user's iptables MARK
 * rules (internal/fwmark) into an LPM trie of marks and puts it in the
 * one slot of fwm, swapping a whole new trie in on a reload. The slot is
 * empty while no firewall-mark service exists. */
struct fwm_trie {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_FWM_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct fwm_key));
	__uint(value_size, sizeof(__u32));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct fwm_trie);
} fwm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_DESTS);
	__type(key, __u32);
	__type(value, struct dest_info);
} dests SEC(".maps");

/* Live connection counters of each real server (lc family, overload). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_DESTS);
	__type(key, __u32);
	__type(value, struct dest_load);
} loads SEC(".maps");

/* Scheduler tables: two generations per service (index * 2 + gen), each
 * an array map of its own, in chunks of TAB_CHUNK slots, which Go creates
 * with as many chunks as the table needs (BPF_F_INNER_MAP lets their
 * sizes differ; the template's is the largest). A missing table or slot
 * schedules nothing. */
struct sched_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TAB_SIZE / TAB_CHUNK);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u32[TAB_CHUNK]);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, MAX_SERVICES * 2);
	__type(key, __u32);
	__array(values, struct sched_table);
} tables SEC(".maps");

/* rr/wrr cursors, one per service (CUR_* in xdp_lb.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u64);
} cursors SEC(".maps");

/* Connections: IPv6 ones in conns, IPv4 ones in conns4 (a 16-byte key
 * hashes faster); conn_lookup, conn_insert and conn_delete choose. One
 * LRU list for all CPUs: BPF_F_NO_COMMON_LRU (a list per CPU) measured
 * slower here when one CPU takes the new connections (750 vs 690 ns per
 * DR SYN on a full table), and it gives each CPU only its share of the
 * entries. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_CONNS);
	__type(key, struct conn_key);
	__type(value, struct conn_val);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_CONNS);
	__type(key, struct conn_key4);
	__type(value, struct conn_val);
} conns4 SEC(".maps");

/* The IPv6 table's lookup and insert are functions of their own: were
 * both tables' calls in one function, the compiler would merge them into
 * one call whose map the verifier cannot tell, and such a call is
 * neither inlined nor direct (it measured slower than the 40-byte key). */
static __noinline struct conn_val *conn_find6(const struct conn_key *k)
{
	return bpf_map_lookup_elem(&conns, k);
}

static __noinline long conn_add6(const struct conn_key *k, const struct conn_val *v)
{
	return bpf_map_update_elem(&conns, k, v, BPF_NOEXIST);
}

/* conn_find and conn_add take the key as the table of family has it: a
 * struct conn_key4 for IPv4, else a struct conn_key. */
static __always_inline struct conn_val *conn_find(const void *k, __u8 family)
{
	if (family == AF_INET)
		return bpf_map_lookup_elem(&conns4, k);
	return conn_find6(k);
}

static __always_inline long conn_add(const void *k, __u8 family, const struct conn_val *v)
{
	if (family == AF_INET)
		return bpf_map_update_elem(&conns4, k, v, BPF_NOEXIST);
	return conn_add6(k, v);
}

static __always_inline void conn_key4_of(struct conn_key4 *k4, const struct conn_key *k)
{
	k4->saddr = k->saddr[0];
	k4->daddr = k->daddr[0];
	k4->sport = k->sport;
	k4->dport = k->dport;
	k4->proto = k->proto;
}

/* conn_lookup and conn_insert take a struct conn_key of either family. */
static __always_inline struct conn_val *conn_lookup(const struct conn_key *k)
{
	if (k->family == AF_INET) {
		struct conn_key4 k4 = {};
		conn_key4_of(&k4, k);
		return bpf_map_lookup_elem(&conns4, &k4);
	}
	return conn_find6(k);
}

static __always_inline long conn_insert(const struct conn_key *k, const struct conn_val *v)
{
	if (k->family == AF_INET) {
		struct conn_key4 k4 = {};
		conn_key4_of(&k4, k);
		return bpf_map_update_elem(&conns4, &k4, v, BPF_NOEXIST);
	}
	return conn_add6(k, v);
}

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_PERSIST);
	__type(key, struct persist_key);
	__type(value, struct persist_val);
} persist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct stats);
} svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_DESTS);
	__type(key, __u32);
	__type(value, struct stats);
} dest_stats SEC(".maps");

/* Why packets were not forwarded, counted per CPU (enum drop_reason). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REASON_MAX);
	__type(key, enum drop_reason);
	__type(value, __u64);
} reasons SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} cfg SEC(".maps");

/* Egress interfaces other than the ingress one, by ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

/* Room for a new connection's entry while it is made (slot 0) and for a
 * NAT connection's reply entry (slot 1, nat_setup): the BPF stack is
 * small. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct conn_val);
} scratch SEC(".maps");

/* nat_icmp's FIB lookup (see there), as words: bpf2go cannot describe
 * struct bpf_fib_lookup's anonymous unions. */
struct fib_buf {
	__u64 w[sizeof(struct bpf_fib_lookup) / 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fib_buf);
} fib_scratch SEC(".maps");

struct pkt {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport; /* network order */
	__u16 dport; /* network order */
	__u8 proto;
	__u8 family;
	__u8 tcp_flags; /* TCPF_* */
	__u8 tos;
	__u16 l3off;   /* offset of the IP header */
	__u16 l3len;   /* IP packet length (header + payload) */
	__u16 ihl;     /* IPv4 header length in bytes; 40 for IPv6 */
	__u16 l4hl;    /* TCP header length in bytes (doff * 4); 8 for UDP */
	__u8 seed;     /* NAT: the L4 checksum field holds a pseudo-header seed
	                * that stays one (csum_prepare in xdp_nat.h) */
};

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

static __always_inline void count(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&reasons, &reason);
	if (n)
		*n += 1;
}

/* len16 reads a 16-bit length field for packet pointer arithmetic.
 * Verifiers up to 6.12 (Debian 12's 6.1 and its backports' 6.12) know
 * nothing of a byte swap's result, and clang drops a plain "& 0xffff" as
 * redundant; the mask behind the barrier is what bounds it for them. */
static __always_inline __u32 len16(__be16 v)
{
	__u32 n = bpf_ntohs(v);
	asm volatile("" : "+r"(n));
	return n & 0xffff;
}

/* parse fills p from the packet; it returns 0 when the packet is a TCP or
 * UDP packet this program may handle, else the reason it is not. */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 off;
	__u16 proto;
	void *l4;

	if (skip_vlans(data, end, &proto, &off))
		return REASON_MALFORMED;
	p->l3off = off;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;
		if ((void *)(ip + 1) > end)
			return REASON_MALFORMED;
		if (ip->version != 4 || ip->ihl < 5)
			return REASON_MALFORMED;
		__u32 ihl = ip->ihl * 4;
		__u32 tot = len16(ip->tot_len);
		if (tot < ihl || data + off + tot > end)
			return REASON_MALFORMED;
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return REASON_FRAGMENT;
		p->family = AF_INET;
		p->saddr[0] = ip->saddr;
		p->daddr[0] = ip->daddr;
		p->saddr[1] = p->saddr[2] = p->saddr[3] = 0;
		p->daddr[1] = p->daddr[2] = p->daddr[3] = 0;
		p->proto = ip->protocol;
		p->tos = ip->tos;
		p->ihl = ihl;
		p->l3len = tot;
		l4 = data + off + ihl;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > end)
			return REASON_MALFORMED;
		if (ip6->version != 6)
			return REASON_MALFORMED;
		__u32 tot = len16(ip6->payload_len) + sizeof(*ip6);
		if (data + off + tot > end)
			return REASON_MALFORMED;
		p->family = AF_INET6;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			p->saddr[i] = ip6->saddr[i];
			p->daddr[i] = ip6->daddr[i];
		}
		p->proto = ip6->nexthdr;
		p->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		p->ihl = sizeof(*ip6);
		p->l3len = tot;
		l4 = (void *)(ip6 + 1);
	} else {
		return REASON_NOT_IP;
	}

	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end)
			return REASON_MALFORMED;
		p->sport = th->source;
		p->dport = th->dest;
		p->l4hl = th->doff * 4;
		p->tcp_flags = (th->fin ? TCPF_FIN : 0) | (th->syn ? TCPF_SYN : 0) |
			       (th->rst ? TCPF_RST : 0) | (th->ack ? TCPF_ACK : 0);
	} else if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > end)
			return REASON_MALFORMED;
		p->sport = uh->source;
		p->dport = uh->dest;
		p->l4hl = sizeof(*uh);
		p->tcp_flags = 0;
	} else {
		return REASON_NOT_L4;
	}
	return 0;
}

/* The kernel's hash_32 of v, to 8 bits. */
static __always_inline __u32 hash32_8(__u32 v)
{
	return (v * GOLDEN_RATIO_32) >> 24;
}

/* addr_fold in host order: the IPv4 address, or the XOR of the words of an
 * IPv6 address. */
static __always_inline __u32 addr_fold(const __u32 *a, __u8 family)
{
	if (family == AF_INET)
		return bpf_ntohl(a[0]);
	return bpf_ntohl(a[0] ^ a[1] ^ a[2] ^ a[3]);
}

static __always_inline __u64 rotl(__u64 x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                       \
	do {                                                                           \
		v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);              \
		v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                 \
		v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                 \
		v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);              \
	} while (0)

/* The kernel's 64-bit hsiphash_1u32 (SipHash-1-3 truncated to 32 bits)
 * with the key {k, k}, which ip_vs_mh uses. */
static __always_inline __u32 hsiphash_u32(__u64 k, __u32 v)
{
	__u64 v0 = 0x736f6d6570736575ULL ^ k;
	__u64 v1 = 0x646f72616e646f6dULL ^ k;
	__u64 v2 = 0x6c7967656e657261ULL ^ k;
	__u64 v3 = 0x7465646279746573ULL ^ k;
	__u64 m = (4ULL << 56) | v;

	v3 ^= m;
	SIPROUND;
	v0 ^= m;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return (__u32)(v0 ^ v1 ^ v2 ^ v3);
}

static __always_inline __u32 *table_slot(__u32 svc, __u32 gen, __u32 i)
{
	__u32 key = svc * 2 + (gen & 1);
	void *tab = bpf_map_lookup_elem(&tables, &key);
	if (!tab)
		return 0;
	__u32 chunk = i / TAB_CHUNK;
	__u32 *slots = bpf_map_lookup_elem(tab, &chunk);
	if (!slots)
		return 0;
	return &slots[i % TAB_CHUNK];
}

/* eligible is the schedulers' usual test: in service, weight above 0 and
 * not overloaded. It returns the dest_info or NULL. */
static __always_inline struct dest_info *eligible(__u32 idx)
{
	struct dest_info *d = bpf_map_lookup_elem(&dests, &idx);
	if (!d || !(d->flags & DEST_F_AVAILABLE) || d->weight <= 0)
		return 0;
	struct dest_load *l = bpf_map_lookup_elem(&loads, &idx);
	if (l && l->overloaded)
		return 0;
	return d;
}

struct walk {
	__u32 svc;
	__u32 gen;
	__u32 len;
	__u32 start;
	__u32 found;
	__u32 fold;
	__u32 port;
	__u32 kind;
	/* least-loaded search */
	__s64 loh;
	__s64 lw;
};

/*
 * rr and wrr: the kernel's ip_vs_wrr_schedule over the service's list
 * (rr is the same walk with mw = di = cw = 1: one lap from the server
 * after the cursor, ending on it). A pass looks for the next server from
 * the cursor on whose weight is at least cw; at the end of the list cw
 * goes down by di, and below 1 back to mw. internal/sched's weightedRR is
 * the reference, with its skip-ahead: passes at a cw above the heaviest
 * server that can be picked (top) find nothing, so cw drops past them at
 * once. Here top is known after a full pass that found nothing, the
 * first pass the kernel would repeat.
 *
 * wrr_step i looks at position (start + i) mod (n + 1) of the list, where
 * position n ends a pass: a walk is at most about 3n + 4 steps. (The
 * position comes from i, not from a counter kept in struct wrr_walk: the
 * verifier would follow such a counter value by value.)
 */
struct wrr_walk {
	__u32 svc;
	__u32 gen;   /* the table the cursor walks (table_slot) */
	__u32 n;
	__u32 start; /* the position after the cursor */
	__s32 mw;
	__s32 di;
	__s32 cl;    /* position chosen; -1 the list head */
	__s32 cw;
	__s32 last;  /* where the walk started */
	__s32 stop;  /* the position that ends the last lap, once stopping */
	__s32 top;   /* heaviest weight that may be picked; -1 unknown */
	__s32 pass_top;
	__u32 found;
	__u8 full;   /* this pass started at the list head */
	__u8 last_pass;
	__u8 restarted;
	__u8 stopping;
	__u8 done;
};

static long wrr_step(__u32 i, struct wrr_walk *w)
{
	__u32 pos = (w->start + i) % (w->n + 1);

	if (pos < w->n) {
		__u32 *slot = table_slot(w->svc, w->gen, WRR_HDR + pos);
		if (!slot)
			return 1;
		__u32 idx = *slot;
		struct dest_info *d = bpf_map_lookup_elem(&dests, &idx);
		struct dest_load *l = bpf_map_lookup_elem(&loads, &idx);
		if (d && (d->flags & DEST_F_AVAILABLE) && !(l && l->overloaded)) {
			if (d->weight >= w->cw) {
				w->cl = pos;
				w->found = idx;
				w->done = 1;
				return 1;
			}
			if (d->weight > w->pass_top)
				w->pass_top = d->weight;
		}
		if (w->stopping && pos == (__u32)w->stop) {
			w->cl = pos;
			w->done = 1;
			return 1;
		}
		return 0;
	}
	/* The end of the list: the next pass, at a lower cw. */
	if (w->full)
		w->top = w->pass_top;
	w->full = 1;
	w->pass_top = 0;
	w->cw -= w->di;
	if (w->cw <= 0) {
		w->cw = w->mw;
		if (w->last_pass || w->last == -1) {
			w->cl = -1;
			w->done = 1;
			return 1;
		}
		w->restarted = 1;
	}
	if (w->top >= 0) {
		__s32 floor = w->top > w->di ? w->top : w->di;
		if (w->cw > floor) {
			/* Unsigned: cw > floor >= di > 0. */
			__u64 di = (__u32)w->di;
			__u64 passes = ((__u64)(__u32)(w->cw - floor) + di - 1) / di;
			w->cw -= (__s32)(passes * di);
		}
	}
	w->last_pass = w->cw <= w->di;
	if (w->last_pass && w->restarted && w->last != -1) {
		w->stop = w->last;
		w->stopping = 1;
	}
	return 0;
}

struct wrr_try {
	__u64 *cur;
	__u32 svc;
	__u32 found;
};

/* wrr_try_step is one attempt of schedule_wrr: a walk from the cursor as
 * it is now, and a compare-and-swap that moves it past the choice. */
static long wrr_try_step(__u32 i, struct wrr_try *t)
{
	__u64 old = *(volatile __u64 *)t->cur;
	__u32 gen = CUR_GEN(old);
	struct wrr_walk w = {
		.svc = t->svc,
		.gen = gen,
		.cl = CUR_POS(old),
		.cw = CUR_CW(old),
		.top = -1,
		.found = NO_DEST,
	};
	/* The header: n, mw, di, in the table's first chunk. */
	__u32 *h = table_slot(t->svc, gen, 0);
	if (!h)
		return 1;
	__s32 n = h[0];
	w.mw = h[1];
	w.di = h[2];
	if (n <= 0 || n > MAX_WRR_DESTS || w.mw <= 0 || w.di <= 0)
		return 1;
	if (w.cl >= n)
		w.cl = -1;
	w.n = n;
	w.start = w.cl + 1;
	w.last = w.cl;
	w.full = w.start == 0;
	bpf_loop(4 * (n + 1), wrr_step, &w, 0);
	if (!w.done)
		return 1;
	t->found = w.found;
	__u64 next = CUR_MAKE(gen, w.cl, w.cw);
	if (next == old || __sync_val_compare_and_swap(t->cur, old, next) == old)
		return 1;
	return 0;
}

/* schedule_wrr makes one rr/wrr choice and moves the service's cursor
 * past it with a compare-and-swap: another CPU that moved it first makes
 * this one walk again from there, so that concurrent connections get the
 * kernel's sequence (its walk holds a per-service lock). After
 * WRR_TRIES lost races the last choice is taken without moving the
 * cursor. A global function, which the verifier checks once rather than
 * on every path of new_conn that reaches it. */
__noinline __u32 schedule_wrr(__u32 svc)
{
	__u32 key = svc;
	struct wrr_try t = {.svc = svc, .found = NO_DEST};

	t.cur = bpf_map_lookup_elem(&cursors, &key);
	if (!t.cur)
		return NO_DEST;
	bpf_loop(WRR_TRIES, wrr_try_step, &t, 0);
	return t.found;
}

/* swap_cursor moves a service's rr/wrr cursor from a->old to a->new if it
 * is still a->old: Go carries the cursor across a table change with it
 * (BPF_PROG_RUN), so that no connection scheduled meanwhile is lost. It
 * returns 0 when swapped, 1 when the cursor was not a->old. */
SEC("syscall")
int swap_cursor(struct cursor_swap *a)
{
	__u32 key = a->svc;
	__u64 *cur = bpf_map_lookup_elem(&cursors, &key);

	if (!cur)
		return -1;
	return __sync_val_compare_and_swap(cur, a->old, a->new) == a->old ? 0 : 1;
}

static long sh_step(__u32 off, struct walk *w)
{
	__u32 b = (off + w->start + w->start) & (SH_TAB - 1);
	__u32 *slot = table_slot(w->svc, w->gen, b);
	if (!slot || *slot == NO_DEST)
		return 1;
	if (eligible(*slot)) {
		w->found = *slot;
		return 1;
	}
	return 0;
}

static long mh_step(__u32 off, struct walk *w)
{
	__u32 roff = (off + w->start) % MH_TAB;
	__u32 b = hsiphash_u32(MH_KEY1, roff + w->port + w->fold) % MH_TAB;
	__u32 *slot = table_slot(w->svc, w->gen, b);
	if (!slot || *slot == NO_DEST)
		return 1;
	if (eligible(*slot)) {
		w->found = *slot;
		return 1;
	}
	return 0;
}

/* list_entry is the start of a bpf_loop step over the service's list of
 * servers (lc_step, half_step): the i-th server's index, entry and load.
 * It returns 1 when the list has ended (the step returns 1, which ends
 * the loop), -1 when the server is not available (the step goes on to the
 * next one) and 0 with e set otherwise. */
struct list_entry {
	__u32 idx;
	struct dest_info *d;
	struct dest_load *l;
};

static __always_inline int list_entry(struct walk *w, __u32 i, struct list_entry *e)
{
	if (i >= w->len)
		return 1;
	__u32 *slot = table_slot(w->svc, w->gen, i);
	if (!slot)
		return 1;
	e->idx = *slot;
	e->d = bpf_map_lookup_elem(&dests, &e->idx);
	e->l = bpf_map_lookup_elem(&loads, &e->idx);
	if (!e->d || !e->l || !(e->d->flags & DEST_F_AVAILABLE))
		return -1;
	return 0;
}

/* lc_step visits one server of the list for lc, wlc, sed, nq, fo and ovf,
 * keeping the kernel's comparisons (the first of equals wins). */
static long lc_step(__u32 i, struct walk *w)
{
	struct list_entry e;
	int rc = list_entry(w, i, &e);
	if (rc)
		return rc > 0;
	__u32 idx = e.idx;
	struct dest_info *d = e.d;
	struct dest_load *l = e.l;
	if (l->overloaded)
		return 0;
	__s64 dw = d->weight;
	__s64 act = l->active, inact = l->inactive;
	__s64 doh;

	switch (w->kind) {
	case SCHED_LC:
		if (dw <= 0)
			return 0;
		doh = (act << 8) + inact;
		if (w->found == NO_DEST || doh < w->loh) {
			w->found = idx;
			w->loh = doh;
		}
		return 0;
	case SCHED_WLC:
	case SCHED_SED:
		doh = w->kind == SCHED_WLC ? (act << 8) + inact : act + 1;
		if (w->found == NO_DEST) {
			if (dw > 0) {
				w->found = idx;
				w->loh = doh;
				w->lw = dw;
			}
			return 0;
		}
		if (w->loh * dw > doh * w->lw) {
			w->found = idx;
			w->loh = doh;
			w->lw = dw;
		}
		return 0;
	case SCHED_NQ:
		if (dw <= 0)
			return 0;
		if (act == 0) {
			w->found = idx;
			return 1;
		}
		doh = act + 1;
		if (w->found == NO_DEST || w->loh * dw > doh * w->lw) {
			w->found = idx;
			w->loh = doh;
			w->lw = dw;
		}
		return 0;
	case SCHED_FO:
		if (dw > 0 && dw > w->lw) {
			w->found = idx;
			w->lw = dw;
		}
		return 0;
	case SCHED_OVF:
		if (dw <= 0 || act > dw)
			return 0;
		if (w->found == NO_DEST || dw > w->lw) {
			w->found = idx;
			w->lw = dw;
		}
		return 0;
	}
	return 1;
}

#include "xdp_locality.h"

/* schedule picks a real server for a new connection, or NO_DEST. */
static __always_inline __u32 schedule(struct svc_info *s, struct pkt *p)
{
	struct walk w = {
		.svc = s->index,
		.gen = s->gen,
		.len = s->tab_len,
		.found = NO_DEST,
		.kind = s->sched,
	};
	__u32 *slot;

	if (w.len == 0 || w.len > TAB_SIZE)
		return NO_DEST;
	switch ((__u32)s->sched) {
	case SCHED_WRR:
		return schedule_wrr(s->index);
	case SCHED_SH:
		w.fold = addr_fold(p->saddr, p->family);
		if (s->flags & SVC_F_HASH_PORT)
			w.port = bpf_ntohs(p->sport);
		w.start = hash32_8(w.port + w.fold);
		slot = table_slot(w.svc, w.gen, w.start);
		if (!slot || *slot == NO_DEST)
			return NO_DEST;
		if (eligible(*slot))
			return *slot;
		if (!(s->flags & SVC_F_FALLBACK))
			return NO_DEST;
		bpf_loop(SH_TAB, sh_step, &w, 0);
		return w.found;
	case SCHED_DH:
		slot = table_slot(w.svc, w.gen, hash32_8(addr_fold(p->daddr, p->family)));
		if (!slot || *slot == NO_DEST || !eligible(*slot))
			return NO_DEST;
		return *slot;
	case SCHED_MH:
		w.fold = addr_fold(p->saddr, p->family);
		if (s->flags & SVC_F_HASH_PORT)
			w.port = bpf_ntohs(p->sport);
		w.start = hsiphash_u32(MH_KEY1, w.port + w.fold) % MH_TAB;
		slot = table_slot(w.svc, w.gen, w.start);
		if (!slot || *slot == NO_DEST)
			return NO_DEST;
		if (eligible(*slot))
			return *slot;
		if (!(s->flags & SVC_F_FALLBACK))
			return NO_DEST;
		bpf_loop(MH_TAB, mh_step, &w, 0);
		return w.found;
	case SCHED_LC:
	case SCHED_WLC:
	case SCHED_SED:
	case SCHED_NQ:
	case SCHED_FO:
	case SCHED_OVF:
		bpf_loop(MAX_SVC_DESTS, lc_step, &w, 0);
		return w.found;
	case SCHED_LBLC:
	case SCHED_LBLCR:
		return locality_schedule(s, p);
	}
	return NO_DEST;
}

/* bind counts a new connection against its server (ip_vs_bind_dest): new
 * connections are inactive until they are established. */
static __always_inline void bind_dest(__u32 idx, struct dest_info *d)
{
	struct dest_load *l = bpf_map_lookup_elem(&loads, &idx);
	if (!l)
		return;
	__s64 inact = __sync_fetch_and_add(&l->inactive, 1) + 1;
	if (d->uthreshold && (__u64)(inact + l->active) >= d->uthreshold)
		l->overloaded = 1;
}

/* tcp_next is the kernel's "input only" TCP state table (the director
 * sees only the client's half of a DR or TUN connection). */
static __always_inline __u32 tcp_next(__u32 state, __u8 flags)
{
	if (flags & TCPF_RST)
		return state == ST_SYN_RECV ? ST_SYN_RECV : ST_CLOSE;
	if (flags & TCPF_SYN)
		return state == ST_ESTABLISHED ? ST_ESTABLISHED : ST_SYN_RECV;
	if (flags & TCPF_FIN) {
		switch (state) {
		case ST_ESTABLISHED:
		case ST_FIN_WAIT:
			return ST_FIN_WAIT;
		case ST_SYN_RECV:
		case ST_TIME_WAIT:
			return ST_TIME_WAIT;
		}
		return ST_CLOSE;
	}
	if (flags & TCPF_ACK) {
		if (state == ST_SYN_RECV)
			return ST_ESTABLISHED;
		return state;
	}
	return ST_CLOSE;
}

static __always_inline void account(__u32 svc, __u32 dest, __u32 bytes, int new_conn)
{
	struct stats *s = bpf_map_lookup_elem(&svc_stats, &svc);
	if (s) {
		s->conns += new_conn;
		s->pkts += 1;
		s->bytes += bytes;
	}
	s = bpf_map_lookup_elem(&dest_stats, &dest);
	if (s) {
		s->conns += new_conn;
		s->pkts += 1;
		s->bytes += bytes;
	}
}

static __always_inline int egress(struct xdp_md *ctx, __u32 ifindex)
{
	if (ifindex == 0 || ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect_map(&tx_ports, ifindex, 0);
}

#include "xdp_csum.h"

/* forward_dr sends the packet as it came to the real server's MAC (a
 * partial checksum completed first, csum_prepare). */
static __always_inline int forward_dr(struct xdp_md *ctx, struct pkt *p, struct dest_info *d)
{
	if (!(d->flags & DEST_F_HAVE_MAC)) {
		count(REASON_NO_NEIGH);
		return XDP_PASS;
	}
	csum_prepare(ctx, p);
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, d->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, d->smac, ETH_ALEN);
	return egress(ctx, d->ifindex);
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static __always_inline __u16 ipv4_csum(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	return csum_fold(sum);
}

/* flow_hash mixes the inner 5-tuple for the outer source address or the
 * GUE source port, so that receivers spread flows over their queues. */
static __always_inline __u32 flow_hash(struct pkt *p)
{
	__u32 h = p->saddr[0] ^ p->saddr[1] ^ p->saddr[2] ^ p->saddr[3];
	h ^= p->daddr[0] ^ p->daddr[1] ^ p->daddr[2] ^ p->daddr[3];
	h ^= ((__u32)p->sport << 16) | p->dport;
	h ^= p->proto;
	h *= GOLDEN_RATIO_32;
	h ^= h >> 15;
	h *= 0x2c1b3c6d;
	h ^= h >> 12;
	return h;
}

#define IPV6_MIN_MTU 1280
/* How much of the invoking packet a Packet Too Big quotes: what fits in
 * the IPv6 minimum MTU after the IPv6 and ICMPv6 headers (RFC 4443 2.4). */
#define PTB_QUOTE (IPV6_MIN_MTU - 40 - 8)

#define ICMP_QUOTE (576 - 20 - 8) /* what icmp_send quotes at most */
#define REFUSE_MAX 1232           /* the longer of the two quotes, with the ICMP header */

/* csum_tail sums the bytes from p to the end of the frame (at most
 * REFUSE_MAX + 8) as 16-bit words in memory order, an odd last byte
 * padded with zero. */
static __always_inline __u32 csum_tail(void *p, void *end)
{
	__u16 *w = p;
	__u32 sum = 0;
	int i;

	for (i = 0; i < (REFUSE_MAX + 8) / 2; i++) {
		if ((void *)(w + i + 1) > end)
			break;
		sum += w[i];
	}
	__u8 *b = (__u8 *)(w + i);
	asm volatile("" : "+r"(b));
	if ((void *)(b + 1) <= end)
		sum += *b; /* the low byte of a little-endian word */
	return sum;
}

/* icmp4_error turns an IPv4 packet into an ICMP "destination unreachable"
 * with code and next-hop mtu (fragmentation needed; 0 otherwise) from the
 * packet's destination back to its sender, quoting the first quote bytes
 * of the packet, and returns XDP_TX to send it out where it came from;
 * XDP_DROP when the frame cannot be reshaped, -1 when the packet cannot be
 * answered (a tagged frame). The refusal and fragmentation needed share
 * it, as icmp6_error serves IPv6. Not inlined, so that its callers' stack
 * frames stay small (TestLinux61StackDepth). */
static __noinline int icmp4_error(struct xdp_md *ctx, struct pkt *p, __u8 code, __u16 mtu, __u32 quote)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 smac[ETH_ALEN], dmac[ETH_ALEN];

	quote &= 0xffff;
	if (p->l3off != ETH_HLEN || quote > ICMP_QUOTE)
		return -1;
	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(smac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(dmac, eth->h_dest, ETH_ALEN);
	/* [eth][ip][icmp] in front of the packet's IP header. */
	if (bpf_xdp_adjust_head(ctx, -(int)(sizeof(struct iphdr) + sizeof(struct icmphdr))))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	__u32 keep = ETH_HLEN + sizeof(struct iphdr) + sizeof(struct icmphdr) + quote;
	__u32 have = end - data;
	if (have < keep)
		return XDP_DROP;
	if (have > keep && bpf_xdp_adjust_tail(ctx, -(int)(have - keep)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct icmphdr *ic = (void *)(ip + 1);
	if ((void *)(ic + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, smac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, dmac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0xc0 | (p->tos & 0x1e); /* IPTOS_PREC_INTERNETCONTROL | the TOS bits */
	ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*ic) + quote);
	ip->id = bpf_get_prandom_u32();
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = p->daddr[0];
	ip->daddr = p->saddr[0];
	ip->check = ipv4_csum(ip);
	ic->type = 3; /* destination unreachable */
	ic->code = code;
	ic->checksum = 0;
	ic->unused = 0;
	ic->mtu = bpf_htons(mtu);

	__u32 sum = csum_tail(ic, end);
	asm volatile("" : "+r"(ic));
	if ((void *)(ic + 1) > end)
		return XDP_DROP;
	ic->checksum = csum_fold(sum);
	return XDP_TX;
}

/* icmp_too_big turns an IPv4 packet that would exceed the tunnel's MTU
 * into an ICMP "fragmentation needed" back to its sender, with the inner
 * MTU, and sends it out where it came from. Only for untagged frames.
 * It is sent whether or not the packet has DF set: the kernel's IPVS
 * fragments a packet without DF, which XDP cannot, and handing it to the
 * stack would not forward it (no IPVS there). A sender without DF still
 * learns the path MTU from it (Linux keeps it in its route cache and
 * fragments before sending), as with Katran, which does the same. */
static __always_inline int icmp_too_big(struct xdp_md *ctx, struct pkt *p, __u32 mtu)
{
	if (p->ihl > 60 || p->ihl < 20)
		return XDP_DROP;
	int rc = icmp4_error(ctx, p, 4 /* fragmentation needed and DF set */, mtu, p->ihl + 8);
	if (rc == XDP_TX)
		count(REASON_TOO_BIG);
	return rc < 0 ? XDP_DROP : rc;
}

/* icmp6_error turns an IPv6 packet into the ICMPv6 error type/code (with
 * data, the message's second word) from the packet's destination back to
 * its sender, quoting as much of the packet as keeps the message within
 * the IPv6 minimum MTU (RFC 4443 2.4), and returns XDP_TX to send it out
 * where it came from; XDP_DROP when the frame cannot be reshaped, -1 when
 * the packet cannot be answered (a tagged frame, a runt). Packet Too Big
 * and the refusal's port unreachable share it. Not inlined, so that its
 * callers' stack frames stay small (TestLinux61StackDepth). */
static __noinline int icmp6_error(struct xdp_md *ctx, struct pkt *p, __u8 type, __u8 code, __u32 data)
{
	__u32 quote = p->l3len < PTB_QUOTE ? p->l3len : PTB_QUOTE;

	if (p->l3off != ETH_HLEN || quote < sizeof(struct ipv6hdr) + 8)
		return -1;
	/* [eth][ip6][icmp6] in front of the packet's IPv6 header: the old
	 * Ethernet header ends up under the new ip6 and icmp6 headers. */
	if (bpf_xdp_adjust_head(ctx, -(int)(sizeof(struct ipv6hdr) + sizeof(struct icmp6hdr))))
		return XDP_DROP;
	void *start = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 keep = ETH_HLEN + sizeof(struct ipv6hdr) + sizeof(struct icmp6hdr) + quote;
	__u32 have = end - start;
	if (have < keep)
		return XDP_DROP;
	if (have > keep && bpf_xdp_adjust_tail(ctx, -(int)(have - keep)))
		return XDP_DROP;
	start = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = start;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct icmp6hdr *ic = (void *)(ip6 + 1);
	if ((void *)(ic + 1) > end)
		return XDP_DROP;
	/* The old Ethernet header, at the end of the 48 bytes added: read
	 * it before ip6 and ic overwrite it. */
	struct ethhdr *old = (void *)ic + sizeof(*ic) - ETH_HLEN;
	__builtin_memcpy(eth->h_dest, old->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, old->h_dest, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	ip6->version = 6;
	ip6->priority = 0;
	ip6->flow_lbl[0] = 0;
	ip6->flow_lbl[1] = 0;
	ip6->flow_lbl[2] = 0;
	ip6->payload_len = bpf_htons(sizeof(*ic) + quote);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = 64;
	__u32 sum = bpf_htons(sizeof(*ic) + quote) + bpf_htons(IPPROTO_ICMPV6);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		ip6->saddr[i] = p->daddr[i];
		ip6->daddr[i] = p->saddr[i];
		sum += (p->daddr[i] & 0xffff) + (p->daddr[i] >> 16);
		sum += (p->saddr[i] & 0xffff) + (p->saddr[i] >> 16);
	}
	ic->icmp6_type = type;
	ic->icmp6_code = code;
	ic->icmp6_cksum = 0;
	ic->icmp6_data = bpf_htonl(data);

	sum += csum_tail(ic, end);
	asm volatile("" : "+r"(ic));
	if ((void *)(ic + 1) > end)
		return XDP_DROP;
	ic->icmp6_cksum = csum_fold(sum);
	return XDP_TX;
}

/* icmp6_too_big turns an IPv6 packet that would exceed the tunnel's MTU
 * into an ICMPv6 Packet Too Big (RFC 4443 3.2) with mtu (at least the
 * IPv6 minimum, 1280). Only for untagged frames. */
static __always_inline int icmp6_too_big(struct xdp_md *ctx, struct pkt *p, __u32 mtu)
{
	int rc = icmp6_error(ctx, p, 2 /* packet too big */, 0, mtu);
	if (rc == XDP_TX)
		count(REASON_TOO_BIG);
	return rc < 0 ? XDP_DROP : rc;
}

#include "xdp_gre.h"

/* forward_tun prepends the outer IPv4/IPv6 header (and UDP + GUE for GUE,
 * or GRE)
 * and sends the packet to the next hop bpf_fib_lookup finds. The outer
 * family is the real server's; the inner one may differ. */
static __noinline int forward_tun(struct xdp_md *ctx, struct pkt *p, struct dest_info *d)
{
	__u32 zero = 0;
	struct config *conf = bpf_map_lookup_elem(&cfg, &zero);
	struct bpf_fib_lookup fib = {};
	int gue = d->tun_type == TUN_GUE || d->tun_type == TUN_GUE_CSUM;
	int gre = tun_is_gre(d);
	__u32 outer_ip = d->family == AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	__u32 encap = outer_ip + tun_hdr_len(d);
	__u8 inner_proto = p->family == AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
	__u8 outer_proto = gue ? IPPROTO_UDP : gre ? IPPROTO_GRE : inner_proto;
	__u32 h = flow_hash(p);
	__u32 src[4] = {};
	__u32 total = p->l3len + encap;

	if (!conf)
		return XDP_PASS;
	if (total > 0xffff) {
		count(REASON_TOO_BIG);
		return XDP_DROP;
	}
	if (d->family == AF_INET) {
		if (!conf->src4)
			return XDP_PASS;
		src[0] = conf->src4 | (bpf_htonl(h) & conf->src4_hostmask);
		fib.family = AF_INET;
		fib.ipv4_src = src[0];
		fib.ipv4_dst = d->addr[0];
		fib.tot_len = total;
	} else {
		if (!(conf->src6[0] | conf->src6[1] | conf->src6[2] | conf->src6[3]))
			return XDP_PASS;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			src[i] = conf->src6[i];
			fib.ipv6_dst[i] = d->addr[i];
		}
		src[3] |= bpf_htonl(h) & conf->src6_hostmask;
#pragma unroll
		for (int i = 0; i < 4; i++)
			fib.ipv6_src[i] = src[i];
		fib.family = AF_INET6;
		fib.tot_len = total;
	}
	fib.l4_protocol = outer_proto;
	/* An output lookup restricted to the interface Go found the route
	 * on (the ingress one when unknown): it needs no ip_forward. */
	fib.ifindex = d->ifindex ? d->ifindex : ctx->ingress_ifindex;

	/* The next hop Go resolved through netlink (and refreshes every
	 * NeighRefresh) when it has one: a FIB lookup per packet cost more
	 * than the rest of the tunnel's work. The FIB until then; it answers
	 * only where forwarding is on. */
	long rc = BPF_FIB_LKUP_RET_FWD_DISABLED;
	if (!(d->flags & DEST_F_HAVE_MAC))
		rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED) {
		if (!(d->flags & DEST_F_HAVE_MAC)) {
			count(REASON_NO_NEIGH);
			return XDP_PASS;
		}
		__builtin_memcpy(fib.dmac, d->dmac, ETH_ALEN);
		__builtin_memcpy(fib.smac, d->smac, ETH_ALEN);
		fib.ifindex = d->ifindex;
		if (d->mtu && total > d->mtu) {
			rc = BPF_FIB_LKUP_RET_FRAG_NEEDED;
			fib.mtu_result = d->mtu;
		} else {
			rc = BPF_FIB_LKUP_RET_SUCCESS;
		}
	}
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* The sender learns the MTU inside the tunnel: the outer
		 * family is the real server's, the message is the inner's. */
		__u32 mtu = fib.mtu_result;
		if (p->family == AF_INET6)
			return icmp6_too_big(ctx, p, mtu >= encap + IPV6_MIN_MTU ? mtu - encap : IPV6_MIN_MTU);
		if (mtu > encap)
			return icmp_too_big(ctx, p, mtu - encap);
		count(REASON_TOO_BIG);
		return XDP_DROP;
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		count(REASON_NO_NEIGH);
		return XDP_PASS;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		count(REASON_NO_ROUTE);
		return XDP_PASS;
	}

	/* A partial checksum of the inner packet is completed while its
	 * headers are where parse found them. */
	csum_prepare(ctx, p);
	/* Grow the head so that [eth][outer][inner IP...] fits; VLAN tags of
	 * the incoming frame are not kept: the egress is the FIB's. */
	int delta = (int)encap - (int)(p->l3off - ETH_HLEN);
	if (bpf_xdp_adjust_head(ctx, -delta))
		return XDP_DROP;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	struct udphdr *uh;
	if (d->family == AF_INET) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return XDP_DROP;
		eth->h_proto = bpf_htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = p->tos;
		ip->tot_len = bpf_htons(total);
		ip->id = 0;
		ip->frag_off = bpf_htons(IP_DF);
		ip->ttl = 64;
		ip->protocol = outer_proto;
		ip->check = 0;
		ip->saddr = src[0];
		ip->daddr = d->addr[0];
		ip->check = ipv4_csum(ip);
		uh = (void *)(ip + 1);
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return XDP_DROP;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		ip6->version = 6;
		ip6->priority = p->tos >> 4;
		ip6->flow_lbl[0] = (p->tos << 4) | ((h >> 16) & 0x0f);
		ip6->flow_lbl[1] = h >> 8;
		ip6->flow_lbl[2] = h;
		ip6->payload_len = bpf_htons(total - sizeof(*ip6));
		ip6->nexthdr = outer_proto;
		ip6->hop_limit = 64;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			ip6->saddr[i] = src[i];
			ip6->daddr[i] = d->addr[i];
		}
		uh = (void *)(ip6 + 1);
	}
	if (gue) {
		__u8 *gh = (void *)(uh + 1);
		if ((void *)(gh + 4) > end)
			return XDP_DROP;
		uh->source = bpf_htons(GUE_SPORT_MIN | (h & GUE_SPORT_MASK));
		uh->dest = d->tun_port;
		uh->len = bpf_htons(total - outer_ip);
		/* Without --tun-csum a zero checksum, as the kernel sends it:
		 * allowed for IPv4; for IPv6 the receiver must accept zero UDP
		 * checksums on its GUE port (RFC 6935). */
		uh->check = 0;
		/* GUE variant 0, no extension fields, protocol of the inner IP. */
		gh[0] = 0;
		gh[1] = inner_proto;
		gh[2] = 0;
		gh[3] = 0;
		if (d->tun_type == TUN_GUE_CSUM &&
		    gue_csum(ctx, ETH_HLEN + outer_ip, d, p, src, total - outer_ip))
			return XDP_DROP;
	}
	if (gre && gre_fill(ctx, ETH_HLEN + outer_ip, d, p, inner_proto))
		return XDP_DROP;
	return egress(ctx, fib.ifindex);
}

#include "xdp_nat.h"


/* The kernel limits the ICMP errors it sends (icmp_msgs_per_sec and
 * icmp_msgs_burst: 1000 a second, bursts of 50); refusals are limited so
 * on each CPU, so that the program cannot be made a reflector of floods.
 * (The kernel's further limit per client, icmp_ratelimit, is not
 * followed: a client that retries at once is refused every time.) */
#define REFUSE_PER_SEC 1000
#define REFUSE_BURST 50

struct refuse_bucket {
	__u64 last_ns;
	__u64 tokens;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct refuse_bucket);
} refuse_budget SEC(".maps");

static __always_inline int refuse_allowed(void)
{
	__u32 zero = 0;
	struct refuse_bucket *b = bpf_map_lookup_elem(&refuse_budget, &zero);
	if (!b)
		return 0;
	__u64 now = bpf_ktime_get_coarse_ns();
	__u64 add = (now - b->last_ns) / (1000000000ULL / REFUSE_PER_SEC);
	if (add) {
		b->tokens = b->tokens + add > REFUSE_BURST ? REFUSE_BURST : b->tokens + add;
		b->last_ns = now;
	}
	if (!b->tokens)
		return 0;
	b->tokens--;
	return 1;
}

/* refuse4 answers an IPv4 packet with the ICMP port unreachable the
 * kernel's IPVS sends when no real server is available (ip_vs_leave:
 * icmp_send, as for a closed port), quoting the packet up to 576 bytes in
 * all. It returns the verdict, or -1 when it cannot (a tagged frame, a
 * runt). */
static __always_inline int refuse4(struct xdp_md *ctx, struct pkt *p)
{
	__u32 quote = p->l3len < ICMP_QUOTE ? p->l3len : ICMP_QUOTE;

	if (quote < 28)
		return -1;
	return icmp4_error(ctx, p, 3 /* port unreachable */, 0, quote);
}

/* refuse6 is refuse4 for IPv6: an ICMPv6 port unreachable (icmpv6_send),
 * quoting the packet up to the IPv6 minimum MTU. */
static __always_inline int refuse6(struct xdp_md *ctx, struct pkt *p)
{
	return icmp6_error(ctx, p, 1 /* destination unreachable */, 4 /* port unreachable */, 0);
}

/* refuse answers a new connection that no real server can take: a port
 * unreachable for the client (counted REASON_REFUSED), or a drop
 * (REASON_NO_DEST) over the rate limit or where the program cannot build
 * one (a VLAN-tagged frame). */
static __noinline int refuse(struct xdp_md *ctx, struct pkt *p)
{
	int rc = -1;
	if (refuse_allowed())
		rc = p->family == AF_INET ? refuse4(ctx, p) : refuse6(ctx, p);
	if (rc == XDP_TX) {
		count(REASON_REFUSED);
		return XDP_TX;
	}
	count(REASON_NO_DEST);
	return XDP_DROP;
}

/* svc_find is the virtual service of a packet that opens a connection,
 * as ip_vs_service_find picks it: with firewall-mark services, the mark
 * the user's rules give the packet (the classifier stands in for
 * iptables' mangle table, which runs after XDP) selects its service
 * first; without one, the service of the packet's address, protocol and
 * port, else a persistent one on port 0 of its address. NULL: none. */
static __noinline struct svc_info *svc_find(struct pkt *p)
{
	struct svc_key sk = {};
	struct svc_info *s;
	__u32 zero = 0;
	void *trie = bpf_map_lookup_elem(&fwm, &zero);

	if (trie) {
		struct fwm_key fk = {};
		fk.prefixlen = p->family == AF_INET ? 64 : 160;
		fk.proto = p->proto;
		fk.family = p->family;
		fk.port = p->dport;
#pragma unroll
		for (int i = 0; i < 4; i++)
			fk.addr[i] = p->daddr[i];
		__u32 *mark = bpf_map_lookup_elem(trie, &fk);
		if (!mark) {
			fk.port = 0;
			mark = bpf_map_lookup_elem(trie, &fk);
		}
		if (mark && *mark) {
			sk.addr[0] = *mark;
			sk.family = p->family;
			s = bpf_map_lookup_elem(&services, &sk);
			if (s)
				return s;
		}
	}
#pragma unroll
	for (int i = 0; i < 4; i++)
		sk.addr[i] = p->daddr[i];
	sk.port = p->dport;
	sk.proto = p->proto;
	sk.family = p->family;
	s = bpf_map_lookup_elem(&services, &sk);
	if (s)
		return s;
	/* A persistent service on port 0 takes every port. */
	sk.port = 0;
	s = bpf_map_lookup_elem(&services, &sk);
	if (s && (s->flags & SVC_F_PERSISTENT))
		return s;
	return 0;
}

/* new_conn schedules a new connection and inserts it under ck (conn_find's
 * form of the key): nc is filled.
 * It returns -1 when the packet is to be forwarded, else the verdict (a
 * refusal when no real server is available). */
static __noinline int new_conn(struct xdp_md *ctx, struct pkt *p, void *ck, struct conn_val *nc, __u64 ns)
{
	struct dest_info *d;
	__u32 didx, sidx;

	struct svc_info *s = svc_find(p);
	if (!s) {
		count(REASON_NO_SERVICE);
		return XDP_PASS;
	}
	if (p->proto == IPPROTO_TCP &&
	    (p->tcp_flags & (TCPF_SYN | TCPF_ACK | TCPF_RST)) != TCPF_SYN) {
		count(REASON_NOT_SYN);
		return XDP_PASS;
	}
	sidx = s->index;
	didx = NO_DEST;

	struct persist_key pk = {};
	struct persist_val *pv = 0;
	if (s->flags & SVC_F_PERSISTENT) {
#pragma unroll
		for (int i = 0; i < 4; i++)
			pk.addr[i] = p->saddr[i] & s->pmask[i];
		pk.svc = sidx;
		pk.family = p->family;
		pv = bpf_map_lookup_elem(&persist, &pk);
		if (pv && ns - pv->last_seen <= (__u64)s->ptimeout * 1000000000ULL) {
			__u32 t = pv->dest;
			struct dest_info *td = bpf_map_lookup_elem(&dests, &t);
			if (td && (td->flags & DEST_F_AVAILABLE))
				didx = t;
		}
	}
	if (didx == NO_DEST)
		didx = schedule(s, p);
	if (didx == NO_DEST)
		return refuse(ctx, p);
	d = bpf_map_lookup_elem(&dests, &didx);
	if (!d)
		return XDP_DROP;
	nc->last_seen = ns >> CONN_CLOCK_SHIFT;
	nc->dest = didx;
	nc->svc = sidx;
	nc->state = p->proto == IPPROTO_TCP ? ST_SYN_RECV : ST_UDP;
	if (d->method == METHOD_NAT || d->method == METHOD_FULLNAT) {
		if (nat_setup(p, s, d, nc))
			return XDP_DROP;
	}
	if (s->flags & SVC_F_PERSISTENT) {
		if (pv && pv->dest == didx) {
			pv->last_seen = ns;
		} else {
			struct persist_val nv = {.last_seen = ns, .dest = didx};
			bpf_map_update_elem(&persist, &pk, &nv, BPF_ANY);
		}
	}
	/* One-packet scheduling (IP_VS_SVC_F_ONEPACKET): the kernel makes the
	 * datagram's connection already expired and never hashes it; here it
	 * is not inserted, and not counted against the server either. The
	 * persistence template above is kept: it still picks the server. The
	 * lookup before new_conn stays (it misses for such a service, unless
	 * an entry from before -o was set lives on, as in the kernel). NAT
	 * and FullNAT need the entry to un-NAT replies: Go refuses -o with
	 * them, and an entry is made should the flag meet them anyway. */
	if ((s->flags & SVC_F_ONE_PACKET) && p->proto == IPPROTO_UDP &&
	    (d->method == METHOD_ROUTE || d->method == METHOD_TUNNEL)) {
		account(sidx, didx, p->l3len, 1);
		return -1;
	}
	if (conn_add(ck, p->family, nc) == 0)
		bind_dest(didx, d);
	account(sidx, didx, p->l3len, 1);
	return -1;
}


/* conn_delete removes a connection's entry keyed by k (either family). */
static __always_inline void conn_delete(const struct conn_key *k)
{
	if (k->family == AF_INET) {
		struct conn_key4 k4 = {};
		conn_key4_of(&k4, k);
		bpf_map_delete_elem(&conns4, &k4);
		return;
	}
	bpf_map_delete_elem(&conns, k);
}

/* syn_reuse decides, as ip_vs_in does for a packet that opens a
 * connection (is_new_conn: a TCP SYN) and finds an entry, whether the
 * entry belongs to a connection that is over: then it expires the entry
 * (and a NAT entry's reply entry, freeing a FullNAT local port) and
 * returns 1, and the SYN is scheduled as a new connection. That is so
 *   - when the entry's real server no longer takes new connections: it
 *     left its service (removed, or taken out by a checker) or has
 *     weight 0 (the kernel with expire_nodest_conn=1);
 *   - when the entry is in TIME_WAIT or CLOSE and its service is not
 *     persistent (conn_reuse_mode=1, the kernel's default: a persistent
 *     service's connection is controlled by its template, which keeps
 *     the client on its server).
 * A SYN on any other entry (a retransmitted SYN, a SYN on an open
 * connection) goes on to the entry's real server. ck is the key in
 * conn_find's form; cv the forward entry found under it. */
static __noinline int syn_reuse(struct pkt *p, struct conn_key *ck, struct conn_val *cv)
{
	if (p->proto != IPPROTO_TCP ||
	    (p->tcp_flags & (TCPF_SYN | TCPF_ACK | TCPF_RST)) != TCPF_SYN)
		return 0;
	__u32 didx = cv->dest;
	struct dest_info *d = bpf_map_lookup_elem(&dests, &didx);
	if (!d || !(d->flags & DEST_F_IN_USE))
		return 0; /* stale: the caller passes it to the stack */
	if ((d->flags & DEST_F_AVAILABLE) && d->weight > 0) {
		if (cv->state != ST_TIME_WAIT && cv->state != ST_CLOSE)
			return 0;
		struct svc_info *s = svc_find(p);
		if (!s || (s->flags & SVC_F_PERSISTENT))
			return 0;
	}

	struct dest_load *l = bpf_map_lookup_elem(&loads, &didx);
	if (l) {
		if (cv->state == ST_ESTABLISHED)
			__sync_fetch_and_add(&l->active, -1);
		else
			__sync_fetch_and_add(&l->inactive, -1);
	}
	if (cv->flags & CONN_F_NAT) {
		struct conn_key rk = {};
#pragma unroll
		for (int i = 0; i < 4; i++) {
			rk.saddr[i] = cv->xdaddr[i];
			rk.daddr[i] = cv->xsaddr[i];
		}
		rk.sport = cv->xdport;
		rk.dport = cv->xsport;
		rk.proto = p->proto;
		rk.family = p->family;
		/* Only if it is still this connection's: a newer one may have
		 * taken it over (reply_takeover in xdp_nat.h). */
		struct conn_val *rv = conn_lookup(&rk);
		if (rv && reply_of(rv, p))
			conn_delete(&rk);
	}
	if (p->family == AF_INET)
		bpf_map_delete_elem(&conns4, ck);
	else
		bpf_map_delete_elem(&conns, ck);
	return 1;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	struct pkt p = {};
	struct conn_key ck = {};
	struct conn_val *cv;
	struct conn_val *x;
	struct dest_info *d;
	__u64 ns;
	__u32 now, didx, sidx;
	int rc, toa = 0;

	rc = parse(ctx, &p);
	if (rc == REASON_NOT_L4 && (p.proto == IPPROTO_ICMP || p.proto == IPPROTO_ICMPV6)) {
		rc = nat_icmp(ctx, &p);
		if (rc != XDP_PASS)
			return rc;
		count(REASON_NOT_L4);
		return XDP_PASS;
	}
	if (rc) {
		count(rc);
		return XDP_PASS;
	}
	/* The key in its table's form, built in place (the stack is small). */
	if (p.family == AF_INET) {
		struct conn_key4 *k4 = (void *)&ck;
		k4->saddr = p.saddr[0];
		k4->daddr = p.daddr[0];
		k4->sport = p.sport;
		k4->dport = p.dport;
		k4->proto = p.proto;
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++) {
			ck.saddr[i] = p.saddr[i];
			ck.daddr[i] = p.daddr[i];
		}
		ck.sport = p.sport;
		ck.dport = p.dport;
		ck.proto = p.proto;
		ck.family = p.family;
	}
	/* The tick's time: reading the clock source costs more than the
	 * rest of an established packet's work on a VM, and expiry counts
	 * in seconds. */
	ns = bpf_ktime_get_coarse_ns();
	now = ns >> CONN_CLOCK_SHIFT;

	cv = conn_find(&ck, p.family);
	if (cv && (cv->flags & CONN_F_REPLY))
		return nat_reply(ctx, &p, cv, now);
	if (cv && (p.tcp_flags & TCPF_SYN) && syn_reuse(&p, &ck, cv))
		cv = 0;
	if (cv) {
		didx = cv->dest;
		sidx = cv->svc;
		d = bpf_map_lookup_elem(&dests, &didx);
		if (!d || !(d->flags & DEST_F_IN_USE)) {
			count(REASON_STALE);
			return XDP_PASS;
		}
		if (cv->last_seen != now)
			cv->last_seen = now;
		if (p.proto == IPPROTO_TCP) {
			__u32 old = cv->state, next;
			if (cv->flags & CONN_F_NAT)
				next = tcp_next_nat(old, p.tcp_flags, 0);
			else
				next = tcp_next(old, p.tcp_flags);
			set_state(cv, next);
			/* TOA also in the ACK that completes the handshake, where
			 * the TOA kernel module reads it, when it carries no data. */
			if ((cv->flags & CONN_F_TOA) && old == ST_SYN_RECV && next == ST_ESTABLISHED &&
			    !(p.tcp_flags & TCPF_SYN) && p.l3len == p.ihl + p.l4hl)
				toa = 1;
			/* A retransmitted SYN carries it as the first did. */
			if ((cv->flags & CONN_F_TOA) && (p.tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN)
				toa = 1;
		}
		account(sidx, didx, p.l3len, 0);
		x = cv;
	} else {
		__u32 zero = 0;
		struct conn_val *nc = bpf_map_lookup_elem(&scratch, &zero);
		if (!nc)
			return XDP_PASS;
		__builtin_memset(nc, 0, sizeof(*nc));
		rc = new_conn(ctx, &p, &ck, nc, ns);
		if (rc >= 0)
			return rc;
		didx = nc->dest;
		d = bpf_map_lookup_elem(&dests, &didx);
		if (!d)
			return XDP_DROP;
		toa = (nc->flags & CONN_F_TOA) != 0;
		x = nc;
	}

	if (d->method == METHOD_NAT || d->method == METHOD_FULLNAT)
		return forward_nat(ctx, &p, x, d, toa);
	if (d->method == METHOD_TUNNEL)
		return forward_tun(ctx, &p, d);
	return forward_dr(ctx, &p, d);
}
