// Package daemon is gvsd: it wires an engine, the director, the admin API,
// and (from a keepalived.conf) health checkers and VRRP, and runs them until
// SIGTERM, reloading the configuration on SIGHUP.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/director"
	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/engine/proxy"
	"github.com/gvs-lb/gvs/internal/ipvssync"
)

// Options are gvsd's settings, from its command line.
type Options struct {
	Engine     string        // proxy, xdp, ipvs or auto
	Socket     string        // admin API socket
	ConfigFile string        // keepalived.conf, optional
	Interfaces []string      // for the xdp engine
	XDPMode    string        // native, generic, or "" for native falling back to generic
	Grace      time.Duration // how long established connections may finish on SIGTERM
	// XDPMaxServices and XDPMaxDests size the xdp engine's maps (0: its
	// defaults; see xdp.Options).
	XDPMaxServices, XDPMaxDests int
	// XDPMaxConns sizes the xdp engine's connection table of each
	// address family (0: its default; see xdp.Options.MaxConns).
	XDPMaxConns uint32
	// UDPFlows and UDPFlowsPerService bound the proxy engine's UDP flows
	// (0: from the descriptor limit; see proxy.Options).
	UDPFlows, UDPFlowsPerService int
	// TCPConns and TCPConnsPerService bound the proxy engine's open TCP
	// connections (0: from the descriptor limit; see proxy.Options).
	TCPConns, TCPConnsPerService int
	// BPFPin is where the xdp engine pins its connection table and links
	// so that a restarted gvsd keeps established connections ("": not
	// pinned); DontReleaseIPVS keeps them pinned and attached on a clean
	// stop (see xdp.Options.PinPath and KeepPinned).
	BPFPin          string
	DontReleaseIPVS bool
	// FWMarkRules and FWMarkRules6 are files of MARK rules in
	// iptables-save (ip6tables-save) form by which the xdp engine
	// classifies connections for firewall-mark services (see package
	// fwmark); SIGHUP re-reads them.
	FWMarkRules, FWMarkRules6 string
}

// Run runs gvsd until ctx ends, SIGTERM or SIGINT arrives, or the admin
// API fails. On the way out the admin socket stays up, read-only, while
// established connections drain for up to opts.Grace; a second SIGTERM or
// SIGINT ends the grace period at once.
func Run(ctx context.Context, opts Options, log *slog.Logger) error {
	stopping := make(chan os.Signal, 2)
	signal.Notify(stopping, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(stopping)
	// SIGHUP is caught from here on, and read once the configuration is
	// running: one that arrives while the first configuration is applied
	// (its services may already be in the kernel) reloads right after,
	// where SIGHUP's default action would end gvsd.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, cancel := context.WithCancel(ctx) // checkers, VRRP, reloads
	defer cancel()

	// The configuration is read once: the ipvs engine needs lvs_flush
	// from it before it starts, and the first plan is applied after.
	var first *loaded
	if opts.ConfigFile != "" {
		var err error
		if first, err = loadConfig(opts.ConfigFile, log); err != nil {
			return err
		}
	}
	eng, err := newEngine(opts, first, log)
	if err != nil {
		return err
	}
	log.Info("engine started", "engine", eng.Name())
	dir := director.New(eng, log)
	// Connection sync daemons: gvsadm --start-daemon, or lvs_sync_daemon
	// following its VRRP instance.
	syncd := ipvssync.NewManager(log, eng)

	rules, err := startFWMarkRules(opts, eng, log)
	if err != nil {
		closeEngine(context.Background(), eng, opts.Grace, log)
		return err
	}
	k, err := startKeepalived(ctx, opts.ConfigFile, first, dir, syncd, log)
	if err != nil {
		closeEngine(context.Background(), eng, opts.Grace, log)
		return err
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				rules.reload()
				k.reload(ctx)
			}
		}
	}()

	srv := api.NewServer(dir, log, k)
	srv.ServeDaemons(SyncDaemons(syncd))
	if st, ok := eng.(engine.Stater); ok {
		srv.ServeEngine(func() wire.Engine { return engineView(st.State()) })
	}
	apiCtx, stopAPI := context.WithCancel(context.Background()) // up until Run returns
	defer stopAPI()
	apiErr := make(chan error, 1)
	go func() { apiErr <- srv.Listen(apiCtx, opts.Socket) }()
	log.Info("admin API listening", "socket", opts.Socket)

	apiDone := false
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", opts.Grace)
	case sig := <-stopping:
		log.Info("shutting down", "signal", sig.String(), "grace", opts.Grace)
	case err = <-apiErr:
		apiDone = true
	}
	srv.RefuseChanges("gvsd is shutting down")
	cancel()
	k.stop()
	syncd.Close()

	// A second signal cuts the grace period short.
	grace, endGrace := context.WithCancel(context.Background())
	defer endGrace()
	go func() {
		select {
		case sig := <-stopping:
			log.Info("ending the grace period", "signal", sig.String())
			endGrace()
		case <-grace.Done():
		}
	}()
	closeEngine(grace, eng, opts.Grace, log)
	endGrace()

	stopAPI()
	if !apiDone {
		if aerr := <-apiErr; aerr != nil {
			log.Warn("admin API", "error", aerr)
		}
	}
	return err
}

// closeEngine closes eng, letting established connections finish for
// grace or until ctx ends.
func closeEngine(ctx context.Context, eng engine.Engine, grace time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := eng.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		log.Warn("engine close", "error", err)
	}
}

// newEngine starts the engine opts name; first is the configuration file
// as loaded (nil without one).
func newEngine(opts Options, first *loaded, log *slog.Logger) (engine.Engine, error) {
	if opts.Engine != "xdp" && opts.Engine != "auto" && (opts.BPFPin != "" || opts.DontReleaseIPVS) {
		log.Warn("--bpf-pin and --dont-release-ipvs apply to the xdp engine only; ignored", "engine", opts.Engine)
	}
	switch opts.Engine {
	case "proxy", "":
		return newProxy(opts, log), nil
	case "xdp", "auto":
		eng, err := newXDP(opts, log)
		if err == nil || opts.Engine == "xdp" {
			return eng, err
		}
		log.Warn("xdp engine unavailable, using the proxy engine", "reason", err)
		return newProxy(opts, log), nil
	case "ipvs":
		return newIPVS(first, log)
	}
	return nil, fmt.Errorf("unknown engine %q (want proxy, xdp, ipvs or auto)", opts.Engine)
}

// newProxy is the proxy engine. Its listeners bind with IP_FREEBIND: a VRRP
// backup serves its virtual addresses the moment they arrive.
func newProxy(opts Options, log *slog.Logger) engine.Engine {
	return proxy.New(log.With("engine", "proxy"), proxy.Options{FreeBind: true, UDPFlows: opts.UDPFlows, UDPFlowsPerService: opts.UDPFlowsPerService,
		TCPConns: opts.TCPConns, TCPConnsPerService: opts.TCPConnsPerService})
}
