package check

// machine is one checker's state: UP or DOWN and how many retries of the
// current failure were made. It holds no clock; step is fed each attempt's
// outcome and says what comes next, as keepalived's checker epilogues do:
//
//   - a success resets the retries; the checker is UP (at once, no matter
//     how long it was DOWN); the next check is a delay_loop later;
//   - a failure with retries left counts one and asks for a retry after
//     delay_before_retry;
//   - a failure with no retries left makes the checker DOWN and the next
//     check is a delay_loop later.
//
// So a server that stops answering is declared DOWN after retry+1 failed
// attempts separated by delay_before_retry.
type machine struct {
	retry          int
	retriesWhileDn bool // retry failures of a checker already DOWN

	up      bool
	hasRun  bool // a verdict was given
	retryIt int  // failed attempts of the current failure not yet judged
}

func newMachine(s *Spec) machine {
	return machine{retry: s.Retry, retriesWhileDn: s.retriesWhileDown(), up: !s.Alpha}
}

// step is what follows one attempt.
type step struct {
	retry   bool // next attempt after delay_before_retry, else after delay_loop
	verdict bool // the attempt decided the state (success or retries exhausted)
	changed bool // the state changed, or this is the first verdict
}

func (m *machine) step(ok bool) step {
	if ok {
		changed := !m.up || !m.hasRun
		m.up, m.hasRun, m.retryIt = true, true, 0
		return step{verdict: true, changed: changed}
	}
	canRetry := m.up || !m.hasRun || m.retriesWhileDn
	if canRetry && m.retryIt < m.retry {
		m.retryIt++
		return step{retry: true}
	}
	changed := m.up || !m.hasRun
	m.up, m.hasRun, m.retryIt = false, true, 0
	return step{verdict: true, changed: changed}
}
