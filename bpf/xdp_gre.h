/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * GRE for TUN real servers (ipvsadm --tun-type gre), the header the
 * kernel's IPVS builds (ipvs_gre_encap): version 0, no key, no sequence
 * number, the inner packet's Ethernet type as protocol, and with
 * --tun-csum the checksum field (flag C) over the GRE header and the
 * whole inner packet. Included by xdp_lb.c before forward_tun.
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
		return sizeof(struct udphdr) + 4;
	case TUN_GRE:
		return 4;
	case TUN_GRE_CSUM:
		return 8;
	}
	return 0;
}

/* gre_fill writes the GRE header at offset off (after the outer IP
 * header), in front of an inner packet of inner_len bytes, and its
 * checksum when the real server asked for one. It returns 0, or -1 when
 * the packet is shorter than it should be. */
static __always_inline int gre_fill(struct xdp_md *ctx, __u32 off, const struct dest_info *d,
				    __u8 inner_proto, __u32 inner_len)
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
	__s64 sum = segment_sum(ctx, off, 8 + inner_len);
	if (sum < 0)
		return -1;
	__u32 s = (__u32)sum;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	gh = data + (off & 0xff);
	if ((void *)(gh + 4) > end)
		return -1;
	gh[2] = ~s & 0xffff;
	return 0;
}

#endif
