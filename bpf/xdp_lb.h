/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types and constants shared by xdp_lb.c and its Go loader
 * (internal/engine/xdp, whose structs bpf2go generates from these).
 */
#ifndef GVS_XDP_LB_H
#define GVS_XDP_LB_H

/* MAX_SERVICES and MAX_DESTS are the maps' sizes in the object; Go sets
 * them at load (internal/engine/xdp Options), below 65536 (conn_val). */
#define MAX_SERVICES 256
#define MAX_DESTS 4096
#define MAX_SVC_DESTS 256   /* real servers one lc-family service may have */
#define TAB_SIZE 4096       /* most slots of a scheduler table (Maglev needs 4093) */
#define TAB_CHUNK 16        /* slots per element of a table's map */
#define SH_TAB 256
#define MH_TAB 4093
#define WRR_HDR 3           /* rr/wrr table: n, mw, di, then the n servers */
#define MAX_WRR_DESTS (TAB_SIZE - WRR_HDR)
#define WRR_TRIES 8         /* walks per connection when other CPUs move the cursor */
#define MAX_CONNS 262144
#define MAX_PERSIST 65536
#define NO_DEST 0xffffffff

#define GOLDEN_RATIO_32 0x61C88647
#define MH_KEY1 2654435761ULL

#define GUE_SPORT_MIN 0xC000
#define GUE_SPORT_MASK 0x3FFF

enum sched_kind {
	SCHED_NONE = 0,
	SCHED_WRR = 1,  /* rr, wrr: the kernel's walk (rr is wrr with weights 1) */
	SCHED_SH = 2,
	SCHED_DH = 3,
	SCHED_MH = 4,
	SCHED_LC = 5,
	SCHED_WLC = 6,
	SCHED_SED = 7,
	SCHED_NQ = 8,
	SCHED_FO = 9,
	SCHED_OVF = 10,
	SCHED_LBLC = 11,  /* xdp_locality.h */
	SCHED_LBLCR = 12,
};

/* svc_info.flags */
#define SVC_F_PERSISTENT 0x1
#define SVC_F_FALLBACK 0x2  /* sh-fallback, mh-fallback */
#define SVC_F_HASH_PORT 0x4 /* sh-port, mh-port */
#define SVC_F_ONE_PACKET 0x8 /* ipvsadm -o on a UDP service: every datagram is
                                * scheduled on its own and leaves no
                                * connection entry (DR and TUN only) */

/* dest_info.flags */
#define DEST_F_IN_USE 0x1    /* the slot holds a real server */
#define DEST_F_AVAILABLE 0x2 /* in its service: may take new connections */
#define DEST_F_HAVE_MAC 0x4  /* dmac/smac/ifindex are resolved */

#define METHOD_ROUTE 0
#define METHOD_TUNNEL 1
#define METHOD_NAT 2     /* ipvsadm -m: rewrite the destination, un-NAT replies */
#define METHOD_FULLNAT 3 /* also rewrite the source to a local address */

#define MAX_LADDRS 16     /* FullNAT local addresses per service */
#define LPORT_MIN 1024    /* FullNAT local ports: LPORT_MIN..65535 */
#define LPORT_TRIES 16    /* local ports tried for one new connection */

#define TOA_KIND 254      /* TCP option carrying the client address */
#define TOA_LEN4 8        /* kind, len, port, IPv4 address */
#define TOA_LEN6 20       /* kind, len, port, IPv6 address */

/* conn_val.flags */
#define CONN_F_REPLY 0x1  /* keyed by the real server's reply */
#define CONN_F_NAT 0x2    /* packets leave with the x* addresses and ports */
#define CONN_F_TOA 0x4    /* FullNAT TCP: insert TOA into the SYN and first ACK */

#define TUN_IPIP 0
#define TUN_GUE 1
#define TUN_GRE 2      /* GRE without checksum (ipvsadm --tun-nocsum) */
#define TUN_GRE_CSUM 3 /* GRE with its checksum (--tun-csum) */
#define TUN_GUE_CSUM 4 /* GUE with its UDP checksum (--tun-csum) */

/* Connection states: the kernel's IP_VS_TCP_S_* numbers, and UDP. */
enum conn_state {
	ST_NONE = 0,
	ST_ESTABLISHED = 1,
	ST_SYN_SENT = 2,
	ST_SYN_RECV = 3,
	ST_FIN_WAIT = 4,
	ST_TIME_WAIT = 5,
	ST_CLOSE = 6,
	ST_CLOSE_WAIT = 7,
	ST_LAST_ACK = 8,
	ST_LISTEN = 9,
	ST_SYNACK = 10,
	ST_UDP = 16,
} __attribute__((packed)); /* one byte in conn_val */

enum drop_reason {
	REASON_NONE = 0,
	REASON_MALFORMED = 1,
	REASON_FRAGMENT = 2,
	REASON_NOT_IP = 3,
	REASON_NOT_L4 = 4,
	REASON_NO_SERVICE = 5,
	REASON_NOT_SYN = 6,
	REASON_NO_DEST = 7,      /* no real server, and no refusal could be sent */
	REASON_NO_NEIGH = 8,
	REASON_NO_ROUTE = 9,
	REASON_TOO_BIG = 10,
	REASON_STALE = 11,
	REASON_TOA_NO_ROOM = 12, /* TOA not inserted: the TCP options are full */
	REASON_NO_LPORT = 13,    /* FullNAT: no free local address and port */
	REASON_NAT_CLASH = 14,   /* NAT: the reply tuple is taken by another connection */
	REASON_ICMP = 15,        /* ICMP errors translated for NAT/FullNAT (not a drop) */
	REASON_REFUSED = 16,     /* no real server: ICMP port unreachable sent back */
	REASON_MAX = 17,
};

/* A firewall-mark service's key has the mark in addr[0] (host order),
 * port and proto 0 (no other service has proto 0). */
struct svc_key {
	__u32 addr[4]; /* network order; IPv4 in addr[0] */
	__u16 port;    /* network order */
	__u8 proto;
	__u8 family;
};

/* The firewall-mark classifier's key (svc_find): an LPM trie entry
 * matches proto, family and port exactly (the first 32 bits of the
 * prefix) and the destination's first prefixlen - 32 bits. port 0: any
 * port, looked up when the packet's own port has no entry. */
struct fwm_key {
	__u32 prefixlen;
	__u8 proto;
	__u8 family;
	__u16 port;    /* network order */
	__u32 addr[4]; /* network order; IPv4 in addr[0] */
};

#define MAX_FWM_ENTRIES 65536 /* internal/fwmark.MaxEntries */

struct svc_info {
	__u32 index;
	enum sched_kind sched;
	__u32 flags;    /* SVC_F_* */
	__u32 gen;      /* which of the service's two tables is live */
	__u32 tab_len;
	__u32 ptimeout; /* persistence timeout, seconds */
	__u32 pmask[4]; /* persistence netmask, network order */
	__u32 nladdrs;  /* FullNAT: how many of laddr are set */
	__u32 laddr[MAX_LADDRS][4]; /* FullNAT local address pool, network order */
};

struct dest_info {
	__u32 addr[4];
	__u32 ifindex; /* DR: egress interface */
	__s32 weight;
	__u32 uthreshold;
	__u32 svc;
	__u16 port;     /* network order */
	__u16 tun_port; /* network order */
	__u8 family;
	__u8 method;
	__u8 tun_type;
	__u8 flags;
	__u8 smac[6];   /* DR: ours; TUN: ours towards the next hop */
	__u8 dmac[6];   /* DR: the real server's; TUN: the next hop's */
	__u32 mtu;      /* TUN: the egress MTU, when the FIB is not asked */
};

struct dest_load {
	__s64 active;
	__s64 inactive;
	__u32 overloaded;
	__u32 pad;
};

/*
 * The rr/wrr cursor of a service, one __u64 in the cursors map, changed
 * only by compare-and-swap: bits 63-48 the generation of the table it
 * walks (svc_info.gen, 0 or 1: the table at index * 2 + gen in the
 * tables map; the walk reads it with table_slot), 47-32 the position of
 * the server chosen last plus one (0: the list head), 31-0 the current
 * weight cw.
 */
#define CUR_GEN(c) ((__u32)((c) >> 48))
#define CUR_POS(c) ((__s32)(((c) >> 32) & 0xffff) - 1)
#define CUR_CW(c) ((__s32)(__u32)(c))
#define CUR_MAKE(gen, pos, cw) \
	(((__u64)((gen) & 0xffff) << 48) | ((__u64)(((pos) + 1) & 0xffff) << 32) | (__u32)(cw))

/* The argument of swap_cursor: Go moves a cursor by compare-and-swap. */
struct cursor_swap {
	__u32 svc;
	__u32 pad;
	__u64 old;
	__u64 new;
};

struct conn_key {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

/* The key of IPv4 connections, which have their own table (conns4): the
 * kernel hashes the whole key (jhash) for every lookup, and 16 bytes hash
 * faster than conn_key's 40. The fields are conn_key's. */
struct conn_key4 {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

/*
 * One connection is one entry for DR and TUN. NAT and FullNAT add a second
 * entry keyed by the real server's reply (CONN_F_REPLY); each entry holds
 * the addresses and ports its packets leave with (x*). The forward entry
 * keeps the state and the time; the reply entry's forward key is its x*
 * tuple reversed.
 *
 * Kept small (48 bytes: with the map's 40-byte element header and the
 * 40-byte key an element is two cache lines) because a new connection on
 * a full table is bound by the cache and TLB misses of the LRU map.
 */
struct conn_val {
	__u32 last_seen; /* the connection clock (CONN_CLOCK_SHIFT) */
	__u16 dest;      /* dests index (< MAX_DESTS) */
	__u16 svc;       /* service index (< MAX_SERVICES) */
	enum conn_state state;
	__u8 flags;      /* CONN_F_* */
	__u16 xsport;
	__u16 xdport;
	__u16 pad;
	__u32 xsaddr[4];
	__u32 xdaddr[4];
};

/* The connection clock: bpf_ktime_get_coarse_ns() >> CONN_CLOCK_SHIFT, in
 * 32 bits (units of 4.19 ms, about the kernel's tick). Go compares two
 * readings as a signed 32-bit difference, which spans 104 days either
 * way. */
#define CONN_CLOCK_SHIFT 22

struct persist_key {
	__u32 addr[4];
	__u32 svc;
	__u32 family;
};

struct persist_val {
	__u64 last_seen;
	__u32 dest;
	__u32 pad;
};

/* lblc, lblcr (xdp_locality.h): the server(s) a destination address of a
 * service was last given. */
#define MAX_LOCALITY 65536
#define LOC_SET 8            /* lblcr: servers kept per address */
#define LOC_EXPIRY 20599     /* 24 h (lblc_expiration) in connection clock units */

struct locality_key {
	__u32 addr[4]; /* the packet's destination, network order */
	__u32 svc;
};

struct locality_val {
	__u32 last_use;  /* connection clock */
	__u32 last_mod;  /* lblcr: when the set last changed */
	__u16 n;         /* members of set */
	__u16 set[LOC_SET]; /* dests indexes, most recently added first */
	__u16 pad;
};

struct neigh_key {
	__u32 addr[4];
	__u32 family;
};

struct stats {
	__u64 conns;
	__u64 pkts;
	__u64 bytes;
	__u64 out_pkts;  /* NAT, FullNAT: replies */
	__u64 out_bytes;
};

struct config {
	__u32 src4;          /* tunnel source prefix, network order */
	__u32 src4_hostmask; /* bits of src4 taken from the flow hash */
	__u32 src6[4];
	__u32 src6_hostmask; /* applies to the last word */
};

#endif
