// Command gvsadm is ipvsadm for gvsd: ipvsadm 1.31's command line and output,
// applied through gvsd's admin socket. A symlink named ipvsadm works too.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/ipvsadm"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ipvsadm.Run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr, client.New(wire.DefaultSocket()))
	stop()
	os.Exit(code)
}
