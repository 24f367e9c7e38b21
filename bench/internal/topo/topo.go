// Package topo builds the network namespaces and veth pairs the
// benchmarks run in, with the ip command, and removes them. Each
// benchmark lays out its own topology (bench/xdp, bench/control) from
// these parts; names are theirs, addresses are of 198.18.0.0/15.
package topo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CmdTimeout bounds each command.
const CmdTimeout = 30 * time.Second

// Namespaces are the network namespaces one topology made.
type Namespaces struct {
	made []string
}

// Add makes the namespace name, with its loopback up.
func (n *Namespaces) Add(ctx context.Context, name string) error {
	if err := Run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	n.made = append(n.made, name)
	return Run(ctx, "ip", "-n", name, "link", "set", "lo", "up")
}

// Close deletes the namespaces, and with them every interface and
// program attached inside.
func (n *Namespaces) Close() {
	for _, ns := range n.made {
		ctx, cancel := context.WithTimeout(context.Background(), CmdTimeout)
		if err := Run(ctx, "ip", "netns", "del", ns); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: %v\n", err)
		}
		cancel()
	}
	n.made = nil
}

// RemoveStale deletes the namespaces named PREFIX-PID-... whose benchmark
// process PID has gone without removing them (killed, or its machine's
// timeout hit): each run's namespaces are named after its process, so a
// live run's are never touched.
func RemoveStale(ctx context.Context, prefix string) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return // none made yet
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix+"-")
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if err := Run(ctx, "ip", "netns", "del", e.Name()); err != nil {
			fmt.Fprintf(os.Stderr, "removing a stale namespace: %v\n", err)
		} else {
			fmt.Fprintf(os.Stderr, "removed namespace %s, left by process %d, which has ended\n", e.Name(), pid)
		}
	}
}

// Veth joins aIf in namespace a and bIf in namespace b with a veth pair;
// queues > 0 gives each end that many receive and transmit queues.
func Veth(ctx context.Context, a, aIf, b, bIf string, queues int) error {
	var q []string
	if queues > 0 {
		q = []string{"numtxqueues", fmt.Sprint(queues), "numrxqueues", fmt.Sprint(queues)}
	}
	args := append(append([]string{"link", "add", "name", aIf, "netns", a}, q...), "type", "veth", "peer", "name", bIf, "netns", b)
	return Run(ctx, "ip", append(args, q...)...)
}

// Batch runs ip's commands (one a line) in namespace ns, in one process.
func Batch(ctx context.Context, ns, commands string) error {
	return RunStdin(ctx, commands, "ip", "-n", ns, "-batch", "-")
}

// In runs a command in namespace ns.
func In(ctx context.Context, ns, name string, args ...string) error {
	return Run(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Link is an interface's index and MAC address.
type Link struct {
	Index int
	MAC   net.HardwareAddr
}

// LinkOf reads interface dev of namespace ns.
func LinkOf(ctx context.Context, ns, dev string) (Link, error) {
	out, err := Output(ctx, "ip", "-n", ns, "-j", "link", "show", "dev", dev)
	if err != nil {
		return Link{}, err
	}
	var ls []struct {
		Ifindex int    `json:"ifindex"`
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &ls); err != nil || len(ls) != 1 {
		return Link{}, fmt.Errorf("reading %s in %s from ip -j: %v (%s)", dev, ns, err, out)
	}
	mac, err := net.ParseMAC(ls[0].Address)
	if err != nil {
		return Link{}, fmt.Errorf("%s in %s: %w", dev, ns, err)
	}
	return Link{Index: ls[0].Ifindex, MAC: mac}, nil
}

// Run runs a command; its error carries the command's stderr.
func Run(ctx context.Context, name string, args ...string) error {
	return RunStdin(ctx, "", name, args...)
}

// RunStdin is Run with stdin for the command.
func RunStdin(ctx context.Context, stdin, name string, args ...string) error {
	_, err := output(ctx, stdin, name, args...)
	return err
}

// Output runs a command and returns its stdout.
func Output(ctx context.Context, name string, args ...string) ([]byte, error) {
	return output(ctx, "", name, args...)
}

func output(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, CmdTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
