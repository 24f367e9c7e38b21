package plan

import (
	"net/netip"
	"slices"

	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/config"
)

// checker compiles one checker block of rs into finished check specs:
// one, or one per deprecated SMTP_CHECK host block; none for a
// MISC_CHECK whose script config.Load refused (keepalived drops it).
func (c *compiler) checker(ch *config.Checker, rs *config.RealServer) []check.Spec {
	if ch.Misc != nil && ch.Misc.Path != nil && ch.Misc.Path.Disabled != "" {
		return nil
	}
	if ch.File != nil {
		return c.fileCheck(ch)
	}
	s := check.Spec{
		Type:             check.Type(ch.Type),
		Connect:          netip.AddrPortFrom(ch.ConnectIP, ch.ConnectPort),
		BindTo:           ch.BindTo,
		BindPort:         ch.BindPort,
		BindIf:           ch.BindIf,
		FWMark:           ch.FWMark,
		ConnectTimeout:   ch.ConnectTimeout,
		Retry:            ch.Retry,
		DelayBeforeRetry: ch.DelayBeforeRetry,
		DelayLoop:        ch.DelayLoop,
		Warmup:           ch.Warmup,
		Alpha:            ch.Alpha || rs.Alpha,
		LogAllFailures:   ch.LogAllFailures,
	}
	switch {
	case ch.HTTP != nil:
		h := ch.HTTP
		s.HTTPProtocol, s.VirtualHost, s.EnableSNI, s.SNIName = h.Protocol, h.Virtualhost, h.EnableSNI, h.SNIName
		for _, u := range h.URLs {
			cu := check.URL{Path: u.Path, Digest: u.Digest, VirtualHost: u.Virtualhost}
			for _, r := range u.StatusCodes {
				cu.Status = append(cu.Status, [2]int{r.Min, r.Max})
			}
			if len(cu.Status) == 0 {
				cu.Status = defaultStatusCodes()
			}
			if u.Regex != "" {
				cu.Regex, cu.RegexNoMatch, cu.RegexMinOffset = u.GoRegex(), u.RegexNoMatch, u.RegexMinOffset
				if u.RegexMaxOffset >= 0 {
					cu.RegexEnd = u.RegexMaxOffset + 1
				}
			}
			s.URLs = append(s.URLs, cu)
		}
	case ch.Misc != nil:
		sc := scriptCmd(ch.Misc.Path)
		s.MiscPath, s.MiscRunAs = sc.Line, sc.RunAs
		s.MiscTimeout, s.MiscDynamic = ch.Misc.Timeout, ch.Misc.Dynamic
	case ch.DNS != nil:
		s.DNSType, s.DNSName = ch.DNS.Type, ch.DNS.Name
	case ch.SMTP != nil:
		s.HeloName = ch.SMTP.HeloName
	case ch.UDP != nil:
		u := ch.UDP
		s.Payload, s.RequireReply, s.Reply = u.Payload, u.RequireReply, u.Reply
		if slices.ContainsFunc(u.ReplyMask, func(b byte) bool { return b != 0xff }) {
			s.ReplyMask = u.ReplyMask
		}
		s.MinReplyLength, s.MaxReplyLength = u.MinReplyLength, u.MaxReplyLength
	}
	if err := s.Validate(); err != nil {
		c.errorf(ch.Pos, "%v", err)
		return nil
	}
	if ch.SMTP == nil || len(ch.SMTP.Hosts) == 0 {
		return []check.Spec{s}
	}
	// The host blocks replace the checker's own target.
	var specs []check.Spec
	for _, h := range ch.SMTP.Hosts {
		hs := s
		ip, port := h.ConnectIP, h.ConnectPort
		if !ip.IsValid() {
			ip = ch.ConnectIP
		}
		if port == 0 {
			port = ch.ConnectPort
		}
		hs.Connect = netip.AddrPortFrom(ip, port)
		hs.BindTo, hs.BindPort = h.BindTo, h.BindPort
		specs = append(specs, hs)
	}
	return specs
}

// fileCheck compiles a FILE_CHECK: the track_file block it names gives
// the path, and its weight unless the checker sets one. The file is read
// at the start and whenever it changes, and its number is the state: no
// delay_loop, no retries, no warmup.
func (c *compiler) fileCheck(ch *config.Checker) []check.Spec {
	f, ok := c.cfg.TrackFileBlock(ch.File.TrackFile)
	if !ok {
		c.errorf(ch.Pos, "FILE_CHECK: no track_file block named %q", ch.File.TrackFile)
		return nil
	}
	s := check.Spec{Type: check.FILE, DelayLoop: ch.DelayLoop, TrackFile: f.File, FileWeight: f.Weight, FileReverse: f.Reverse}
	if ch.File.WeightSet {
		s.FileWeight, s.FileReverse = ch.File.Weight, ch.File.Reverse
	}
	if err := s.Validate(); err != nil {
		c.errorf(ch.Pos, "%v", err)
		return nil
	}
	return []check.Spec{s}
}

// defaultStatusCodes are what a url block without status_code accepts,
// as keepalived: any 2xx.
func defaultStatusCodes() check.StatusCodes { return check.StatusCodes{{200, 299}} }
