package ipvs

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
)

// The whole table's status is the admin API's largest answer (about 13 MB
// of JSON at 10,000 services of 4 real servers), so gvsd writes it and
// gvsadm reads it without encoding/json's reflection: AppendJSON and
// ReadServiceStatuses. Both must agree with encoding/json on these types'
// tags; TestStatusJSON holds them to it.

// AppendJSON appends s as encoding/json writes it (the same bytes).
func (s *ServiceStatus) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if s.Proto != 0 {
		b = strconv.AppendUint(append(b, `"proto":`...), uint64(s.Proto), 10)
		b = append(b, ',')
	}
	b = appendAddr(append(b, `"addr":`...), s.Addr)
	if s.Port != 0 {
		b = strconv.AppendUint(append(b, `,"port":`...), uint64(s.Port), 10)
	}
	if s.FWMark != 0 {
		b = strconv.AppendUint(append(b, `,"fwmark":`...), uint64(s.FWMark), 10)
	}
	b = appendString(append(b, `,"scheduler":`...), s.Scheduler)
	if s.Flags != 0 {
		b = strconv.AppendUint(append(b, `,"flags":`...), uint64(s.Flags), 10)
	}
	if s.Timeout != 0 {
		b = strconv.AppendUint(append(b, `,"timeout":`...), uint64(s.Timeout), 10)
	}
	b = strconv.AppendInt(append(b, `,"netmask":`...), int64(s.Netmask), 10)
	if s.PE != "" {
		b = appendString(append(b, `,"pe":`...), s.PE)
	}
	if s.ProxyProtocol != 0 {
		b = strconv.AppendInt(append(b, `,"proxy_protocol":`...), int64(s.ProxyProtocol), 10)
	}
	if len(s.LocalAddrs) > 0 {
		b = append(b, `,"laddrs":[`...)
		for i, a := range s.LocalAddrs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAddr(b, a)
		}
		b = append(b, ']')
	}
	b = s.Stats.appendJSON(append(b, `,"stats":`...))
	b = s.Rates.appendJSON(append(b, `,"rates":`...))
	b = append(b, `,"dests":`...)
	if s.Dests == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range s.Dests {
			if i > 0 {
				b = append(b, ',')
			}
			b = s.Dests[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (d *DestStatus) appendJSON(b []byte) []byte {
	b = appendAddr(append(b, `{"addr":`...), d.Addr)
	b = strconv.AppendUint(append(b, `,"port":`...), uint64(d.Port), 10)
	b = strconv.AppendUint(append(b, `,"method":`...), uint64(d.Method), 10)
	b = strconv.AppendInt(append(b, `,"weight":`...), int64(d.Weight), 10)
	if d.UThreshold != 0 {
		b = strconv.AppendUint(append(b, `,"u_threshold":`...), uint64(d.UThreshold), 10)
	}
	if d.LThreshold != 0 {
		b = strconv.AppendUint(append(b, `,"l_threshold":`...), uint64(d.LThreshold), 10)
	}
	if d.TunType != 0 {
		b = strconv.AppendUint(append(b, `,"tun_type":`...), uint64(d.TunType), 10)
	}
	if d.TunPort != 0 {
		b = strconv.AppendUint(append(b, `,"tun_port":`...), uint64(d.TunPort), 10)
	}
	if d.TunFlags != 0 {
		b = strconv.AppendUint(append(b, `,"tun_flags":`...), uint64(d.TunFlags), 10)
	}
	b = strconv.AppendUint(append(b, `,"active_conns":`...), uint64(d.ActiveConns), 10)
	b = strconv.AppendUint(append(b, `,"inact_conns":`...), uint64(d.InactConns), 10)
	b = strconv.AppendUint(append(b, `,"persist_conns":`...), uint64(d.PersistConns), 10)
	b = d.Stats.appendJSON(append(b, `,"stats":`...))
	b = d.Rates.appendJSON(append(b, `,"rates":`...))
	return append(b, '}')
}

func (s *Stats) appendJSON(b []byte) []byte {
	b = strconv.AppendUint(append(b, `{"conns":`...), s.Conns, 10)
	b = strconv.AppendUint(append(b, `,"inpkts":`...), s.InPkts, 10)
	b = strconv.AppendUint(append(b, `,"outpkts":`...), s.OutPkts, 10)
	b = strconv.AppendUint(append(b, `,"inbytes":`...), s.InBytes, 10)
	b = strconv.AppendUint(append(b, `,"outbytes":`...), s.OutBytes, 10)
	return append(b, '}')
}

func (r *Rates) appendJSON(b []byte) []byte {
	b = strconv.AppendUint(append(b, `{"cps":`...), r.CPS, 10)
	b = strconv.AppendUint(append(b, `,"inpps":`...), r.InPPS, 10)
	b = strconv.AppendUint(append(b, `,"outpps":`...), r.OutPPS, 10)
	b = strconv.AppendUint(append(b, `,"inbps":`...), r.InBPS, 10)
	b = strconv.AppendUint(append(b, `,"outbps":`...), r.OutBPS, 10)
	return append(b, '}')
}

// appendAddr appends a as its MarshalText writes it, quoted ("" for the
// zero Addr). Only a zone can hold a character JSON escapes.
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Zone() != "" {
		return appendString(b, a.String())
	}
	return append(a.AppendTo(append(b, '"')), '"')
}

// appendString appends s quoted as encoding/json quotes it: a string of
// printable ASCII that JSON and HTML leave alone as it is, anything else
// by encoding/json itself.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// ReadServiceStatuses reads a JSON array of services (or null) from r as
// json.Unmarshal would into a []ServiceStatus, service by service as r
// delivers it: any spacing and order of fields; fields it does not know
// are skipped, as encoding/json skips them (a newer gvsd may add some);
// null leaves a field as it is. Unlike encoding/json, it matches field
// names exactly (gvsd writes them as the tags spell them). Anything after
// the array other than white space is an error.
func ReadServiceStatuses(r io.Reader) (out []ServiceStatus, err error) {
	d := &jsonReader{r: r, buf: make([]byte, 0, 64<<10)}
	defer func() {
		if e := recover(); e != nil {
			je, ok := e.(jsonError)
			if !ok {
				panic(e)
			}
			out, err = nil, je.error
		}
	}()
	if !d.null() {
		// In blocks, copied once into out at the end: growing out by
		// append copied (and faulted in) twice the table's memory.
		var full [][]ServiceStatus
		block := make([]ServiceStatus, 0, 64)
		d.array(func() {
			if len(block) == cap(block) {
				full, block = append(full, block), make([]ServiceStatus, 0, min(2*cap(block), 1024))
			}
			block = append(block, ServiceStatus{})
			d.serviceStatus(&block[len(block)-1])
		})
		out = block
		if full != nil {
			out = slices.Concat(append(full, block)...)
		}
	}
	if d.skipSpace(); d.more() {
		d.fail("unexpected data after the JSON value")
	}
	if d.err != io.EOF {
		return nil, d.err // the stream did not end as it should
	}
	return out, nil
}

// jsonError is a malformed document; jsonReader panics with it and
// ReadServiceStatuses recovers it.
type jsonError struct{ error }

// jsonReader reads JSON from r through a buffer of its own.
type jsonReader struct {
	r       io.Reader
	buf     []byte // buf[i:] is unread
	i       int
	off     int64 // offset of buf[0] in the stream
	err     error // r's error, once buf is drained
	scratch []byte
	dests   []DestStatus // a service's, before they are copied out
}

func (d *jsonReader) fail(format string, args ...any) {
	err := fmt.Errorf(format, args...)
	if d.err != nil && d.err != io.EOF && !d.more() {
		err = d.err // r failed: that is what went wrong
	} else {
		err = fmt.Errorf("at byte %d: %w", d.off+int64(d.i), err)
	}
	panic(jsonError{err})
}

// more reports whether a byte is left, reading when buf is drained.
func (d *jsonReader) more() bool {
	for d.i >= len(d.buf) {
		if d.err != nil {
			return false
		}
		d.off += int64(len(d.buf))
		n, err := d.r.Read(d.buf[:cap(d.buf)])
		d.buf, d.i, d.err = d.buf[:n], 0, err
	}
	return true
}

// peek is the next byte, 0 at the end (never valid where peek is used).
func (d *jsonReader) peek() byte {
	if d.i < len(d.buf) || d.more() {
		return d.buf[d.i]
	}
	return 0
}

func (d *jsonReader) next() byte {
	c := d.peek()
	if c == 0 && !d.more() {
		d.fail("unexpected end of JSON input")
	}
	d.i++
	return c
}

func (d *jsonReader) skipSpace() {
	if d.i < len(d.buf) && d.buf[d.i] > ' ' {
		return // compact JSON: no space
	}
	for {
		switch d.peek() {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonReader) expect(c byte) {
	if d.i < len(d.buf) && d.buf[d.i] == c {
		d.i++
		return
	}
	d.skipSpace()
	if got := d.next(); got != c {
		d.fail("%q where %q belongs", got, c)
	}
}

func (d *jsonReader) literal(s string) {
	for i := range len(s) {
		if d.next() != s[i] {
			d.fail("invalid literal (want %s)", s)
		}
	}
}

// null reads a null if one is next.
func (d *jsonReader) null() bool {
	if d.skipSpace(); d.peek() != 'n' {
		return false
	}
	d.literal("null")
	return true
}

// object reads an object, calling field for each field whose value is
// not null, positioned at the value; key is only valid until it reads.
func (d *jsonReader) object(field func(key []byte)) {
	d.expect('{')
	if d.skipSpace(); d.peek() == '}' {
		d.i++
		return
	}
	for {
		key := d.stringBytes()
		d.expect(':')
		if !d.null() {
			field(key)
		}
		d.skipSpace()
		switch d.next() {
		case ',':
		case '}':
			return
		default:
			d.i--
			d.fail("%q after an object field", d.peek())
		}
	}
}

// array reads an array, calling elem positioned at each element.
func (d *jsonReader) array(elem func()) {
	d.expect('[')
	if d.skipSpace(); d.peek() == ']' {
		d.i++
		return
	}
	for {
		elem()
		d.skipSpace()
		switch d.next() {
		case ',':
		case ']':
			return
		default:
			d.i--
			d.fail("%q after an array element", d.peek())
		}
	}
}

// stringBytes reads a string into scratch: its bytes, unescaped.
func (d *jsonReader) stringBytes() []byte {
	d.expect('"')
	d.scratch = d.scratch[:0]
	plain := true
	for {
		rest := d.buf[d.i:]
		n := 0
		for n < len(rest) && rest[n] >= 0x20 && rest[n] < 0x80 && rest[n] != '"' && rest[n] != '\\' {
			n++
		}
		d.scratch = append(d.scratch, rest[:n]...)
		d.i += n
		c := d.next()
		switch {
		case c == '"':
			if plain {
				return d.scratch
			}
			var s string // escapes and UTF-8 as encoding/json reads them
			if err := json.Unmarshal(append(append([]byte{'"'}, d.scratch...), '"'), &s); err != nil {
				d.fail("string: %v", err)
			}
			d.scratch = append(d.scratch[:0], s...)
			return d.scratch
		case c == '\\':
			plain = false
			d.scratch = append(d.scratch, c, d.next())
		case c < 0x20:
			d.i--
			d.fail("control character %q in a string", c)
		default:
			plain = false
			d.scratch = append(d.scratch, c)
		}
	}
}

func (d *jsonReader) string() string { return string(d.stringBytes()) }

// scheduler is a string, without a copy for the schedulers IPVS has.
func (d *jsonReader) scheduler() string {
	b := d.stringBytes()
	for _, name := range Schedulers {
		if string(b) == name {
			return name
		}
	}
	return string(b)
}

// digits reads a number that must be an integer: its sign and magnitude.
func (d *jsonReader) digits() (neg bool, n uint64) {
	d.skipSpace()
	if d.peek() == '-' {
		neg = true
		d.i++
	}
	if c := d.peek(); c < '0' || c > '9' {
		d.fail("%q where a number belongs", c)
	}
	count := 0
	for {
		for ; d.i < len(d.buf); d.i++ {
			c := d.buf[d.i]
			if c < '0' || c > '9' {
				break
			}
			if count == 1 && n == 0 {
				d.fail("a number with a leading zero")
			}
			if n > (math.MaxUint64-uint64(c-'0'))/10 {
				d.fail("number out of range")
			}
			n = n*10 + uint64(c-'0')
			count++
		}
		if d.i < len(d.buf) || !d.more() {
			break
		}
	}
	if c := d.peek(); c == '.' || c == 'e' || c == 'E' {
		d.fail("a fraction where an integer belongs")
	}
	return neg, n
}

func (d *jsonReader) uint(max uint64) uint64 {
	neg, n := d.digits()
	if neg && n != 0 || n > max {
		d.fail("number out of range 0 to %d", max)
	}
	return n
}

func (d *jsonReader) int(min, max int64) int64 {
	neg, n := d.digits()
	if neg {
		if n > uint64(-(min+1))+1 {
			d.fail("number out of range %d to %d", min, max)
		}
		return -int64(n-1) - 1
	}
	if n > uint64(max) {
		d.fail("number out of range %d to %d", min, max)
	}
	return int64(n)
}

// addr reads an address as netip.Addr's UnmarshalText does, dotted IPv4
// without a copy.
func (d *jsonReader) addr() netip.Addr {
	b := d.stringBytes()
	if a, ok := parseIPv4(b); ok {
		return a
	}
	var a netip.Addr
	if err := a.UnmarshalText(b); err != nil {
		d.fail("%v", err)
	}
	return a
}

// parseIPv4 parses a.b.c.d in the form netip writes (no leading zeros);
// false for anything else, which netip then parses or refuses.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var ip [4]byte
	part, n, digits := 0, 0, 0
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits > 0 && n == 0 {
				return netip.Addr{}, false // a leading zero
			}
			n, digits = n*10+int(c-'0'), digits+1
			if n > 255 {
				return netip.Addr{}, false
			}
		case c == '.' && digits > 0 && part < 3 && i < len(b)-1:
			ip[part] = byte(n)
			part, n, digits = part+1, 0, 0
		default:
			return netip.Addr{}, false
		}
	}
	if part != 3 || digits == 0 {
		return netip.Addr{}, false
	}
	ip[3] = byte(n)
	return netip.AddrFrom4(ip), true
}

// skip reads any value and drops it.
func (d *jsonReader) skip() {
	d.skipSpace()
	switch c := d.peek(); {
	case c == '{':
		d.object(func([]byte) { d.skip() })
	case c == '[':
		d.array(d.skip)
	case c == '"':
		d.stringBytes()
	case c == 't':
		d.literal("true")
	case c == 'f':
		d.literal("false")
	case c == 'n':
		d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		d.number()
	default:
		d.fail("%q where a value belongs", c)
	}
}

// number reads any JSON number.
func (d *jsonReader) number() {
	if d.peek() == '-' {
		d.i++
	}
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		d.run()
	default:
		d.fail("malformed number")
	}
	if d.peek() == '.' {
		d.i++
		if d.run() == 0 {
			d.fail("malformed number")
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if d.run() == 0 {
			d.fail("malformed number")
		}
	}
}

// run reads digits and says how many.
func (d *jsonReader) run() int {
	n := 0
	for c := d.peek(); c >= '0' && c <= '9'; c = d.peek() {
		d.i++
		n++
	}
	return n
}

func (d *jsonReader) serviceStatus(s *ServiceStatus) {
	d.object(func(key []byte) {
		switch string(key) {
		case "proto":
			s.Proto = Protocol(d.uint(math.MaxUint8))
		case "addr":
			s.Addr = d.addr()
		case "port":
			s.Port = uint16(d.uint(math.MaxUint16))
		case "fwmark":
			s.FWMark = uint32(d.uint(math.MaxUint32))
		case "scheduler":
			s.Scheduler = d.scheduler()
		case "flags":
			s.Flags = uint32(d.uint(math.MaxUint32))
		case "timeout":
			s.Timeout = uint32(d.uint(math.MaxUint32))
		case "netmask":
			s.Netmask = int(d.int(math.MinInt, math.MaxInt))
		case "pe":
			s.PE = d.string()
		case "proxy_protocol":
			s.ProxyProtocol = int(d.int(math.MinInt, math.MaxInt))
		case "laddrs":
			s.LocalAddrs = []netip.Addr{}
			d.array(func() { s.LocalAddrs = append(s.LocalAddrs, d.addr()) })
		case "stats":
			d.stats(&s.Stats)
		case "rates":
			d.rates(&s.Rates)
		case "dests":
			d.dests = d.dests[:0]
			d.array(func() {
				d.dests = append(d.dests, DestStatus{})
				d.destStatus(&d.dests[len(d.dests)-1])
			})
			s.Dests = append(make([]DestStatus, 0, len(d.dests)), d.dests...) // one allocation of the right size
		default:
			d.skip()
		}
	})
}

func (d *jsonReader) destStatus(ds *DestStatus) {
	d.object(func(key []byte) {
		switch string(key) {
		case "addr":
			ds.Addr = d.addr()
		case "port":
			ds.Port = uint16(d.uint(math.MaxUint16))
		case "method":
			ds.Method = Method(d.uint(math.MaxUint8))
		case "weight":
			ds.Weight = int32(d.int(math.MinInt32, math.MaxInt32))
		case "u_threshold":
			ds.UThreshold = uint32(d.uint(math.MaxUint32))
		case "l_threshold":
			ds.LThreshold = uint32(d.uint(math.MaxUint32))
		case "tun_type":
			ds.TunType = TunType(d.uint(math.MaxUint8))
		case "tun_port":
			ds.TunPort = uint16(d.uint(math.MaxUint16))
		case "tun_flags":
			ds.TunFlags = uint16(d.uint(math.MaxUint16))
		case "active_conns":
			ds.ActiveConns = uint32(d.uint(math.MaxUint32))
		case "inact_conns":
			ds.InactConns = uint32(d.uint(math.MaxUint32))
		case "persist_conns":
			ds.PersistConns = uint32(d.uint(math.MaxUint32))
		case "stats":
			d.stats(&ds.Stats)
		case "rates":
			d.rates(&ds.Rates)
		default:
			d.skip()
		}
	})
}

func (d *jsonReader) stats(s *Stats) {
	d.object(func(key []byte) {
		switch string(key) {
		case "conns":
			s.Conns = d.uint(math.MaxUint64)
		case "inpkts":
			s.InPkts = d.uint(math.MaxUint64)
		case "outpkts":
			s.OutPkts = d.uint(math.MaxUint64)
		case "inbytes":
			s.InBytes = d.uint(math.MaxUint64)
		case "outbytes":
			s.OutBytes = d.uint(math.MaxUint64)
		default:
			d.skip()
		}
	})
}

func (d *jsonReader) rates(r *Rates) {
	d.object(func(key []byte) {
		switch string(key) {
		case "cps":
			r.CPS = d.uint(math.MaxUint64)
		case "inpps":
			r.InPPS = d.uint(math.MaxUint64)
		case "outpps":
			r.OutPPS = d.uint(math.MaxUint64)
		case "inbps":
			r.InBPS = d.uint(math.MaxUint64)
		case "outbps":
			r.OutBPS = d.uint(math.MaxUint64)
		default:
			d.skip()
		}
	})
}
