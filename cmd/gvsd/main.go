// Command gvsd is the GVS daemon: a layer-4 load balancer (the IPVS data
// plane) with keepalived's health checks and VRRP, driven by gvsadm.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/daemon"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var opts daemon.Options
	var ifaces listFlag
	var test, debug bool
	flag.StringVar(&opts.Engine, "engine", "proxy", "data plane: proxy, xdp or auto")
	flag.StringVar(&opts.Socket, "socket", api.DefaultSocket(), "admin API unix socket (env GVS_SOCKET)")
	flag.StringVar(&opts.ConfigFile, "f", "", "keepalived.conf to run (also --use-file)")
	flag.StringVar(&opts.ConfigFile, "use-file", "", "keepalived.conf to run")
	flag.BoolVar(&test, "t", false, "test the configuration file and exit (also --config-test)")
	flag.BoolVar(&test, "config-test", false, "test the configuration file and exit")
	flag.Var(&ifaces, "interface", "interface the xdp engine attaches to (repeat for several)")
	flag.StringVar(&opts.XDPMode, "xdp-mode", "", "XDP attach mode: native, generic, or empty for native falling back to generic")
	flag.DurationVar(&opts.Grace, "grace", 10*time.Second, "how long established connections may finish on SIGTERM")
	flag.BoolVar(&debug, "D", false, "debug logging (as keepalived's -D)")
	for _, compat := range []string{"n", "l"} { // keepalived's --dont-fork, --log-console: gvsd always does both
		flag.Bool(compat, false, "accepted for keepalived compatibility; gvsd never forks and logs to stderr")
	}
	flag.Parse()
	opts.Interfaces = ifaces

	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if test {
		os.Exit(daemon.ConfigTest(opts.ConfigFile, os.Stderr))
	}
	if err := daemon.Run(context.Background(), opts, log); err != nil {
		fmt.Fprintln(os.Stderr, "gvsd:", err)
		os.Exit(1)
	}
}
