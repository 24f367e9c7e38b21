/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Types shared by toa_reader.c and internal/toa. */
#ifndef GVS_TOA_READER_H
#define GVS_TOA_READER_H

#define TOA_MAX_CONNS 65536
#define TOA_KIND 254
#define TOA_LEN4 8
#define TOA_LEN6 20

/* A connection as the packet carries it: the director's local address
 * and port (source), the real server's (destination). */
struct toa_key {
	__u32 saddr[4]; /* network order; IPv4 in saddr[0] */
	__u32 daddr[4];
	__u16 sport;    /* network order */
	__u16 dport;
	__u32 family;
};

/* The client, from the TOA option. */
struct toa_val {
	__u32 addr[4];
	__u16 port;     /* network order */
	__u16 pad;
	__u32 family;
};

#endif
