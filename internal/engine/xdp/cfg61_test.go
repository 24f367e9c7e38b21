package xdp

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// TestLinux61ControlFlow walks the program's control flow as the verifier
// of Linux 5.3 to 6.6 does before anything else (check_cfg, a depth-first
// search from the first instruction into every subprogram): there a loop
// is accepted only when the edge that closes it is a jump's. When it is
// the fall-through of an ordinary instruction or of a call, as clang
// writes a loop whose entry jumps into its middle, those kernels refuse
// the whole program with "back-edge from insn X to Y" (6.7 dropped the
// rule). This test holds the program loadable on Debian 12's 6.1 without
// booting it; the IPVS VM loads it for real (test/ipvsvm).
func TestLinux61ControlFlow(t *testing.T) {
	spec, err := loadLb()
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range spec.Programs {
		for _, e := range refusedBackEdges(p.Instructions) {
			t.Errorf("%s: Linux 6.1's verifier refuses %s; make the loop's last step a jump: see the comment above nat_setup's LPORT_TRIES loop in bpf/xdp_nat.h", name, e)
		}
	}
}

// refusedBackEdges returns the loops that Linux 6.1's check_cfg refuses,
// with the source lines of their two ends.
func refusedBackEdges(insns asm.Instructions) []string {
	type edge struct {
		to     int  // index into insns
		loopOK bool // a back edge along it is a loop 6.1 accepts
	}
	// The kernel counts in 8-byte slots; a 64-bit immediate takes two.
	slot := make([]int, len(insns))
	index := map[int]int{}
	symbol := map[string]int{}
	n := 0
	for i, ins := range insns {
		slot[i], index[n] = n, i
		if s := ins.Symbol(); s != "" {
			symbol[s] = i
		}
		n += int(ins.Size() / asm.InstructionSize)
	}
	target := func(i int, off int) int { return index[slot[i]+off+1] }
	edges := make([][]edge, len(insns))
	for i := range insns {
		ins := &insns[i]
		next := edge{to: i + 1}
		switch op := ins.OpCode.JumpOp(); {
		case ins.IsLoadOfFunctionPointer(): // a callback, as bpf_loop's
			edges[i] = []edge{next, {to: symbol[ins.Reference()], loopOK: true}}
		case !ins.OpCode.Class().IsJump():
			edges[i] = []edge{next}
		case op == asm.Exit:
		case op == asm.Call:
			edges[i] = []edge{next}
			if ins.IsFunctionCall() {
				edges[i] = append(edges[i], edge{to: symbol[ins.Reference()]})
			}
		case op == asm.Ja:
			edges[i] = []edge{{to: target(i, int(ins.Offset)), loopOK: true}}
		default:
			edges[i] = []edge{{to: i + 1, loopOK: true}, {to: target(i, int(ins.Offset)), loopOK: true}}
		}
	}

	const (
		discovered = 1
		explored   = 2
	)
	state := make([]int, len(insns))
	nextEdge := make([]int, len(insns))
	stack := []int{0}
	state[0] = discovered
	var refused []string
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		if nextEdge[t] == len(edges[t]) {
			state[t] = explored
			stack = stack[:len(stack)-1]
			continue
		}
		e := edges[t][nextEdge[t]]
		nextEdge[t]++
		switch {
		case e.to >= len(insns):
			refused = append(refused, fmt.Sprintf("a jump out of the program at %s", line(insns, t)))
		case state[e.to] == 0:
			state[e.to] = discovered
			stack = append(stack, e.to)
		case state[e.to] == discovered && !e.loopOK:
			refused = append(refused, fmt.Sprintf("back-edge from insn %d to %d (%s to %s)", slot[t], slot[e.to], line(insns, t), line(insns, e.to)))
		}
	}
	return refused
}

// line is the source line of insns[i], or of the nearest before it.
func line(insns asm.Instructions, i int) string {
	for ; i >= 0; i-- {
		if s := insns[i].Source(); s != nil {
			if l, ok := s.(*btf.Line); ok {
				return fmt.Sprintf("%s:%d %q", filepath.Base(l.FileName()), l.LineNumber(), strings.TrimSpace(l.Line()))
			}
			return s.String()
		}
	}
	return "?"
}

// TestLinux61StackDepth adds up the program's stack along every chain of
// calls as Linux 6.8 and older do (check_max_stack_depth): each frame
// rounded up to 32 bytes, at least 32 even when empty, a bpf_loop
// callback as a call, and at most 512 in all. Newer kernels round a
// JIT-compiled frame to 16 and let an empty one count 0, so a chain can
// pass there and fail on 6.1 ("combined stack size of 3 calls is 544").
func TestLinux61StackDepth(t *testing.T) {
	spec, err := loadLb()
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range spec.Programs {
		chain, depth := deepestChain(p.Instructions)
		if depth > 512 {
			t.Errorf("%s: Linux 6.1 counts %d bytes of stack along %s (at most 512): make a frame on it smaller or a call on it inline", name, depth, strings.Join(chain, " > "))
		}
		t.Logf("%s: the deepest chain of calls on Linux 6.1: %s, %d bytes", name, strings.Join(chain, " > "), depth)
	}
}

// deepestChain returns the chain of calls whose frames, rounded as 6.1
// rounds them, add up to the most, and that sum.
func deepestChain(insns asm.Instructions) ([]string, int) {
	// Each function's frame: the lowest stack offset it reaches, directly
	// or through a pointer it derives from r10 (rX = r10; rX += -N).
	frame := map[string]int{}
	calls := map[string][]string{}
	var fn string
	var order []string
	fp := map[asm.Register]bool{}
	for _, ins := range insns {
		if s := ins.Symbol(); s != "" {
			fn = s
			order = append(order, s)
			clear(fp)
		}
		deepen := func(off int) {
			if -off > frame[fn] {
				frame[fn] = -off
			}
		}
		op := ins.OpCode
		switch {
		case ins.IsFunctionCall() || ins.IsLoadOfFunctionPointer():
			calls[fn] = append(calls[fn], ins.Reference())
		case op.Class().IsStore() && ins.Dst == asm.R10 || op.Class() == asm.LdXClass && ins.Src == asm.R10:
			deepen(int(ins.Offset))
		case op.Class().IsALU() && op.ALUOp() == asm.Mov && op.Source() == asm.RegSource:
			fp[ins.Dst] = ins.Src == asm.R10
		case op.Class().IsALU() && op.ALUOp() == asm.Add && op.Source() == asm.ImmSource && fp[ins.Dst]:
			deepen(int(ins.Constant))
			fp[ins.Dst] = false
		case op.Class().IsALU() || op.Class() == asm.LdXClass:
			fp[ins.Dst] = false
		}
	}
	round := func(n int) int { return (max(n, 1) + 31) / 32 * 32 }
	var walk func(fn string, seen map[string]bool) ([]string, int)
	walk = func(fn string, seen map[string]bool) ([]string, int) {
		var best []string
		most := 0
		seen[fn] = true
		for _, c := range calls[fn] {
			if seen[c] {
				continue
			}
			if chain, d := walk(c, seen); d > most {
				best, most = chain, d
			}
		}
		delete(seen, fn)
		return append([]string{fmt.Sprintf("%s (%d)", fn, frame[fn])}, best...), round(frame[fn]) + most
	}
	if len(order) == 0 {
		return nil, 0
	}
	return walk(order[0], map[string]bool{})
}
