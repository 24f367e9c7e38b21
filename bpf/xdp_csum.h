/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Checksums of forwarded TCP and UDP packets for xdp_lb.c, which includes
 * this file after struct pkt and its maps: every method (DR, TUN, NAT,
 * FullNAT) calls csum_prepare before the packet leaves.
 */
#ifndef GVS_XDP_CSUM_H
#define GVS_XDP_CSUM_H

/*
 * Partial checksums. A packet sent by a local, veth or tap sender (a
 * container, a VM) is CHECKSUM_PARTIAL in the kernel: its TCP or UDP
 * checksum field holds only the folded sum of the pseudo-header (the
 * "seed"), and whoever transmits it last (a NIC, or skb_checksum_help)
 * adds the segment's sum and writes the complement. XDP cannot see
 * ip_summed, so the field is compared with the seed of the packet as it
 * arrived: a complete checksum equals it only by a 1-in-65536 chance.
 *
 * Native mode (and BPF_PROG_TEST_RUN): XDP_TX and XDP_REDIRECT turn the
 * packet into a bare frame; the checksum state is lost and the receiver
 * (even a veth peer) verifies the field. So a seed is completed here, as
 * the NIC would: the field becomes the complement of the sum of the whole
 * segment, in which the seed already stands for the pseudo-header. A
 * complete checksum that happens to equal the seed comes out of this
 * unchanged (the segment's sum with a valid checksum in it is 0xffff), so
 * the coincidence costs nothing but the sum; only a corrupt packet whose
 * wrong checksum equals the seed would leave with a valid one, and such a
 * packet is bit for bit a partial one.
 *
 * Generic mode (the interface is in generic_ifs): the skb goes out still
 * CHECKSUM_PARTIAL, so its field must stay a seed, of the rewritten
 * pseudo-header (nat_rewrite writes it). Here the coincidence is decided
 * by the same sum: a field that verifies as a complete checksum is taken
 * as complete, which is right for every packet from a NIC and wrong only
 * for a partial skb whose complete checksum would equal its seed and that
 * leaves through a NIC filling in checksums (a veth peer trusts partial
 * skbs). TOA goes into such a packet at the tail side (insert_toa_tail):
 * generic XDP does not move the skb's csum_start with
 * bpf_xdp_adjust_head, so the TCP header must stay where it is.
 *
 * DR and TUN change nothing the L4 checksum covers (TUN's outer header
 * adds no checksum over it: IPIP, or GUE with a zero UDP checksum), so
 * the completion in native mode is all they need; in generic mode their
 * skb stays partial, its csum_start on the TCP or UDP header, which
 * neither moves.
 *
 * The only cost for a complete checksum is the seed and one comparison.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32); /* ifindex */
	__type(value, __u32);
} generic_ifs SEC(".maps");

#define CSUM_CHUNK 256
#define CSUM_CHUNKS 16 /* segments up to 4 KiB: above any non-frags XDP MTU */

static __always_inline __u32 fold32(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return sum;
}

static __always_inline __u16 fold16(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* l4_seed is the folded pseudo-header sum of an L4 segment of len bytes
 * from sa to da (IPv4: word 0). */
static __always_inline __u16 l4_seed(const __u32 *sa, const __u32 *da, __u8 family, __u8 proto,
				     __u32 len)
{
	__u32 sum = bpf_htons(proto) + bpf_htons(len & 0xffff);
	sum += (sa[0] & 0xffff) + (sa[0] >> 16) + (da[0] & 0xffff) + (da[0] >> 16);
	if (family == AF_INET6) {
#pragma unroll
		for (int i = 1; i < 4; i++)
			sum += (sa[i] & 0xffff) + (sa[i] >> 16) + (da[i] & 0xffff) + (da[i] >> 16);
	}
	return fold16(sum);
}

/* segment_sum is the 32-bit one's complement sum of the len bytes at
 * offset l4, or -1 when they are not all in the packet. A global function:
 * the verifier checks it once, not once per path that calls it. */
__noinline __s64 segment_sum(struct xdp_md *ctx, __u32 l4, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 o = 0;
	__s64 sum = 0;

	l4 &= 0xff;
	len &= 0xffff;
	for (int i = 0; i < CSUM_CHUNKS; i++) {
		if (o + CSUM_CHUNK > len)
			break;
		void *at = data + l4 + (o & 0x3fff);
		if (at + CSUM_CHUNK > end)
			return -1;
		sum = bpf_csum_diff(0, 0, at, CSUM_CHUNK, sum);
		o += CSUM_CHUNK;
	}
	if (len - o >= CSUM_CHUNK)
		return -1;
#pragma unroll
	for (__u32 n = CSUM_CHUNK / 2; n >= 4; n /= 2) {
		if (len - o >= n) {
			void *at = data + l4 + (o & 0x3fff);
			if (at + n > end)
				return -1;
			sum = bpf_csum_diff(0, 0, at, n, sum);
			o += n;
		}
	}
	/* 0 to 3 bytes left: as 16-bit words, the last one padded. */
	__u8 *b = data + l4 + (o & 0x3fff);
	__u32 rest = len - o;
	__u32 tail = 0;
	if (rest >= 2) {
		if ((void *)(b + 2) > end)
			return -1;
		tail += *(__u16 *)b;
		b += 2;
		rest -= 2;
	}
	if (rest == 1) {
		if ((void *)(b + 1) > end)
			return -1;
		tail += *b; /* the first byte of a word: the low one in memory order */
	}
	return fold32((__u64)(__u32)sum + tail);
}

/* csum_prepare is called before NAT changes anything: it completes a seed
 * (native mode) or marks the packet as one that keeps a seed (p->seed,
 * generic mode). It returns 0, or -1 when the segment cannot be summed
 * (the packet is left unchanged). */
static __always_inline int csum_prepare(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 l4 = ((p->l3off & 0x3f) + p->ihl) & 0xff;
	__u32 len = p->l3len - p->ihl;
	__u16 *field = data + l4 + (p->proto == IPPROTO_TCP ? 16 : 6);

	p->seed = 0;
	if ((void *)(field + 1) > end)
		return -1;
	__u16 f = *field;
	if (p->proto == IPPROTO_UDP && !f && p->family == AF_INET)
		return 0;
	if (f != l4_seed(p->saddr, p->daddr, p->family, p->proto, len))
		return 0;
	__s64 sum = segment_sum(ctx, l4, len);
	if (sum < 0)
		return -1;
	__u16 full = ~fold16(sum);
	if (p->proto == IPPROTO_UDP && !full)
		full = 0xffff;
	if (full == f)
		return 0; /* a complete checksum that equals its seed */
	__u32 ifindex = ctx->ingress_ifindex;
	if (bpf_map_lookup_elem(&generic_ifs, &ifindex)) {
		p->seed = 1;
		return 0;
	}
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	field = data + l4 + (p->proto == IPPROTO_TCP ? 16 : 6);
	if ((void *)(field + 1) > end)
		return -1;
	*field = full;
	return 0;
}

#endif
