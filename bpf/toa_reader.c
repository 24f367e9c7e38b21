//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * toa_reader: an XDP program for real servers behind a FullNAT director.
 * It looks for the TOA TCP option (kind 254: the client's port and IPv4
 * address, length 8, or IPv6 address, length 20) in every TCP packet that
 * arrives, and records the client per connection, keyed by the packet's
 * addresses and ports as the real server's socket sees them (remote:
 * the director's local address and port; local: the real server's). Go
 * (internal/toa) looks the accepted connection up there. Every packet is
 * passed on unchanged.
 */
#include "include/gvs_bpf.h"
#include "toa_reader.h"
#include "xdp_vlan.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TOA_MAX_CONNS);
	__type(key, struct toa_key);
	__type(value, struct toa_val);
} toa_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} toa_seen SEC(".maps");

#define NOT_FOUND 0xff

/* The TCP options, copied out of the packet, and where TOA starts. */
struct optwalk {
	__u8 buf[96];
	__u32 len;
	__u32 off;
	__u32 at;
};

/* opt_step looks at the option at w->off: EOL ends the options, NOP is
 * one byte, the others carry their length. */
static long opt_step(__u32 n, struct optwalk *w)
{
	__u32 i = w->off;
	if (i >= w->len || i >= 40)
		return 1;
	__u8 kind = w->buf[i & 0x3f];
	if (kind == 0)
		return 1;
	if (kind == 1) {
		w->off = i + 1;
		return 0;
	}
	if (i + 1 >= w->len)
		return 1;
	__u32 l = w->buf[(i + 1) & 0x3f];
	if (l < 2 || i + l > w->len)
		return 1;
	if (kind == TOA_KIND && (l == TOA_LEN4 || l == TOA_LEN6) && i + l <= 40) {
		w->at = i;
		return 1;
	}
	w->off = i + l;
	return 0;
}

SEC("xdp")
int toa_read(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct toa_key k = {};
	struct toa_val v = {};
	__u32 off;
	__u16 proto;
	struct tcphdr *th;

	if (skip_vlans(data, end, &proto, &off))
		return XDP_PASS;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;
		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
			return XDP_PASS;
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return XDP_PASS;
		k.family = AF_INET;
		k.saddr[0] = ip->saddr;
		k.daddr[0] = ip->daddr;
		th = (void *)ip + ((ip->ihl * 4) & 0x3c);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return XDP_PASS;
		k.family = AF_INET6;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			k.saddr[i] = ip6->saddr[i];
			k.daddr[i] = ip6->daddr[i];
		}
		th = (void *)(ip6 + 1);
	} else {
		return XDP_PASS;
	}
	if ((void *)(th + 1) > end)
		return XDP_PASS;
	__u32 olen = th->doff * 4;
	if (olen <= sizeof(*th))
		return XDP_PASS;
	olen = (olen - sizeof(*th)) & 0x3f;
	struct optwalk w = {.len = olen, .at = NOT_FOUND};
	__u32 ooff = (void *)(th + 1) - data;
	if (olen == 0 || bpf_xdp_load_bytes(ctx, ooff, w.buf, olen))
		return XDP_PASS;
	k.sport = th->source;
	k.dport = th->dest;
	bpf_loop(40, opt_step, &w, 0);
	if (w.at == NOT_FOUND)
		return XDP_PASS;
	__u8 *o = &w.buf[w.at & 0x3f];
	__builtin_memcpy(&v.port, o + 2, 2);
	if (o[1] == TOA_LEN4) {
		__builtin_memcpy(&v.addr[0], o + 4, 4);
		v.family = AF_INET;
	} else {
		__builtin_memcpy(v.addr, o + 4, 16);
		v.family = AF_INET6;
	}
	bpf_map_update_elem(&toa_conns, &k, &v, BPF_ANY);
	__u32 zero = 0;
	__u64 *seen = bpf_map_lookup_elem(&toa_seen, &zero);
	if (seen)
		__sync_fetch_and_add(seen, 1);
	return XDP_PASS;
}
