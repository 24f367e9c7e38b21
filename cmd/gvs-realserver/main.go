// Command gvs-realserver prepares a host to be a DR or TUN real server, or
// undoes that: `gvsadm realserver setup|teardown` runs it. It is a program
// of its own so that gvsadm, the director's admin tool, links neither
// netlink nor the BPF loader that the real server's side needs.
package main

import (
	"os"

	"github.com/gvs-lb/gvs/internal/realserver"
)

func main() { os.Exit(realserver.Command(os.Args[1:], os.Stdout, os.Stderr)) }
