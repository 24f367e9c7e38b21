/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * NAT (ipvsadm -m) and FullNAT for xdp_lb.c, which includes this file
 * after its maps and helpers.
 *
 * NAT rewrites the destination of a client's packet to the real server's
 * address and port; the real server's replies (it routes them through the
 * director) get the VIP and port back as their source. FullNAT also
 * rewrites the source to a local address and port of the service's pool,
 * so replies come back to the director on their own, and it puts the
 * client's address into a TOA TCP option of the SYN and of the first ACK.
 *
 * A connection has two entries in conns: the forward one, keyed by the
 * client's packet, and the reply one, keyed by the real server's reply.
 * Each holds the addresses and ports its packets leave with. Checksums are
 * updated incrementally (RFC 1624).
 *
 * FullNAT's local ports are allocated here, in BPF: the reply entry's key
 * (real server address and port, local address and port) is inserted with
 * BPF_NOEXIST, so a (local address, local port, real server) names at most
 * one connection. The candidates come from a cursor per CPU that walks the
 * whole (port, local address) space in order, so the pair it offers was
 * last used a full turn ago; on a clash the next one is tried, LPORT_TRIES
 * times. (A sequence seeded by the flow's hash clashed far more: clients
 * whose addresses and ports XOR alike got the same sequence, and a failed
 * NOEXIST insert into a full LRU map still evicts an entry.) Go frees a
 * port by expiring the connection. A taken local port is never taken
 * over, even from a connection in TIME_WAIT (unlike NAT's reply entry,
 * reply_takeover): the next candidate is as good, and the real server
 * may still hold the old tuple in TIME_WAIT, where a new client's SYN
 * with an unrelated sequence number would be refused.
 */
#ifndef GVS_XDP_NAT_H
#define GVS_XDP_NAT_H

/* Addresses the program could not find a neighbour (MAC) for; Go makes the
 * kernel resolve them (key: address, value: family). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct neigh_key);
	__type(value, __u64);
} neigh_miss SEC(".maps");

/* FullNAT: where each CPU's search for a free local port goes on. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} lport_cursor SEC(".maps");

/* The kernel's TCP state table for connections whose both directions pass
 * the director (ip_vs_proto_tcp.c, tcp_states: INPUT and OUTPUT), one row
 * per event, the next state of each current state in a nibble. */
#define TROW(a, b, c, d, e, f, g, h, i, j, k)                                     \
	((__u64)(a) | (__u64)(b) << 4 | (__u64)(c) << 8 | (__u64)(d) << 12 |        \
	 (__u64)(e) << 16 | (__u64)(f) << 20 | (__u64)(g) << 24 | (__u64)(h) << 28 | \
	 (__u64)(i) << 32 | (__u64)(j) << 36 | (__u64)(k) << 40)
#define sNO ST_NONE
#define sES ST_ESTABLISHED
#define sSS ST_SYN_SENT
#define sSR ST_SYN_RECV
#define sFW ST_FIN_WAIT
#define sTW ST_TIME_WAIT
#define sCL ST_CLOSE
#define sCW ST_CLOSE_WAIT
#define sLA ST_LAST_ACK
#define sLI ST_LISTEN
#define sSA ST_SYNACK

static __always_inline __u32 tcp_next_nat(__u32 state, __u8 flags, int reply)
{
	__u64 row;

	if (state > sSA)
		return sCL;
	if (!reply) {
		if (flags & TCPF_RST)
			row = TROW(sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR);
		else if (flags & TCPF_SYN)
			row = TROW(sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR);
		else if (flags & TCPF_FIN)
			row = TROW(sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW);
		else if (flags & TCPF_ACK)
			row = TROW(sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES);
		else
			return sCL;
	} else {
		if (flags & TCPF_RST)
			row = TROW(sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL);
		else if (flags & TCPF_SYN)
			row = TROW(sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR);
		else if (flags & TCPF_FIN)
			row = TROW(sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW);
		else if (flags & TCPF_ACK)
			row = TROW(sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES);
		else
			return sCL;
	}
	return (row >> (state * 4)) & 0xf;
}

/* set_state moves a connection to its next state and keeps the real
 * server's active/inactive counters (only ESTABLISHED is active). */
static __always_inline void set_state(struct conn_val *cv, __u32 next)
{
	__u32 old = cv->state;
	if (next == old)
		return;
	__u32 didx = cv->dest;
	struct dest_load *l = bpf_map_lookup_elem(&loads, &didx);
	if (l && old == ST_ESTABLISHED) {
		__sync_fetch_and_add(&l->active, -1);
		__sync_fetch_and_add(&l->inactive, 1);
	} else if (l && next == ST_ESTABLISHED) {
		__sync_fetch_and_add(&l->inactive, -1);
		__sync_fetch_and_add(&l->active, 1);
	}
	cv->state = next;
}

/* Incremental checksums: diff accumulates, in 16-bit one's complement
 * words, what leaves (complemented) and what enters a checksummed area. */
static __always_inline __u32 diff32(__u32 from, __u32 to)
{
	__u32 nf = ~from;
	return (nf & 0xffff) + (nf >> 16) + (to & 0xffff) + (to >> 16);
}

static __always_inline __u32 diff16(__u16 from, __u16 to)
{
	return (__u16)~from + (__u32)to;
}

/* csum_apply returns the checksum check with diff folded in. */
static __always_inline __u16 csum_apply(__u16 check, __u32 diff)
{
	__u32 sum = (__u16)~check + diff;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static __always_inline void note_neigh_miss(__u32 *addr, __u8 family)
{
	struct neigh_key k = {.family = family};
#pragma unroll
	for (int i = 0; i < 4; i++)
		k.addr[i] = addr[i];
	__u64 v = bpf_ktime_get_ns();
	bpf_map_update_elem(&neigh_miss, &k, &v, BPF_ANY);
}

/* nat_rewrite gives the packet the addresses and ports of x and updates
 * the IPv4 header checksum and the TCP or UDP checksum. */
static __always_inline int nat_rewrite(struct xdp_md *ctx, struct pkt *p, struct conn_val *x)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 l3 = p->l3off & 0x3f;
	__u32 l4 = (l3 + p->ihl) & 0xff;
	__u32 diff = 0;

	if (p->family == AF_INET) {
		struct iphdr *ip = data + l3;
		if ((void *)(ip + 1) > end)
			return -1;
		diff = diff32(ip->saddr, x->xsaddr[0]) + diff32(ip->daddr, x->xdaddr[0]);
		ip->saddr = x->xsaddr[0];
		ip->daddr = x->xdaddr[0];
		ip->check = csum_apply(ip->check, diff);
	} else {
		struct ipv6hdr *ip6 = data + l3;
		if ((void *)(ip6 + 1) > end)
			return -1;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			diff += diff32(ip6->saddr[i], x->xsaddr[i]) + diff32(ip6->daddr[i], x->xdaddr[i]);
			ip6->saddr[i] = x->xsaddr[i];
			ip6->daddr[i] = x->xdaddr[i];
		}
	}
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = data + l4;
		if ((void *)(th + 1) > end)
			return -1;
		diff += diff16(th->source, x->xsport) + diff16(th->dest, x->xdport);
		th->source = x->xsport;
		th->dest = x->xdport;
		if (p->seed)
			th->check = l4_seed(x->xsaddr, x->xdaddr, p->family, p->proto, p->l3len - p->ihl);
		else
			th->check = csum_apply(th->check, diff);
	} else {
		struct udphdr *uh = data + l4;
		if ((void *)(uh + 1) > end)
			return -1;
		diff += diff16(uh->source, x->xsport) + diff16(uh->dest, x->xdport);
		uh->source = x->xsport;
		uh->dest = x->xdport;
		/* An IPv4 UDP checksum of 0 means none: it stays 0. */
		if (p->seed) {
			uh->check = l4_seed(x->xsaddr, x->xdaddr, p->family, p->proto, p->l3len - p->ihl);
		} else if (uh->check || p->family == AF_INET6) {
			__u16 c = csum_apply(uh->check, diff);
			uh->check = c ? c : 0xffff;
		}
	}
	return 0;
}

/* toa_grown completes a TOA insertion that grew the TCP header by len
 * bytes: the IP length (and the IPv4 header checksum) and p's lengths.
 * It returns 0, or -2 when the packet is spoilt (as insert_toa). */
static __always_inline int toa_grown(struct xdp_md *ctx, struct pkt *p, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 l3 = p->l3off & 0x3f;

	if (p->family == AF_INET) {
		struct iphdr *ip = data + l3;
		if ((void *)(ip + 1) > end)
			return -2;
		__u16 old = ip->tot_len;
		ip->tot_len = bpf_htons(p->l3len + len);
		ip->check = csum_apply(ip->check, diff16(old, ip->tot_len));
	} else {
		struct ipv6hdr *ip6 = data + l3;
		if ((void *)(ip6 + 1) > end)
			return -2;
		ip6->payload_len = bpf_htons(p->l3len + len - sizeof(*ip6));
	}
	p->l3len += len;
	p->l4hl += len;
	return 0;
}

/* insert_toa puts the TOA option (kind 254: the client's port and
 * address) first among the TCP options, growing the TCP header: the
 * headers in front of the options move towards the new head. The
 * addresses in the packet are still the client's. It returns 0, -1 when
 * the packet is unchanged (no room: counted), or -2 when it is spoilt. */
static __always_inline int insert_toa(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 len = p->family == AF_INET ? TOA_LEN4 : TOA_LEN6;
	__u32 l3 = p->l3off & 0x3f;
	__u32 l4 = (l3 + p->ihl) & 0xff;
	/* Not l4 + 20: Linux 6.12's verifier links the two registers and
	 * loses the packet pointer that l4 is added to after the loop. */
	__u32 front = (l3 + p->ihl + sizeof(struct tcphdr)) & 0x1ff;
	__u8 opt[TOA_LEN6] = {};

	if (p->l4hl < sizeof(struct tcphdr) || p->l4hl + len > 60) {
		count(REASON_TOA_NO_ROOM);
		return -1;
	}
	opt[0] = TOA_KIND;
	opt[1] = len;
	__builtin_memcpy(&opt[2], &p->sport, 2);
	__builtin_memcpy(&opt[4], p->saddr, 16);

	if (bpf_xdp_adjust_head(ctx, -(int)len))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	/* Move [Ethernet, VLAN tags, IP header, fixed TCP header] to the
	 * new head, two bytes at a time (every part has an even length). */
	for (__u32 i = 0; i < 64; i++) {
		__u32 o = i * 2;
		if (o >= front)
			break;
		__u16 *dst = data + o;
		__u16 *src = data + o + len;
		if ((void *)(src + 1) > end)
			return -2;
		*dst = *src;
	}
	struct tcphdr *th = data + l4;
	if ((void *)(th + 1) > end)
		return -2;
	__u8 *o = (void *)(th + 1);

	/* TCP checksum: the option's words, the data offset, and the
	 * length in the pseudo-header. */
	__u32 diff = 0;
	__u16 *ow = (__u16 *)opt;
	__u16 *w12 = (void *)th + 12;
	__u16 before = *w12;
	th->doff = th->doff + len / 4;
	diff += diff16(before, *w12);
	__u16 oldlen = bpf_htons(p->l3len - p->ihl);
	__u16 newlen = bpf_htons(p->l3len - p->ihl + len);
	diff += diff16(oldlen, newlen);
	if (len == TOA_LEN4) {
		if ((void *)(o + TOA_LEN4) > end)
			return -2;
		__builtin_memcpy(o, opt, TOA_LEN4);
#pragma unroll
		for (int i = 0; i < TOA_LEN4 / 2; i++)
			diff += ow[i];
	} else {
		if ((void *)(o + TOA_LEN6) > end)
			return -2;
		__builtin_memcpy(o, opt, TOA_LEN6);
#pragma unroll
		for (int i = 0; i < TOA_LEN6 / 2; i++)
			diff += ow[i];
	}
	th->check = csum_apply(th->check, diff);
	return toa_grown(ctx, p, len);
}

/* insert_toa_tail is insert_toa for a packet whose checksum stays a seed
 * (generic mode): the skb keeps its csum_start, the offset of the TCP
 * header from the skb's head, which generic XDP does not move with
 * bpf_xdp_adjust_head. So the TCP header stays where it is: the frame
 * grows at its tail and the options move towards it. Only a segment
 * without data is grown so (the SYN and the first ACK carry none, unless
 * TCP Fast Open). The checksum field is left to nat_rewrite, which writes
 * the seed of the new length. Returns as insert_toa. */
static __always_inline int insert_toa_tail(struct xdp_md *ctx, struct pkt *p)
{
	__u32 len = p->family == AF_INET ? TOA_LEN4 : TOA_LEN6;
	__u32 l3 = p->l3off & 0x3f;
	__u32 l4 = (l3 + p->ihl) & 0xff;
	__u32 optlen = (p->l4hl - sizeof(struct tcphdr)) & 0x3f;
	__u8 opt[TOA_LEN6] = {};

	if (p->l4hl < sizeof(struct tcphdr) || p->l4hl + len > 60 ||
	    p->l3len != p->ihl + p->l4hl) {
		count(REASON_TOA_NO_ROOM);
		return -1;
	}
	opt[0] = TOA_KIND;
	opt[1] = len;
	__builtin_memcpy(&opt[2], &p->sport, 2);
	__builtin_memcpy(&opt[4], p->saddr, 16);

	/* Grow by what lies past the segment's end (padding) falls short. */
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__s32 grow = (__s32)(l4 + p->l4hl + len) - (__s32)(end - data);
	if (grow > 0 && bpf_xdp_adjust_tail(ctx, grow)) {
		count(REASON_TOA_NO_ROOM);
		return -1;
	}
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	/* Move the options len bytes towards the tail, last word first. */
	for (int i = 9; i >= 0; i--) {
		__u32 o = i * 4;
		if (o >= optlen)
			continue;
		__u32 *src = data + l4 + sizeof(struct tcphdr) + o;
		__u32 *dst = (void *)src + len;
		if ((void *)(dst + 1) > end)
			return -2;
		*dst = *src;
	}
	struct tcphdr *th = data + l4;
	if ((void *)(th + 1) > end)
		return -2;
	__u8 *o = (void *)(th + 1);
	if (len == TOA_LEN4) {
		if ((void *)(o + TOA_LEN4) > end)
			return -2;
		__builtin_memcpy(o, opt, TOA_LEN4);
	} else {
		if ((void *)(o + TOA_LEN6) > end)
			return -2;
		__builtin_memcpy(o, opt, TOA_LEN6);
	}
	th->doff = th->doff + len / 4;
	return toa_grown(ctx, p, len);
}

/* set_macs writes the Ethernet addresses the FIB (or Go) found. */
static __always_inline int set_macs(struct xdp_md *ctx, struct bpf_fib_lookup *fib)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	return 0;
}

static __always_inline void fib_addrs(struct bpf_fib_lookup *fib, struct pkt *p, struct conn_val *x)
{
	fib->family = p->family;
	fib->l4_protocol = p->proto;
	fib->sport = x->xsport;
	fib->dport = x->xdport;
	fib->tot_len = p->l3len;
	if (p->family == AF_INET) {
		fib->ipv4_src = x->xsaddr[0];
		fib->ipv4_dst = x->xdaddr[0];
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++) {
			fib->ipv6_src[i] = x->xsaddr[i];
			fib->ipv6_dst[i] = x->xdaddr[i];
		}
	}
}

/* fib_verdict turns a failed lookup into a verdict: the packet is not
 * changed yet. Without a neighbour it is dropped (the kernel cannot
 * deliver a half-translated packet) and Go is asked to resolve it. */
static __always_inline int fib_verdict(long rc, struct pkt *p, struct conn_val *x)
{
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		count(REASON_NO_NEIGH);
		note_neigh_miss(x->xdaddr, p->family);
		return XDP_DROP;
	}
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		count(REASON_TOO_BIG);
		return XDP_DROP;
	}
	count(REASON_NO_ROUTE);
	return XDP_PASS;
}

/* forward_nat sends a client's packet to the real server: TOA first
 * (FullNAT), then the new addresses and ports, then the MACs of the next
 * hop towards the real server. */
static __noinline int forward_nat(struct xdp_md *ctx, struct pkt *p, struct conn_val *x,
			      struct dest_info *d, int toa)
{
	struct bpf_fib_lookup fib = {};

	fib_addrs(&fib, p, x);
	if (toa)
		fib.tot_len += p->family == AF_INET ? TOA_LEN4 : TOA_LEN6;
	fib.ifindex = d->ifindex ? d->ifindex : ctx->ingress_ifindex;
	/* The next hop Go resolved over netlink when it has one (a FIB
	 * lookup per packet costs more than the rewrite), else the FIB's. */
	long rc = BPF_FIB_LKUP_RET_FWD_DISABLED;
	if (!(d->flags & DEST_F_HAVE_MAC))
		rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED && (d->flags & DEST_F_HAVE_MAC)) {
		__builtin_memcpy(fib.dmac, d->dmac, ETH_ALEN);
		__builtin_memcpy(fib.smac, d->smac, ETH_ALEN);
		fib.ifindex = d->ifindex;
		rc = d->mtu && fib.tot_len > d->mtu ? BPF_FIB_LKUP_RET_FRAG_NEEDED : BPF_FIB_LKUP_RET_SUCCESS;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_verdict(rc, p, x);
	if (csum_prepare(ctx, p)) {
		count(REASON_MALFORMED);
		return XDP_PASS;
	}
	if (toa && (p->seed ? insert_toa_tail(ctx, p) : insert_toa(ctx, p)) == -2)
		return XDP_DROP;
	if (nat_rewrite(ctx, p, x) || set_macs(ctx, &fib))
		return XDP_DROP;
	return egress(ctx, fib.ifindex);
}

/* account_out counts a reply (the OutPkts and OutBytes of ipvsadm). */
static __always_inline void account_out(__u32 svc, __u32 dest, __u32 bytes)
{
	struct stats *s = bpf_map_lookup_elem(&svc_stats, &svc);
	if (s) {
		s->out_pkts += 1;
		s->out_bytes += bytes;
	}
	s = bpf_map_lookup_elem(&dest_stats, &dest);
	if (s) {
		s->out_pkts += 1;
		s->out_bytes += bytes;
	}
}

/* fwd_key is the forward entry's key of a reply entry: its x tuple
 * reversed. */
static __always_inline void fwd_key(struct conn_key *fk, struct conn_val *rv, __u8 proto, __u8 family)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		fk->saddr[i] = rv->xdaddr[i];
		fk->daddr[i] = rv->xsaddr[i];
	}
	fk->sport = rv->xdport;
	fk->dport = rv->xsport;
	fk->proto = proto;
	fk->family = family;
}

/* reply_of tells whether the reply entry rv belongs to the connection of
 * p, a client's packet: whether its forward key is p's tuple. */
static __always_inline int reply_of(const struct conn_val *rv, const struct pkt *p)
{
	int same = rv->xsport == p->dport && rv->xdport == p->sport;
#pragma unroll
	for (int i = 0; i < 4; i++)
		same &= rv->xsaddr[i] == p->daddr[i] && rv->xdaddr[i] == p->saddr[i];
	return same;
}

/* nat_reply un-NATs a real server's reply and sends it to the client. */
static __noinline int nat_reply(struct xdp_md *ctx, struct pkt *p, struct conn_val *rv, __u32 now)
{
	struct conn_key fk = {};
	struct bpf_fib_lookup fib = {};

	fwd_key(&fk, rv, p->proto, p->family);
	struct conn_val *fv = conn_lookup(&fk);
	if (!fv || (fv->flags & CONN_F_REPLY)) {
		count(REASON_STALE);
		return XDP_PASS;
	}
	if (fv->last_seen != now)
		fv->last_seen = now;
	if (rv->last_seen != now)
		rv->last_seen = now;
	if (p->proto == IPPROTO_TCP) {
		__u32 next = tcp_next_nat(fv->state, p->tcp_flags, 1);
		set_state(fv, next);
	}
	account_out(fv->svc, fv->dest, p->l3len);

	fib_addrs(&fib, p, rv);
	fib.ifindex = ctx->ingress_ifindex;
	long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_verdict(rc, p, rv);
	if (csum_prepare(ctx, p)) {
		count(REASON_MALFORMED);
		return XDP_PASS;
	}
	if (nat_rewrite(ctx, p, rv) || set_macs(ctx, &fib))
		return XDP_DROP;
	return egress(ctx, fib.ifindex);
}

/* conn_replace writes v under k, over whatever entry is there. */
static __noinline long conn_replace6(const struct conn_key *k, const struct conn_val *v)
{
	return bpf_map_update_elem(&conns, k, v, BPF_ANY);
}

static __always_inline long conn_replace(const struct conn_key *k, const struct conn_val *v)
{
	if (k->family == AF_INET) {
		struct conn_key4 k4 = {};
		conn_key4_of(&k4, k);
		return bpf_map_update_elem(&conns4, &k4, v, BPF_ANY);
	}
	return conn_replace6(k, v);
}

/* reply_takeover gives a new NAT connection the reply entry rk that
 * another connection holds: the client reuses its address and port
 * towards another VIP of the same real server, so the real server sees
 * the same tuple. The kernel lets it (ip_vs_conn_out_get finds the newest
 * connection first); here the new connection takes the entry over when
 * the holder is over (TCP TIME_WAIT or CLOSE, or its forward entry gone)
 * or is UDP (which has no end: the newest flow gets the replies, as in
 * the kernel). A live TCP holder keeps it: the real server cannot tell the
 * two apart, and its answer to the new SYN would reset the live
 * connection; the SYN is dropped (nat-clash) and the client's retry
 * succeeds once the old connection is over. The holder's forward entry
 * stays until it expires; Go then deletes the reply entry only if it still
 * points back at it. Returns 0 when rv is in place, else -1. Inline: a
 * frame of its own under nat_setup made the chain 544 bytes on Linux 6.1,
 * which rounds every frame up to 32 (TestLinux61StackDepth). */
static __always_inline int reply_takeover(struct conn_key *rk, struct conn_val *rv)
{
	struct conn_key fk = {};
	struct conn_val *old = conn_lookup(rk);

	if (old) {
		if (!(old->flags & CONN_F_REPLY))
			return -1;
		fwd_key(&fk, old, rk->proto, rk->family);
		struct conn_val *fv = conn_lookup(&fk);
		if (fv && !(fv->flags & CONN_F_REPLY) && rk->proto == IPPROTO_TCP &&
		    fv->state != ST_TIME_WAIT && fv->state != ST_CLOSE)
			return -1;
	}
	return conn_replace(rk, rv) ? -1 : 0;
}

/* nat_setup completes a new NAT or FullNAT connection: it fills nc's x
 * tuple (towards the real server) and inserts the reply entry. FullNAT
 * picks the local address and port here. It returns 0, or -1 when the
 * connection cannot be made (counted). */
static __noinline int nat_setup(struct pkt *p, struct svc_info *s, struct dest_info *d,
			    struct conn_val *nc)
{
	struct conn_key rk = {};
	/* The reply entry is built in scratch's second slot, not on the
	 * stack: this function is on the program's deepest chain of calls
	 * (TestLinux61StackDepth). */
	__u32 one = 1;
	struct conn_val *rvp = bpf_map_lookup_elem(&scratch, &one);
	__u16 rport = d->port ? d->port : p->dport;

	if (!rvp)
		return -1;
	*rvp = *nc;

	nc->flags = CONN_F_NAT;
	rvp->flags = CONN_F_NAT | CONN_F_REPLY;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		nc->xdaddr[i] = d->addr[i];
		rvp->xsaddr[i] = p->daddr[i];
		rvp->xdaddr[i] = p->saddr[i];
		rk.saddr[i] = d->addr[i];
	}
	nc->xdport = rport;
	rvp->xsport = p->dport;
	rvp->xdport = p->sport;
	rk.sport = rport;
	rk.proto = p->proto;
	rk.family = p->family;

	if (d->method == METHOD_NAT) {
#pragma unroll
		for (int i = 0; i < 4; i++) {
			nc->xsaddr[i] = p->saddr[i];
			rk.daddr[i] = p->saddr[i];
		}
		nc->xsport = p->sport;
		rk.dport = p->sport;
		if (conn_insert(&rk, rvp) && reply_takeover(&rk, rvp)) {
			count(REASON_NAT_CLASH);
			return -1;
		}
		return 0;
	}

	if (p->proto == IPPROTO_TCP)
		nc->flags |= CONN_F_TOA;
	__u32 n = s->nladdrs;
	if (n == 0 || n > MAX_LADDRS) {
		count(REASON_NO_LPORT);
		return -1;
	}
	__u32 zero = 0;
	__u32 *cur = bpf_map_lookup_elem(&lport_cursor, &zero);
	if (!cur) {
		count(REASON_NO_LPORT);
		return -1;
	}
	/* Each CPU starts somewhere else in the (port, address) space. */
	__u32 c = *cur ? *cur : (bpf_get_smp_processor_id() * GOLDEN_RATIO_32) | 1;
	/* One exit, at the loop's test: Linux 5.3 to 6.6 (Debian 12's 6.1)
	 * accept a loop only when a jump closes it. With a return inside
	 * the loop clang let the entry jump into its middle, so the
	 * increment fell through into the top: "back-edge from insn".
	 * TestLinux61ControlFlow checks every loop of the program. */
	__u32 k = c;
	long err = -1;
	for (__u32 i = 0; i < LPORT_TRIES && err; i++) {
		k = c + i;
		__u32 li = (k % n) & (MAX_LADDRS - 1);
		__u16 port = LPORT_MIN + (k / n) % (65536 - LPORT_MIN);
#pragma unroll
		for (int j = 0; j < 4; j++)
			rk.daddr[j] = s->laddr[li][j];
		rk.dport = bpf_htons(port);
		err = conn_insert(&rk, rvp);
	}
	if (!err) {
#pragma unroll
		for (int j = 0; j < 4; j++)
			nc->xsaddr[j] = rk.daddr[j];
		nc->xsport = rk.dport;
		*cur = k + 1;
		return 0;
	}
	*cur = c + LPORT_TRIES;
	count(REASON_NO_LPORT);
	return -1;
}

/* nat_icmp translates an ICMP error about a NAT or FullNAT packet: the
 * quoted packet (inner headers and ports, with their checksums) becomes
 * the one the other side sent, and the error goes to that side: from a
 * real server's side to the client, from the VIP; from the client's side
 * to the real server (from the local address for FullNAT). Anything else
 * is left to the kernel. */
static __noinline int nat_icmp(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 l3 = p->l3off & 0x3f;
	__u32 l4 = (l3 + p->ihl) & 0xff;
	__u32 in3 = l4 + 8;
	__u32 iihl;
	struct conn_key k = {};
	__u8 *ic = data + l4;

	if ((void *)(ic + 8) > end)
		return XDP_PASS;
	if (p->family == AF_INET) {
		if (p->proto != IPPROTO_ICMP || (ic[0] != 3 && ic[0] != 11 && ic[0] != 12))
			return XDP_PASS;
		struct iphdr *iip = data + in3;
		if ((void *)(iip + 1) > end || iip->version != 4 || iip->ihl < 5)
			return XDP_PASS;
		iihl = (iip->ihl * 4) & 0x3c;
		k.proto = iip->protocol;
		k.saddr[0] = iip->daddr;
		k.daddr[0] = iip->saddr;
	} else {
		if (p->proto != IPPROTO_ICMPV6 || ic[0] < 1 || ic[0] > 4)
			return XDP_PASS;
		struct ipv6hdr *iip6 = data + in3;
		if ((void *)(iip6 + 1) > end)
			return XDP_PASS;
		iihl = sizeof(*iip6);
		k.proto = iip6->nexthdr;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			k.saddr[i] = iip6->daddr[i];
			k.daddr[i] = iip6->saddr[i];
		}
	}
	if (k.proto != IPPROTO_TCP && k.proto != IPPROTO_UDP)
		return XDP_PASS;
	__u32 in4 = (in3 + iihl) & 0xff;
	__u16 *ports = data + in4;
	if ((void *)(ports + 2) > end)
		return XDP_PASS;
	k.sport = ports[1];
	k.dport = ports[0];
	k.family = p->family;
	/* Not conn_lookup, whose IPv6 lookup is a call: on Linux 6.8 and
	 * older, which count every frame as at least 32 bytes, that call
	 * took this chain past the 512 bytes of stack a program may have.
	 * TestLinux61StackDepth adds them up. */
	struct conn_val *e;
	if (k.family == AF_INET) {
		struct conn_key4 k4 = {};
		conn_key4_of(&k4, &k);
		e = bpf_map_lookup_elem(&conns4, &k4);
	} else {
		e = bpf_map_lookup_elem(&conns, &k);
	}
	if (!e || !(e->flags & CONN_F_NAT))
		return XDP_PASS;
	struct conn_val *x = e;

	/* The error's source changes where the entry's packets leave with
	 * another source than they came with (the VIP towards the client,
	 * the local address towards a FullNAT real server). */
	int new_src = x->xsport != k.sport;
#pragma unroll
	for (int i = 0; i < 4; i++)
		new_src |= x->xsaddr[i] != k.saddr[i];
	__u32 osrc[4], odst[4];
#pragma unroll
	for (int i = 0; i < 4; i++) {
		osrc[i] = new_src ? x->xsaddr[i] : p->saddr[i];
		odst[i] = x->xdaddr[i];
	}
	/* The FIB lookup's 64 bytes live in a per-CPU map, not on the stack:
	 * this function ends the program's deepest chain of calls
	 * (TestLinux61StackDepth). */
	__u32 zero = 0;
	struct bpf_fib_lookup *fibp = (void *)bpf_map_lookup_elem(&fib_scratch, &zero);
	if (!fibp)
		return XDP_PASS;
	__builtin_memset(fibp, 0, sizeof(*fibp));
	fibp->family = p->family;
	fibp->l4_protocol = p->proto;
	fibp->tot_len = p->l3len;
	if (p->family == AF_INET) {
		fibp->ipv4_src = osrc[0];
		fibp->ipv4_dst = odst[0];
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++) {
			fibp->ipv6_src[i] = osrc[i];
			fibp->ipv6_dst[i] = odst[i];
		}
	}
	fibp->ifindex = ctx->ingress_ifindex;
	long rc = bpf_fib_lookup(ctx, fibp, sizeof(*fibp), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
			note_neigh_miss(odst, p->family);
			count(REASON_NO_NEIGH);
			return XDP_DROP;
		}
		count(REASON_NO_ROUTE);
		return XDP_PASS;
	}

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	__u32 idiff = 0, icdiff = 0, odiff = 0;
	/* The quoted packet: from x's destination to x's source. */
	if (p->family == AF_INET) {
		struct iphdr *iip = data + in3;
		if ((void *)(iip + 1) > end)
			return XDP_DROP;
		idiff = diff32(iip->saddr, x->xdaddr[0]) + diff32(iip->daddr, x->xsaddr[0]);
		iip->saddr = x->xdaddr[0];
		iip->daddr = x->xsaddr[0];
		__u16 old = iip->check;
		iip->check = csum_apply(old, idiff);
		icdiff = idiff + diff16(old, iip->check);
	} else {
		struct ipv6hdr *iip6 = data + in3;
		if ((void *)(iip6 + 1) > end)
			return XDP_DROP;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			idiff += diff32(iip6->saddr[i], x->xdaddr[i]) + diff32(iip6->daddr[i], x->xsaddr[i]);
			iip6->saddr[i] = x->xdaddr[i];
			iip6->daddr[i] = x->xsaddr[i];
		}
		icdiff = idiff;
	}
	ports = data + in4;
	if ((void *)(ports + 4) > end && k.proto == IPPROTO_UDP)
		return XDP_DROP;
	if ((void *)(ports + 2) > end)
		return XDP_DROP;
	__u32 pdiff = diff16(ports[0], x->xdport) + diff16(ports[1], x->xsport);
	ports[0] = x->xdport;
	ports[1] = x->xsport;
	icdiff += pdiff;
	/* The quoted TCP or UDP checksum, when the quote holds it. */
	__u16 *l4sum = k.proto == IPPROTO_TCP ? (void *)ports + 16 : (void *)ports + 6;
	if ((void *)(l4sum + 1) <= end && (*l4sum || k.proto == IPPROTO_TCP || p->family == AF_INET6)) {
		__u16 old = *l4sum;
		__u16 c = csum_apply(old, idiff + pdiff);
		if (k.proto == IPPROTO_UDP && !c)
			c = 0xffff;
		*l4sum = c;
		icdiff += diff16(old, c);
	}

	/* The error itself. */
	if (p->family == AF_INET) {
		struct iphdr *ip = data + l3;
		if ((void *)(ip + 1) > end)
			return XDP_DROP;
		odiff = diff32(ip->saddr, osrc[0]) + diff32(ip->daddr, odst[0]);
		ip->saddr = osrc[0];
		ip->daddr = odst[0];
		ip->check = csum_apply(ip->check, odiff);
	} else {
		struct ipv6hdr *ip6 = data + l3;
		if ((void *)(ip6 + 1) > end)
			return XDP_DROP;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			odiff += diff32(ip6->saddr[i], osrc[i]) + diff32(ip6->daddr[i], odst[i]);
			ip6->saddr[i] = osrc[i];
			ip6->daddr[i] = odst[i];
		}
		icdiff += odiff; /* ICMPv6 sums a pseudo-header */
	}
	__u16 *icsum = data + l4 + 2;
	if ((void *)(icsum + 1) > end)
		return XDP_DROP;
	*icsum = csum_apply(*icsum, icdiff);
	if (set_macs(ctx, fibp))
		return XDP_DROP;
	count(REASON_ICMP);
	return egress(ctx, fibp->ifindex);
}

#endif
