package main

import (
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Goals of issue 10.
const (
	goalRestore     = 5 * time.Second // 10,000 services restored
	goalRestoreSize = 10000
	goalGrowth      = 2.0 // edit and flap at the largest size ÷ at the smallest; memory per service
)

// markdown writes the table and the goals.
func (res *result) markdown(w io.Writer) {
	c := res.c
	fmt.Fprintf(w, "gvsd control plane: %d real servers per service, limit %v per size, median of %d gvsadm runs, %d CPUs, %s%s\n\n",
		c.servers, c.limit, c.repeat, runtime.NumCPU(), res.when.Format("2006-01-02"), commit())
	fmt.Fprintln(w, "| engine | -s | services | restore (-R) | read back (-Sn) | restore ÷ read back | one -e | -e ÷ trivial request | -e ÷ smallest | flap (down + up) | flap ÷ smallest | gvsd RSS | RSS per service |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range res.rows {
		ref := res.smallest(r)
		cells := []string{r.engine, r.sched, fmt.Sprint(r.size)}
		switch {
		case r.skipped != "":
			cells = append(cells, r.skipped)
			for len(cells) < 13 {
				cells = append(cells, "")
			}
		case r.failed != "":
			cells = append(cells, "failed: "+strings.ReplaceAll(firstLines(r.failed, 1), "|", "\\|"))
			for len(cells) < 13 {
				cells = append(cells, "")
			}
		case !r.restoreOK:
			reached := fmt.Sprintf("%d services", r.reached)
			if r.reached < 0 {
				reached = "gvsd still busy"
			}
			cells = append(cells, fmt.Sprintf("> %v (%s)", c.limit, reached), "", "", "", "", "", "", "", "", "")
		default:
			cells = append(cells, dur(r.restore), dur(r.save), ratio(r.restore, r.save))
			if r.editOK {
				cells = append(cells, dur(r.edit), ratio(r.edit, r.trivial), ratio(r.edit, ref.edit))
			} else {
				cells = append(cells, fmt.Sprintf("> %v for %d", c.limit, c.repeat), "", "")
			}
			switch {
			case r.flapOK:
				cells = append(cells, fmt.Sprintf("%s + %s", dur(r.flapDown), dur(r.flapUp)), ratio(r.flap(), ref.flap()))
			case r.editOK:
				cells = append(cells, fmt.Sprintf("> %v", c.limit), "")
			default:
				cells = append(cells, "", "")
			}
			cells = append(cells, fmt.Sprintf("%.1f MiB", float64(r.rssFull)/(1<<20)), perService(r))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
	res.ipvsMarkdown(w)
	if !slices.ContainsFunc(res.c.engines, func(e string) bool { return e != "ipvs" }) {
		return // issue 10's goals are the proxy's and xdp's
	}
	fmt.Fprintln(w, "Goals (issue 10):")
	fmt.Fprintln(w)
	for _, g := range res.goals() {
		fmt.Fprintf(w, "- %s\n", g)
	}
}

// smallest is the row of the smallest size measured with r's engine and
// scheduler, the reference of the "÷ smallest" columns.
func (res *result) smallest(r *row) *row {
	for _, s := range res.rows {
		if s.engine == r.engine && s.sched == r.sched && s.restoreOK && s.editOK && s.flapOK {
			return s
		}
	}
	return &row{}
}

// goals says for each engine and scheduler whether the goals are met.
func (res *result) goals() []string {
	var out []string
	var restore, edit, flap, mem []string
	largest := func(eng, sched string) *row {
		var l *row
		for _, r := range res.rows {
			if r.engine == eng && r.sched == sched && (l == nil || r.size > l.size) {
				l = r
			}
		}
		return l
	}
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	for _, eng := range res.c.engines {
		if eng == "ipvs" {
			continue // issue 10's goals are the proxy's and xdp's; ipvs has its references
		}
		for _, sched := range res.c.scheds {
			l, ref := largest(eng, sched), res.smallest(&row{engine: eng, sched: sched})
			name := eng + " " + sched
			if l == nil {
				continue
			}
			if l.size >= goalRestoreSize {
				if l.restoreOK {
					restore = append(restore, fmt.Sprintf("%s %s (%s)", name, dur(l.restore), mark(l.restore <= goalRestore)))
				} else if l.failed != "" {
					restore = append(restore, name+" failed (NOT met)")
				} else {
					restore = append(restore, fmt.Sprintf("%s > %v (NOT met)", name, res.c.limit))
				}
			}
			if ref.size == 0 || ref == l {
				continue
			}
			if l.editOK {
				edit = append(edit, fmt.Sprintf("%s %s (%s)", name, ratio(l.edit, ref.edit), mark(float64(l.edit) <= goalGrowth*float64(ref.edit))))
				if l.flapOK {
					flap = append(flap, fmt.Sprintf("%s %s (%s)", name, ratio(l.flap(), ref.flap()), mark(float64(l.flap()) <= goalGrowth*float64(ref.flap()))))
				}
			} else {
				edit = append(edit, name+" not measured (NOT met)")
				flap = append(flap, name+" not measured (NOT met)")
			}
			// Linear memory: the cost per service at the largest size within
			// goalGrowth× of the one at the next smaller size measured (the
			// smallest table's RSS is mostly the runtime's).
			var prev *row
			for _, r := range res.rows {
				if r.engine == eng && r.sched == sched && r.restoreOK && r != l && r.size > ref.size {
					prev = r
				}
			}
			if !l.restoreOK {
				mem = append(mem, name+" not measured")
			} else if prev != nil {
				a, b := bytesPerService(prev), bytesPerService(l)
				mem = append(mem, fmt.Sprintf("%s %.1f KiB at %d, %.1f KiB at %d (%s)", name, a/1024, prev.size, b/1024, l.size, mark(b <= goalGrowth*a && a <= goalGrowth*b)))
			}
		}
	}
	largestSize := res.c.sizes[len(res.c.sizes)-1]
	if len(restore) > 0 {
		out = append(out, fmt.Sprintf("restore of %d services ≤ %v on either engine: %s", goalRestoreSize, goalRestore, strings.Join(restore, "; ")))
	} else {
		out = append(out, fmt.Sprintf("restore of %d services ≤ %v: not measured (largest size %d)", goalRestoreSize, goalRestore, largestSize))
	}
	if len(edit) > 0 {
		out = append(out, fmt.Sprintf("one -e at %d services ≤ %.0f× its cost at the smallest size: %s", largestSize, goalGrowth, strings.Join(edit, "; ")))
	}
	if len(flap) > 0 {
		out = append(out, fmt.Sprintf("one flap at %d services ≤ %.0f× its cost at the smallest size: %s", largestSize, goalGrowth, strings.Join(flap, "; ")))
	}
	if len(mem) > 0 {
		out = append(out, fmt.Sprintf("memory linear (RSS per service within %.0f× across sizes): %s", goalGrowth, strings.Join(mem, "; ")))
	}
	return out
}

// plotData writes one gnuplot block per engine and scheduler (proxy rr,
// proxy mh, xdp rr, xdp mh, empty when not run): size, restore, one -e,
// flap and read back, in seconds; a restore stopped at the limit is a row
// of the services it had restored by then and the limit. NaN where not
// measured.
func (res *result) plotData(w io.Writer) {
	for _, eng := range []string{"proxy", "xdp"} {
		for _, sched := range []string{"rr", "mh"} {
			fmt.Fprintf(w, "# %s %s: services restore_s edit_s flap_s save_s restore_over_limit_s\n", eng, sched)
			any := false
			for _, r := range res.rows {
				if r.engine != eng || r.sched != sched || r.skipped != "" {
					continue
				}
				any = true
				if !r.restoreOK {
					// Where the restore was when stopped: services in the
					// table at the limit.
					if r.reached > 0 {
						fmt.Fprintf(w, "%d NaN NaN NaN NaN %s\n", r.reached, secs(res.c.limit))
					}
					continue
				}
				edit, flap := "NaN", "NaN"
				if r.editOK {
					edit = secs(r.edit)
				}
				if r.flapOK {
					flap = secs(r.flap())
				}
				fmt.Fprintf(w, "%d %s %s %s %s NaN\n", r.size, secs(r.restore), edit, flap, secs(r.save))
			}
			if !any {
				fmt.Fprintln(w, "1 NaN NaN NaN NaN NaN")
			}
			fmt.Fprint(w, "\n\n")
		}
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.6f", d.Seconds()) }

func bytesPerService(r *row) float64 {
	return float64(int64(r.rssFull)-int64(r.rssBase)) / float64(r.size-1)
}

func perService(r *row) string {
	return fmt.Sprintf("%.1f KiB", bytesPerService(r)/1024)
}

// dur prints a duration with 3 significant digits.
func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3g s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3g ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3g µs", float64(d)/float64(time.Microsecond))
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// commit names the tree measured, when run inside a git checkout.
func commit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return ""
	}
	return ", commit " + strings.TrimSpace(string(out))
}

// ipvsMarkdown writes the ipvs rows' comparison with ipvsadm and
// keepalived, when there are ipvs rows.
func (res *result) ipvsMarkdown(w io.Writer) {
	var rows []*row
	for _, r := range res.rows {
		if r.engine == "ipvs" {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "ipvs engine against the kernel's own tools, same kernel, same run (ratio: gvsd ÷ reference; below 1 gvsd is faster):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| -s | services | restore: gvsadm -R | ipvsadm -R | ratio | start from keepalived.conf: gvsd | keepalived | ratio | one -e: gvsadm | ipvsadm | ratio | reload, one weight: gvsd | keepalived | ratio | RSS after start: gvsd | keepalived | gvsd RSS per service (-R) |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rows {
		cells := []string{r.sched, fmt.Sprint(r.size)}
		f := r.refs
		switch {
		case r.skipped != "":
			cells = append(cells, r.skipped)
		case r.failed != "":
			cells = append(cells, "failed: "+cell(r.failed))
		case f == nil:
			cells = append(cells, "gvsd exceeded the limit (see the table above)")
		case f.failed != "":
			cells = append(cells, "references failed: "+cell(f.failed))
		default:
			cells = append(cells,
				dur(r.restore), dur(f.ipvsadmRestore), ratio(r.restore, f.ipvsadmRestore),
				dur(f.gvsdStart), dur(f.kaStart), ratio(f.gvsdStart, f.kaStart),
				dur(r.edit), dur(f.ipvsadmEdit), ratio(r.edit, f.ipvsadmEdit),
				dur(f.gvsdReload), dur(f.kaReload), ratio(f.gvsdReload, f.kaReload),
				mib(f.gvsdStartRSS), mib(f.kaStartRSS), perService(r))
		}
		for len(cells) < 17 {
			cells = append(cells, "")
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
}

// cell is an error's first line, fit for a markdown table cell.
func cell(err string) string {
	first, rest, _ := strings.Cut(strings.TrimSpace(err), "\n")
	if rest != "" {
		first += " …"
	}
	return strings.ReplaceAll(first, "|", "\\|")
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
