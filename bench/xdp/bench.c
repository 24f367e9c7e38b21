//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP programs of the forwarding benchmark (bench/xdp), none of them
 * part of GVS itself:
 *   - xdp_gen, the traffic generator, run with BPF_PROG_RUN in live-frames
 *     mode on the client's interface: it writes a whole TCP/IPv4 frame
 *     (the page may hold the previous run's bytes) for the next flow and
 *     transmits it (XDP_TX);
 *   - xdp_ceiling, the reference director: rewrites the MAC addresses and
 *     redirects to a fixed interface, without a lookup;
 *   - xdp_sink, on the real server: counts IP frames per CPU and drops them
 *     (ARP passes, so that neighbours resolve);
 *   - xdp_pass, which lets a veth interface receive XDP frames (its NAPI
 *     runs only with a program attached) without touching them.
 */
#include "../../bpf/include/gvs_bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";


#define GEN_EST 0 /* cycle over nflows fixed flows */
#define GEN_NEW 1 /* a new flow every packet */

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_ACK 0x10

/* gen_cfg: what xdp_gen sends. Flow i comes from saddr + i/16384, source
 * port 1024 + i%16384. */
struct gen_cfg {
	__u8 dmac[6];
	__u8 smac[6];
	__be32 saddr;
	__be32 daddr;
	__be16 dport;
	__u8 tcp_flags;
	__u8 mode; /* GEN_EST or GEN_NEW */
	__u32 nflows;
	__u32 stop; /* drop the rest of the run's frames unsent, uncounted */
};

struct counter {
	__u64 pkts;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_cfg);
} gen_config SEC(".maps");

/* gen_sent counts the frames xdp_gen built, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gen_sent SEC(".maps");

/* sink_count counts what reached the real server, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counter);
} sink_count SEC(".maps");

/* Set before loading: the ceiling's rewrite and egress. */
volatile const __u8 ceil_dmac[6];
volatile const __u8 ceil_smac[6];
volatile const __u32 ceil_ifindex;

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th = (void *)(ip + 1);
	__u32 zero = 0;

	if ((void *)(th + 1) > end)
		return XDP_ABORTED;
	struct gen_cfg *c = bpf_map_lookup_elem(&gen_config, &zero);
	__u64 *sent = bpf_map_lookup_elem(&gen_sent, &zero);
	if (!c || !sent || !c->nflows)
		return XDP_ABORTED;
	if (c->stop)
		return XDP_DROP;
	__u64 n = (*sent)++;
	__u32 idx;
	if (c->mode == GEN_NEW)
		idx = c->nflows + (((__u32)n << 3) | (bpf_get_smp_processor_id() & 7));
	else
		idx = (__u32)(n % c->nflows);
	idx &= (1U << 30) - 1;

	__builtin_memcpy(eth->h_dest, c->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, c->smac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	__be32 saddr = bpf_htonl(bpf_ntohl(c->saddr) + (idx >> 14));
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*th));
	ip->id = 0;
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->check = 0;
	ip->saddr = saddr;
	ip->daddr = c->daddr;
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	ip->check = fold(sum);

	__u8 *raw = (__u8 *)th;
	th->source = bpf_htons(1024 + (idx & 0x3fff));
	th->dest = c->dport;
	th->seq = bpf_htonl(idx);
	th->ack_seq = (c->tcp_flags & TCPF_ACK) ? bpf_htonl(1) : 0;
	raw[12] = 5 << 4;
	raw[13] = c->tcp_flags;
	th->window = bpf_htons(65535);
	th->check = 0;
	th->urg_ptr = 0;
	/* Pseudo header (addresses, protocol, TCP length) and the header. */
	sum = (saddr & 0xffff) + (saddr >> 16) + (c->daddr & 0xffff) + (c->daddr >> 16);
	sum += bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(*th));
	w = (__u16 *)th;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	th->check = fold(sum);
	return XDP_TX;
}

SEC("xdp")
int xdp_ceiling(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_DROP;
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++) {
		eth->h_dest[i] = ceil_dmac[i];
		eth->h_source[i] = ceil_smac[i];
	}
	return bpf_redirect(ceil_ifindex, 0);
}

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) && eth->h_proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	struct counter *c = bpf_map_lookup_elem(&sink_count, &zero);
	if (c) {
		c->pkts++;
		c->bytes += end - data;
	}
	return XDP_DROP;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
