package config

import (
	"fmt"
	"strings"
)

// node is one statement: a keyword, its arguments, and the statements of
// its block when it has one.
type node struct {
	pos      Pos
	args     []string // args[0] is the keyword
	block    bool
	children []*node
}

func (n *node) kw() string { return n.args[0] }

// words is the statement's text, for messages.
func (n *node) words() string { return strings.Join(n.args, " ") }

// buildTree groups lines into statements and blocks. A '{' may end a
// statement's line or start the next line; a '}' closes the innermost
// block; several statements can share a line when braces separate them
// ("url { path / }").
func buildTree(lx *lexer) *node {
	root := &node{block: true}
	stack := []*node{root}
	var opened []Pos // where each open block's '{' is
	for _, ln := range lx.lines {
		var cur *node
		flush := func() {
			if cur != nil {
				top := stack[len(stack)-1]
				top.children = append(top.children, cur)
				cur = nil
			}
		}
		for _, t := range ln.toks {
			switch {
			case t.isOpen():
				target := cur
				if target == nil {
					// "{" opening a line belongs to the statement before it.
					top := stack[len(stack)-1]
					if n := len(top.children); n > 0 && !top.children[n-1].block {
						target = top.children[n-1]
						top.children = top.children[:n-1]
					} else {
						lx.errorf(ln.pos, "unexpected '{' with no keyword before it")
						target = &node{pos: ln.pos, args: []string{"{"}}
					}
				}
				target.block = true
				cur = target
				flush()
				stack = append(stack, target)
				opened = append(opened, ln.pos)
			case t.isClose():
				flush()
				if len(stack) == 1 {
					lx.errorf(ln.pos, "unexpected '}' with no block open")
					continue
				}
				stack = stack[:len(stack)-1]
				opened = opened[:len(opened)-1]
			default:
				if cur == nil {
					cur = &node{pos: ln.pos}
				}
				cur.args = append(cur.args, t.text)
			}
		}
		flush()
	}
	for i := len(stack) - 1; i >= 1; i-- {
		lx.warns = append(lx.warns, Warning{Pos: opened[i-1], KeepalivedError: true,
			Msg: fmt.Sprintf("%s block is never closed: '}' missing at end of file", stack[i].kw())})
	}
	return root
}
