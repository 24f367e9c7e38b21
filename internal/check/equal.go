package check

import (
	"bytes"
	"slices"

	"github.com/gvs-lb/gvs/internal/script"
)

// Equal reports whether s and o are the same checker: the same probe with
// the same timers.
func (s *Spec) Equal(o *Spec) bool {
	return s.Type == o.Type && s.Connect == o.Connect && s.BindTo == o.BindTo && s.BindPort == o.BindPort &&
		s.BindIf == o.BindIf && s.FWMark == o.FWMark && s.LogAllFailures == o.LogAllFailures &&
		s.ConnectTimeout == o.ConnectTimeout && s.Retry == o.Retry && s.DelayBeforeRetry == o.DelayBeforeRetry &&
		s.DelayLoop == o.DelayLoop && s.Warmup == o.Warmup && s.Alpha == o.Alpha &&
		slices.EqualFunc(s.URLs, o.URLs, URL.equal) && s.HTTPProtocol == o.HTTPProtocol &&
		s.VirtualHost == o.VirtualHost && s.EnableSNI == o.EnableSNI && s.SNIName == o.SNIName && s.Verify == o.Verify &&
		s.MiscPath == o.MiscPath && s.MiscTimeout == o.MiscTimeout && s.MiscDynamic == o.MiscDynamic &&
		sameCredential(s.MiscRunAs, o.MiscRunAs) &&
		s.DNSType == o.DNSType && s.DNSName == o.DNSName && s.HeloName == o.HeloName &&
		bytes.Equal(s.Payload, o.Payload) && s.RequireReply == o.RequireReply && bytes.Equal(s.Reply, o.Reply) &&
		bytes.Equal(s.ReplyMask, o.ReplyMask) && s.MinReplyLength == o.MinReplyLength && s.MaxReplyLength == o.MaxReplyLength &&
		s.TrackFile == o.TrackFile && s.FileWeight == o.FileWeight && s.FileReverse == o.FileReverse
}

func (u URL) equal(o URL) bool {
	return u.Path == o.Path && u.Digest == o.Digest && slices.Equal(u.Status, o.Status) &&
		u.VirtualHost == o.VirtualHost && u.Regex == o.Regex && u.RegexNoMatch == o.RegexNoMatch &&
		u.RegexMinOffset == o.RegexMinOffset && u.RegexEnd == o.RegexEnd
}

func sameCredential(a, b *script.Credential) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Equal reports whether r and o are the same real server with the same
// checkers and scripts.
func (r *RealServer) Equal(o *RealServer) bool {
	return r.Dest == o.Dest && r.Inhibit == o.Inhibit && r.NotifyUp.Equal(o.NotifyUp) &&
		r.NotifyDown.Equal(o.NotifyDown) && slices.EqualFunc(r.Checks, o.Checks, func(a, b Spec) bool { return a.Equal(&b) })
}

// Equal reports whether v and o are the same virtual server as the
// checkers keep it: the same real servers, sorry server, quorum and
// scripts.
func (v *VirtualServer) Equal(o *VirtualServer) bool {
	if (v.SorryServer == nil) != (o.SorryServer == nil) || v.SorryServer != nil && !v.SorryServer.Equal(o.SorryServer) {
		return false
	}
	return v.Service == o.Service && v.Quorum == o.Quorum && v.Hysteresis == o.Hysteresis &&
		v.QuorumUp.Equal(o.QuorumUp) && v.QuorumDown.Equal(o.QuorumDown) && v.HASuspend == o.HASuspend &&
		slices.EqualFunc(v.RealServers, o.RealServers, func(a, b RealServer) bool { return a.Equal(&b) })
}
