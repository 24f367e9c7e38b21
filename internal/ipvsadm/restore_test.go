package ipvsadm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/director"
	"github.com/gvs-lb/gvs/internal/engine/proxy"
)

// startDirector serves a director with the proxy engine on loopback: its
// API runs -R's batches as one request (api.EachBackend).
func startDirector(t *testing.T) *client.Client {
	t.Helper()
	e := proxy.New(nil, proxy.Options{})
	sock := filepath.Join(t.TempDir(), "gvsd.sock")
	srv := api.NewServer(director.New(e, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Listen(ctx, sock) }()
	t.Cleanup(func() {
		cancel()
		<-done
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		defer ccancel()
		e.Close(cctx)
	})
	c := client.New(sock)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := c.Info(context.Background())
		if err == nil {
			return c
		}
		if time.Now().After(deadline) || !errors.Is(err, client.ErrNotRunning) {
			t.Fatal(err)
		}
	}
}

// TestRestoreInBatchesAsLineByLine restores the same rules line by line
// (a backend without batches) and in batches (the director): output,
// errors, the table after, and the exit status must be the same.
func TestRestoreInBatchesAsLineByLine(t *testing.T) {
	var ports []int
	for range 5 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
	a, b, c := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	rules := strings.Join([]string{
		"-A -t " + a + " -s rr",
		"-a -t " + a + " -r 127.0.0.2:80 -m",
		"-a -t " + a + " -r 127.0.0.2:80 -m -w 3", // exists
		"-a -t " + b + " -r 127.0.0.2:80 -m",      // no such service
		"-A -t " + b + " -s wlc",
		"-Ln", // shows the lines before it
		"-e -t " + a + " -r 127.0.0.2:80 -m -w 0",
		"-D -t " + c, // the last line is refused
	}, "\n") + "\n"
	restore := func(c Client, rules string) (string, string, int) {
		var out, errb bytes.Buffer
		rc := Run(context.Background(), []string{"gvsadm", "-R"}, strings.NewReader(rules), &out, &errb, c)
		var saved bytes.Buffer
		Run(context.Background(), []string{"gvsadm", "-Sn"}, nil, &saved, io.Discard, c)
		return out.String() + "--- saved\n" + saved.String(), errb.String(), rc
	}
	lineOut, lineErr, lineRC := restore(startServer(t), rules)
	// Batches of 2 and 3: each full batch is applied while the next lines
	// are read, with the same output and errors, in the same order.
	// (Subtests: each director, and its listeners, is closed before the
	// next starts.)
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("batches of %d", n), func(t *testing.T) {
			defer func(was int) { restoreBatch = was }(restoreBatch)
			restoreBatch = n
			out, errs, rc := restore(startDirector(t), rules)
			if out != lineOut || errs != lineErr || rc != lineRC {
				t.Fatalf("exit %d\n%s%s\nline by line: exit %d\n%s%s", rc, out, errs, lineRC, lineOut, lineErr)
			}
		})
	}
	batchOut, batchErr, batchRC := restore(startDirector(t), rules)
	if lineOut != batchOut || lineErr != batchErr || lineRC != batchRC {
		t.Fatalf("line by line: exit %d\n%s%s\nin batches: exit %d\n%s%s", lineRC, lineOut, lineErr, batchRC, batchOut, batchErr)
	}
	if lineRC != ExitKernel || lineErr != "Destination already exists\nService not defined\nNo such service\n" {
		t.Fatalf("exit %d, errors\n%s", lineRC, lineErr)
	}
	// A line that does not parse ends the restore after the lines before
	// it; a good last line exits 0.
	a, b = fmt.Sprintf("127.0.0.1:%d", ports[3]), fmt.Sprintf("127.0.0.1:%d", ports[4])
	lineOut, lineErr, lineRC = restore(startServer(t), "-A -t "+a+"\n-a -t "+a+" -r 127.0.0.2:80 -m\n-Q\n-A -t "+b+"\n")
	batchOut, batchErr, batchRC = restore(startDirector(t), "-A -t "+a+"\n-a -t "+a+" -r 127.0.0.2:80 -m\n-Q\n-A -t "+b+"\n")
	if lineOut != batchOut || lineErr != batchErr || lineRC != batchRC || !strings.Contains(batchOut, "127.0.0.2:80") || strings.Contains(batchOut, b) {
		t.Fatalf("line by line: exit %d\n%s%s\nin batches: exit %d\n%s%s", lineRC, lineOut, lineErr, batchRC, batchOut, batchErr)
	}
	_, _, rc := restore(startDirector(t), "-A -t "+c+"\n")
	if rc != ExitOK {
		t.Fatalf("a restore whose last line is applied exits %d", rc)
	}
}
