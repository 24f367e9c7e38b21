// Command rs is a tiny real server for demos, end-to-end tests and
// benchmarks: an HTTP server that answers every request with its name, and
// optionally a UDP server that answers each datagram with its name.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	name := flag.String("name", "RS", "what to answer with")
	listen := flag.String("listen", "127.0.0.1:9001", "TCP address for HTTP")
	udp := flag.String("udp", "", "UDP address to answer datagrams on (off when empty)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *udp != "" {
		pc, err := net.ListenPacket("udp", *udp)
		if err != nil {
			slog.Error("udp listen", "error", err)
			os.Exit(1)
		}
		go serveUDP(pc, *name)
		defer pc.Close()
	}
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Client", r.RemoteAddr)
			fmt.Fprintln(w, *name)
		})}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		slog.Error("http listen", "error", err)
		os.Exit(1)
	}
}

func serveUDP(pc net.PacketConn, name string) {
	buf := make([]byte, 65536)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo([]byte(name+"\n"), from)
	}
}
