/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The Ethernet header walk of xdp_lb.c and toa_reader.c. */
#ifndef GVS_XDP_VLAN_H
#define GVS_XDP_VLAN_H

/* skip_vlans reads the Ethernet header and up to two VLAN tags (802.1Q,
 * 802.1ad) at the start of [data, end): it sets *proto to the EtherType
 * that follows them and *off to where that header starts, and returns 0,
 * or -1 when the frame ends inside them. */
static __always_inline int skip_vlans(void *data, void *end, __u16 *proto, __u32 *off)
{
	struct ethhdr *eth = data;
	__u32 o = sizeof(*eth);

	if ((void *)(eth + 1) > end)
		return -1;
	__u16 p = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (p != bpf_htons(ETH_P_8021Q) && p != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr *vh = data + o;
		if ((void *)(vh + 1) > end)
			return -1;
		p = vh->h_vlan_encapsulated_proto;
		o += sizeof(*vh);
	}
	*proto = p;
	*off = o;
	return 0;
}

#endif
