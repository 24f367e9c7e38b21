//go:build !linux

package proxy

import (
	"net"
	"net/netip"
)

// recvErrors is Linux's IP_RECVERR; elsewhere a UDP flow to a server that
// refuses ends with the udp timeout.
func recvErrors(pc *net.UDPConn, is4 bool) error { return nil }

func readErrors(fd int, report func(to netip.AddrPort, err error)) {}
