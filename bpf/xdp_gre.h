/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * GRE for TUN real servers (ipvsadm --tun-type gre), the header the
 * kernel's IPVS builds (ipvs_gre_encap): version 0, no key, no sequence
 * number, the inner packet's Ethernet type as protocol, and with
 * --tun-csum the checksum field (flag C) over the GRE header and the
 * whole inner packet; and GUE's outer UDP checksum (--tun-csum). Included
 * by xdp_lb.c before forward_tun.
 */
#ifndef GVS_XDP_GRE_H
#define GVS_XDP_GRE_H

#define IPPROTO_GRE 47
#define GRE_F_CSUM 0x8000 /* host order */

/* Defined in xdp_nat.h. */
__noinline __s64 segment_sum(struct xdp_md *ctx, __u32 l4, __u32 len);

static __always_inline int tun_is_gre(const struct dest_info *d)
{
	return d->tun_type == TUN_GRE || d->tun_type == TUN_GRE_CSUM;
}

/* tun_hdr_len is the length of what the tunnel puts between the outer IP
 * header and the inner packet. */
static __always_inline __u32 tun_hdr_len(const struct dest_info *d)
{
	switch (d->tun_type) {
	case TUN_GUE:
	case TUN_GUE_CSUM:
		return sizeof(struct udphdr) + 4;
	case TUN_GRE:
		return 4;
	case TUN_GRE_CSUM:
		return 8;
	}
	return 0;
}

/* head_sum sums the n bytes at at (n a constant once inlined), or -1
 * when they are not all in the packet. */
static __always_inline __s64 head_sum(void *at, void *end, __u32 n)
{
	if (at + n > end)
		return -1;
	return bpf_csum_diff(0, 0, at, n, 0);
}

/* tun_sum is the folded one's complement sum of what a tunnel checksum
 * covers besides any pseudo-header: the tunnel's own header of hlen bytes
 * at off (GUE's UDP and GUE headers: 12; GRE's with its checksum field: 8;
 * checksum fields zero) and the inner packet after it. It returns -1 when
 * the packet is shorter than it should be.
 *
 * The inner packet is not read, as Linux's local checksum offload
 * (lco_csum) does not read it: a valid IPv4 header sums to zero, and a
 * TCP or UDP segment whose checksum is valid sums to the complement of
 * its pseudo-header. That also holds for a seed that the device fills in
 * later (generic mode, CHECKSUM_PARTIAL), which a pass over the bytes
 * would get wrong; and it costs no pass over the payload. Only an IPv4
 * UDP segment without a checksum (zero) is summed byte by byte. */
static __always_inline __s64 tun_sum(struct xdp_md *ctx, const struct pkt *p, __u32 off, __u32 hlen)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	void *at = data + (off & 0xff);
	__u32 l4 = (off + hlen + p->ihl) & 0xff;
	__u32 l4len = p->l3len - p->ihl;
	__s64 head;

	/* The tunnel header, and the IPv6 header, which has no checksum. */
	if (p->family == AF_INET6)
		head = hlen == 12 ? head_sum(at, end, 12 + 40) : head_sum(at, end, 8 + 40);
	else
		head = hlen == 12 ? head_sum(at, end, 12) : head_sum(at, end, 8);
	if (head < 0)
		return -1;

	__u16 *field = data + l4 + (p->proto == IPPROTO_TCP ? 16 : 6);
	if ((void *)(field + 1) > end)
		return -1;
	__u32 seg;
	if (p->proto == IPPROTO_UDP && p->family == AF_INET && !*field) {
		__s64 s = segment_sum(ctx, l4, l4len);
		if (s < 0)
			return -1;
		seg = (__u32)s;
	} else {
		seg = (__u16)~l4_seed(p->saddr, p->daddr, p->family, p->proto, l4len);
	}
	return fold16(fold32((__u64)(__u32)head + seg));
}

/* gre_fill writes the GRE header at offset off (after the outer IP
 * header), in front of the inner packet, and its checksum when the real
 * server asked for one. It returns 0, or -1 when the packet is shorter
 * than it should be. */
static __always_inline int gre_fill(struct xdp_md *ctx, __u32 off, const struct dest_info *d,
				    const struct pkt *p, __u8 inner_proto)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 *gh = data + (off & 0xff);
	int csum = d->tun_type == TUN_GRE_CSUM;

	if ((void *)(gh + 4) > end)
		return -1;
	gh[0] = bpf_htons(csum ? GRE_F_CSUM : 0);
	gh[1] = inner_proto == IPPROTO_IPIP ? bpf_htons(ETH_P_IP) : bpf_htons(ETH_P_IPV6);
	if (!csum)
		return 0;
	gh[2] = 0;
	gh[3] = 0;
	__s64 sum = tun_sum(ctx, p, off, 8);
	if (sum < 0)
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	gh = data + (off & 0xff);
	if ((void *)(gh + 4) > end)
		return -1;
	gh[2] = ~(__u16)sum;
	return 0;
}

/* gue_csum writes the outer UDP checksum of a GUE packet whose UDP header
 * is at off, udp_len bytes from it to the end, from src to d (--tun-csum;
 * without it the checksum stays zero, as the kernel sends it). It returns
 * 0, or -1 when the packet is shorter than it should be. */
static __always_inline int gue_csum(struct xdp_md *ctx, __u32 off, const struct dest_info *d,
				    const struct pkt *p, const __u32 *src, __u32 udp_len)
{
	__s64 sum = tun_sum(ctx, p, off, 12);
	if (sum < 0)
		return -1;
	__u16 c = ~fold16((__u32)sum + l4_seed(src, d->addr, d->family, IPPROTO_UDP, udp_len));
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct udphdr *uh = data + (off & 0xff);
	if ((void *)(uh + 1) > end)
		return -1;
	uh->check = c ? c : 0xffff;
	return 0;
}

#endif
