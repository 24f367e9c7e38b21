package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

const shards = 16

// connTable holds every TCP connection entry, live or closed, spread over
// shards so that new connections rarely contend.
type connTable struct {
	shards [shards]struct {
		mu sync.Mutex
		m  map[*tcpConn]struct{}
		_  [40]byte // keep shards on separate cache lines
	}
	next atomic.Uint32
}

func (t *connTable) add(c *tcpConn) {
	c.shard = t.next.Add(1) % shards
	sh := &t.shards[c.shard]
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[*tcpConn]struct{})
	}
	sh.m[c] = struct{}{}
	sh.mu.Unlock()
}

func (t *connTable) remove(c *tcpConn) {
	sh := &t.shards[c.shard]
	sh.mu.Lock()
	delete(sh.m, c)
	sh.mu.Unlock()
}

// each calls fn for every entry; fn must not touch the table.
func (t *connTable) each(fn func(c *tcpConn)) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		list := make([]*tcpConn, 0, len(sh.m))
		for c := range sh.m {
			list = append(list, c)
		}
		sh.mu.Unlock()
		for _, c := range list {
			fn(c)
		}
	}
}

// expiryQueue holds closed entries in the order they closed; all of them
// share one timeout, so they expire from the head.
type expiryQueue struct {
	mu    sync.Mutex
	q     []*tcpConn
	head  int
	state tcpState
}

// push queues an entry whose close time is stamped; stamping it again
// under the lock keeps the queue in time order.
func (q *expiryQueue) push(c *tcpConn) {
	e := c.svc.e
	q.mu.Lock()
	c.closedAt.Store(e.now())
	q.q = append(q.q, c)
	q.mu.Unlock()
}

// expire releases the entries whose timeout has passed.
func (q *expiryQueue) expire(e *Engine) {
	now := e.now()
	timeout := e.stateTimeout(q.state)
	var done []*tcpConn
	q.mu.Lock()
	for q.head < len(q.q) {
		c := q.q[q.head]
		if c.closedAt.Load()+timeout > now {
			break
		}
		done = append(done, c)
		q.q[q.head] = nil
		q.head++
	}
	if q.head > 1024 && q.head*2 > len(q.q) {
		n := copy(q.q, q.q[q.head:])
		clear(q.q[n:])
		q.q, q.head = q.q[:n], 0
	}
	q.mu.Unlock()
	for _, c := range done {
		c.release()
	}
}

// janitor expires closed entries every tick and runs the rate estimator
// every 2 seconds, as the kernel's estimation timer does.
func (e *Engine) janitor(ctx context.Context) {
	defer close(e.janitorDone)
	tick := time.NewTicker(min(e.opts.Tick, time.Second))
	defer tick.Stop()
	est := time.NewTicker(estimatorPeriod)
	defer est.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			e.timeWait.expire(e)
			e.closing.expire(e)
		case <-est.C:
			e.estimate()
		case <-e.gate.wake:
			e.gateRun()
		}
	}
}

// estimatorPeriod is the kernel's estimation interval.
const estimatorPeriod = 2 * time.Second

func (e *Engine) estimate() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.order {
		s.stats.estimate()
		for _, d := range s.dests {
			d.stats.estimate()
		}
	}
}

// tcpEntries lists the TCP connection table.
func (t *connTable) entries(now int64, out []ipvs.Conn) []ipvs.Conn {
	t.each(func(c *tcpConn) { out = append(out, c.entry(now)) })
	return out
}
