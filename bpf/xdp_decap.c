//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xdp_decap: the real server's side of GVS tunnelling, for kernels
 * without the ipip/fou modules. On the interface it is attached to it
 * strips the outer header of IPv4-in-IPv4, IPv6-in-IPv6 (and the mixed
 * cases), of GUE (outer UDP to a port in gue_ports, GUE variant 0) and of
 * GRE as IPVS sends it (version 0, no key, no sequence number, with or
 * without the checksum, which is not verified: the inner TCP or UDP
 * checksum still is) and passes the inner packet to the stack, which
 * delivers it to the VIP on lo. Everything else passes untouched.
 */
#include "include/gvs_bpf.h"

#define IPPROTO_GRE 47
#define GRE_F_CSUM 0x8000 /* host order */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* GUE ports (network order) to decapsulate. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u16);
	__type(value, __u8);
} gue_ports SEC(".maps");

/* Decapsulated packets, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} decapped SEC(".maps");

SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 outer;
	__u8 inner;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return XDP_PASS;
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return XDP_PASS;
		outer = ip->ihl * 4;
		inner = ip->protocol;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		outer = sizeof(*ip6);
		inner = ip6->nexthdr;
	} else {
		return XDP_PASS;
	}
	if (outer > 60)
		return XDP_PASS;
	if (inner == IPPROTO_UDP) {
		struct udphdr *uh = data + sizeof(*eth) + outer;
		if ((void *)(uh + 1) > end)
			return XDP_PASS;
		if (!bpf_map_lookup_elem(&gue_ports, &uh->dest))
			return XDP_PASS;
		__u8 *gh = (void *)(uh + 1);
		if ((void *)(gh + 4) > end)
			return XDP_PASS;
		/* Variant 0, no control message; hlen counts 32-bit words of
		 * optional fields. */
		if ((gh[0] & 0xc0) != 0 || (gh[0] & 0x20))
			return XDP_PASS;
		outer += sizeof(*uh) + 4 + (gh[0] & 0x1f) * 4;
		inner = gh[1];
	} else if (inner == IPPROTO_GRE) {
		__u16 *gre = data + sizeof(*eth) + outer;
		if ((void *)(gre + 2) > end)
			return XDP_PASS;
		/* Only the checksum flag (C) may be set; version 0. */
		if (gre[0] & ~bpf_htons(GRE_F_CSUM))
			return XDP_PASS;
		if (gre[1] == bpf_htons(ETH_P_IP))
			inner = IPPROTO_IPIP;
		else if (gre[1] == bpf_htons(ETH_P_IPV6))
			inner = IPPROTO_IPV6;
		else
			return XDP_PASS;
		outer += gre[0] ? 8 : 4;
	}
	__u16 proto;
	if (inner == IPPROTO_IPIP)
		proto = bpf_htons(ETH_P_IP);
	else if (inner == IPPROTO_IPV6)
		proto = bpf_htons(ETH_P_IPV6);
	else
		return XDP_PASS;
	if (outer > 60 + 8 + 4 + 31 * 4)
		return XDP_PASS;
	if (data + sizeof(*eth) + outer + 1 > end)
		return XDP_PASS;

	/* Move the Ethernet header up to just before the inner packet. */
	struct ethhdr copy;
	__builtin_memcpy(&copy, eth, sizeof(copy));
	if (bpf_xdp_adjust_head(ctx, (int)outer))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, copy.h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_source, copy.h_source, ETH_ALEN);
	eth->h_proto = proto;
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&decapped, &zero);
	if (n)
		*n += 1;
	return XDP_PASS;
}
