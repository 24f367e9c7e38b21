package ipvs

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	table "github.com/gvs-lb/gvs/internal/ipvs"
)

// procConns is the kernel's connection table, the file ipvsadm -Lnc reads
// (/proc/net/ip_vs_conn), of the calling thread's network namespace.
const procConns = "/proc/thread-self/net/ip_vs_conn"

func readConns(path string) ([]table.Conn, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseConns(f)
}

// parseConns reads /proc/net/ip_vs_conn: a header line, then one
// connection a line, "TCP C6120002 C360 C612000A 0050 C613000B 0050
// TIME_WAIT 116": addresses and ports in hex (IPv6 addresses in their
// text form), the expiry in seconds.
func parseConns(r io.Reader) ([]table.Conn, error) {
	var out []table.Conn
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if n == 1 || len(f) == 0 {
			continue
		}
		if len(f) < 9 {
			return out, fmt.Errorf("%s line %d: %d fields, want at least 9", procConns, n, len(f))
		}
		var c table.Conn
		var err error
		c.Proto, _ = table.ParseProtocol(f[0])
		if c.Client, err = procAddrPort(f[1], f[2]); err == nil {
			if c.Virtual, err = procAddrPort(f[3], f[4]); err == nil {
				c.Dest, err = procAddrPort(f[5], f[6])
			}
		}
		if err != nil {
			return out, fmt.Errorf("%s line %d: %v", procConns, n, err)
		}
		c.State = f[7]
		secs, err := strconv.ParseInt(f[8], 10, 64)
		if err != nil {
			return out, fmt.Errorf("%s line %d: expiry %q: %v", procConns, n, f[8], err)
		}
		c.Expires = secs * 1000
		out = append(out, c)
	}
	return out, sc.Err()
}

func procAddrPort(addr, port string) (netip.AddrPort, error) {
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q: %v", port, err)
	}
	var a netip.Addr
	if len(addr) == 8 && !strings.Contains(addr, ":") {
		b, err := hex.DecodeString(addr)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("address %q: %v", addr, err)
		}
		a = netip.AddrFrom4([4]byte(b))
	} else if a, err = netip.ParseAddr(addr); err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}
