package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// token is one word of a configuration line. A brace is its own token
// unless it was quoted.
type token struct {
	text   string
	quoted bool
}

func (t token) isOpen() bool  { return !t.quoted && t.text == "{" }
func (t token) isClose() bool { return !t.quoted && t.text == "}" }

// line is the tokens of one configuration line.
type line struct {
	pos  Pos
	toks []token
}

// maxIncludeDepth stops include loops.
const maxIncludeDepth = 16

// lexer turns files into lines, following includes and applying
// conditional lines (@id) and parameter substitution ($NAME=value).
type lexer struct {
	opts   *Options
	params map[string]string
	lines  []line
	errs   Errors
	warns  []Warning
}

func (lx *lexer) errorf(p Pos, format string, args ...any) {
	lx.errs = append(lx.errs, &Error{File: p.File, Line: p.Line, Msg: fmt.Sprintf(format, args...)})
}

func (lx *lexer) warnf(p Pos, format string, args ...any) {
	lx.warns = append(lx.warns, Warning{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

// file lexes one file's text. stack holds the files being included, to
// refuse loops.
func (lx *lexer) file(name string, data []byte, stack []string) {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	for i, raw := range strings.Split(text, "\n") {
		pos := Pos{File: name, Line: i + 1}
		lx.line(pos, raw, stack)
	}
}

func (lx *lexer) line(pos Pos, raw string, stack []string) {
	s := strings.TrimLeft(raw, " \t")
	// Conditional configuration: "@id rest" is kept only when id is the
	// config id, "@^id rest" only when it is not.
	if strings.HasPrefix(s, "@") {
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			end = len(s)
		}
		word := s[1:end]
		neg := strings.HasPrefix(word, "^")
		word = strings.TrimPrefix(word, "^")
		if (word == lx.opts.ConfigID) == neg {
			return
		}
		s = strings.TrimLeft(s[end:], " \t")
	}
	// Parameter definition: $NAME=value (no space before '=').
	if strings.HasPrefix(s, "$") {
		if name, val, ok := strings.Cut(s[1:], "="); ok && validParam(name) {
			lx.params[name] = strings.TrimSpace(stripComment(val))
			return
		}
	}
	if strings.Contains(s, "$") && len(lx.params) > 0 {
		s = lx.substitute(s)
	}
	toks, err := tokenize(s)
	if err != "" {
		lx.errorf(pos, "%s", err)
	}
	if len(toks) == 0 {
		return
	}
	if kw := toks[0].text; !toks[0].quoted && isInclude(kw) {
		lx.include(pos, kw, toks[1:], stack)
		return
	}
	lx.lines = append(lx.lines, line{pos: pos, toks: toks})
}

func isInclude(kw string) bool {
	switch kw {
	case "include", "includer", "includem", "includew", "includeb", "includea":
		return true
	}
	return false
}

func (lx *lexer) include(pos Pos, kw string, args []token, stack []string) {
	if len(args) != 1 {
		lx.errorf(pos, "%s takes one file name or pattern, got %d", kw, len(args))
		return
	}
	pattern := args[0].text
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(pos.File), pattern)
	}
	matches, err := lx.opts.glob(pattern)
	if err != nil {
		lx.errorf(pos, "%s %q: bad pattern: %v", kw, args[0].text, err)
		return
	}
	if len(matches) == 0 {
		if kw == "include" || kw == "includer" {
			lx.warnf(pos, "%s %q: no such file", kw, args[0].text)
		} else {
			lx.errorf(pos, "%s %q: no such file", kw, args[0].text)
		}
		return
	}
	slices.Sort(matches)
	if len(stack) >= maxIncludeDepth {
		lx.errorf(pos, "%s %q: includes nested more than %d deep (an include loop?)", kw, args[0].text, maxIncludeDepth)
		return
	}
	for _, m := range matches {
		if slices.Contains(stack, filepath.Clean(m)) {
			lx.errorf(pos, "%s %q: %s includes itself", kw, args[0].text, m)
			continue
		}
		data, err := lx.opts.readFile(m)
		if err != nil {
			lx.errorf(pos, "%s: cannot read %s: %v", kw, m, err)
			continue
		}
		lx.file(m, data, append(stack, filepath.Clean(m)))
	}
}

func validParam(name string) bool {
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// substitute replaces ${NAME} and $NAME (followed by white space or the end
// of the line) with the parameter's value, recursively up to a bound.
func (lx *lexer) substitute(s string) string {
	for range 8 {
		out, changed := lx.substituteOnce(s)
		if !changed {
			return out
		}
		s = out
	}
	return s
}

func (lx *lexer) substituteOnce(s string) (string, bool) {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		rest := s[i+1:]
		if strings.HasPrefix(rest, "{") {
			if end := strings.IndexByte(rest, '}'); end > 0 {
				if v, ok := lx.params[rest[1:end]]; ok {
					b.WriteString(v)
					i += end + 1
					changed = true
					continue
				}
			}
		} else {
			end := strings.IndexAny(rest, " \t")
			if end < 0 {
				end = len(rest)
			}
			if v, ok := lx.params[rest[:end]]; ok && end > 0 {
				b.WriteString(v)
				i += end
				changed = true
				continue
			}
		}
		b.WriteByte('$')
	}
	if b.Len() > 1<<16 {
		return s, false
	}
	return b.String(), changed
}

func stripComment(s string) string {
	if i := strings.IndexAny(s, "#!"); i >= 0 {
		return s[:i]
	}
	return s
}

// tokenize splits a line into words: white space separates, '#' and '!'
// start a comment, '{' and '}' are words of their own, and text between
// double or single quotes keeps its spaces (the quotes are removed, and
// quoted text joins the unquoted text touching it, as in keepalived).
// Inside quotes a backslash escapes as in the shell.
func tokenize(s string) ([]token, string) {
	var toks []token
	var cur strings.Builder
	inWord, quoted := false, false
	flush := func() {
		if inWord {
			toks = append(toks, token{text: cur.String(), quoted: quoted})
		}
		cur.Reset()
		inWord, quoted = false, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\v' || c == '\f':
			flush()
		case c == '#' || c == '!':
			flush()
			return toks, ""
		case c == '{' || c == '}':
			flush()
			toks = append(toks, token{text: string(c)})
		case c == '"' || c == '\'':
			inWord, quoted = true, true
			j := i + 1
			closed := false
			for ; j < len(s); j++ {
				if s[j] == c {
					closed = true
					break
				}
				if s[j] == '\\' && j+1 < len(s) {
					j++
					cur.WriteString(unescape(s[j]))
					continue
				}
				cur.WriteByte(s[j])
			}
			if !closed {
				flush()
				return toks, fmt.Sprintf("unterminated %c quote", c)
			}
			i = j
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	flush()
	return toks, ""
}

func unescape(c byte) string {
	switch c {
	case 'a':
		return "\a"
	case 'b':
		return "\b"
	case 'E':
		return "\x1b"
	case 'f':
		return "\f"
	case 'n':
		return "\n"
	case 'r':
		return "\r"
	case 't':
		return "\t"
	case 'v':
		return "\v"
	}
	return string(c)
}
