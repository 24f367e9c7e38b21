package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

var pathNames = map[string]string{
	targetDrop:    "generator floor: director drops at XDP (sent rate)",
	targetCeiling: "ceiling: XDP MAC rewrite + redirect, no lookup",
	targetDR:      "GVS xdp engine, DR (-g)",
	targetTUN:     "GVS xdp engine, TUN (-i, IPIP)",
	targetNAT:     "GVS xdp engine, NAT (-m)",
	targetFNAT:    "GVS xdp engine, FullNAT (16 local addresses)",
	targetNft:     "kernel: nftables DNAT + forwarding",
}

// sourceNote names the traffic source, and why it is not live frames
// when the kernel refused them.
func (r *results) sourceNote() string {
	if r.refused != nil {
		return fmt.Sprintf("%s (live frames refused: %v)", r.source, r.refused)
	}
	return r.source
}

func (r *results) path(t string) *pathResult {
	for _, p := range r.paths {
		if p.target == t {
			return p
		}
	}
	return nil
}

// ratio is a/b formatted with format, or "–" when b is unknown.
func ratio(a, b float64, percent bool) string {
	if b <= 0 {
		return "–"
	}
	if percent {
		return fmt.Sprintf("%.0f%%", 100*a/b)
	}
	return fmt.Sprintf("%.1f×", a/b)
}

func nsPer(pps float64) string {
	if pps <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", 1e9/pps)
}

// nsAbove is the time per frame at pps less the time per frame at the
// floor's rate, or "–" when either is unknown.
func nsAbove(pps, floor float64) string {
	if pps <= 0 || floor <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", 1e9/pps-1e9/floor)
}

// markdown writes the table of medians and the goals.
func (r *results) markdown(w io.Writer) {
	c := r.cfg
	fmt.Fprintf(w, "Median of %d rounds of %s each, %d established flows, %d sending thread(s), %d CPUs, Linux %s; traffic source: %s.\n\n",
		c.rounds, c.duration, c.flows, c.threads, runtime.NumCPU(), kernelRelease(), r.sourceNote())
	fmt.Fprintln(w, "| path | XDP on director / real server | established Mpps | vs ceiling | vs nftables | new conns Mpps | vs ceiling | vs nftables | ns per frame, est / new | ns above the floor, est / new | delivered of sent |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	var ceilE, ceilN, nftE, nftN float64
	if p := r.path(targetCeiling); p != nil {
		ceilE, ceilN = median(p.est).pps, median(p.new).pps
	}
	if p := r.path(targetNft); p != nil {
		nftE, nftN = median(p.est).pps, median(p.new).pps
	}
	var floorE, floorN float64
	if p := r.path(targetDrop); p != nil {
		floorE, floorN = median(p.est).pps, median(p.new).pps
	}
	for _, p := range r.paths {
		e, n := median(p.est), median(p.new)
		loss := "–"
		if e.sent > 0 && n.sent > 0 {
			loss = fmt.Sprintf("%.0f%% / %.0f%%", 100*e.pps/e.sent, 100*n.pps/n.sent)
		}
		if p.target == targetDrop {
			loss = "–"
		}
		fmt.Fprintf(w, "| %s | %s / %s | %.2f | %s | %s | %.2f | %s | %s | %s / %s | %s / %s | %s |\n",
			pathNames[p.target], p.mode, p.sinkMode,
			e.pps/1e6, ratio(e.pps, ceilE, true), ratio(e.pps, nftE, false),
			n.pps/1e6, ratio(n.pps, ceilN, true), ratio(n.pps, nftN, false),
			nsPer(e.pps), nsPer(n.pps), nsAbove(e.pps, floorE), nsAbove(n.pps, floorN), loss)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "\"ns above the floor\" is a path's time per frame less the generator floor's: what the director (and the real server's sink) add, whichever source sent. The shares of the ceiling include the source's own time per frame, so they are comparable only between runs with the same source.")
	fmt.Fprintln(w)
	type goal struct {
		name   string
		target string
		est    bool
		vs     float64
		want   float64
		unit   string
	}
	var goals []goal
	for _, t := range []struct{ target, name string }{{targetDR, "DR"}, {targetTUN, "TUN"}, {targetNAT, "NAT"}, {targetFNAT, "FullNAT"}} {
		goals = append(goals,
			goal{t.name + " established ≥ 85% of the ceiling", t.target, true, ceilE, 0.85, "%"},
			goal{t.name + " new connections ≥ 50% of the ceiling", t.target, false, ceilN, 0.50, "%"},
			goal{t.name + " established ≥ 4× nftables", t.target, true, nftE, 4, "×"},
			goal{t.name + " new connections ≥ 4× nftables", t.target, false, nftN, 4, "×"})
	}
	fmt.Fprintln(w, "| goal | measured | |")
	fmt.Fprintln(w, "| --- | ---: | --- |")
	for _, g := range goals {
		p := r.path(g.target)
		if p == nil || g.vs <= 0 {
			continue
		}
		v := median(p.new).pps
		if g.est {
			v = median(p.est).pps
		}
		got := v / g.vs
		shown := fmt.Sprintf("%.1f×", got)
		if g.unit == "%" {
			shown = fmt.Sprintf("%.0f%%", 100*got)
		}
		verdict := "met"
		if got < g.want {
			verdict = "**missed**"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", g.name, shown, verdict)
	}
	fmt.Fprintln(w)
	for _, p := range r.paths {
		switch p.target {
		case targetDR, targetTUN, targetNAT, targetFNAT:
			fmt.Fprintf(w, "%s: %d connections after the SYNs of the established flows; %d connections made in the last round; frames left to the kernel or dropped by reason: %v.\n",
				pathNames[p.target], p.flowsReady, p.conns, p.drops)
		case targetNft:
			fmt.Fprintf(w, "%s: %d connections tracked at the end of the last round.\n", pathNames[p.target], p.conns)
		}
	}
}

// gnuplotData is one line per path: name, established and new Mpps.
func (r *results) gnuplotData() string {
	var b strings.Builder
	b.WriteString("# path established_Mpps new_Mpps\n")
	short := map[string]string{targetDrop: "generator floor", targetCeiling: "ceiling", targetDR: "GVS DR", targetTUN: "GVS TUN", targetNAT: "GVS NAT", targetFNAT: "GVS FullNAT", targetNft: "nftables DNAT"}
	for _, p := range r.paths {
		fmt.Fprintf(&b, "%q %.4f %.4f\n", short[p.target], median(p.est).pps/1e6, median(p.new).pps/1e6)
	}
	return b.String()
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "(unknown)"
	}
	return strings.TrimSpace(string(b))
}
