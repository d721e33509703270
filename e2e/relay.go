package e2e

import (
	"bytes"
	"encoding/binary"
	"net"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Relay is the fault proxy between one wxhub process and PostgreSQL. It forwards TCP
// connections to a target and breaks them on command: reset every connection, reset a
// connection at its next COMMIT, or hold all traffic (a partition: nothing is closed and
// nothing arrives, so each side learns of it only through its own timeouts).
type Relay struct {
	ln     net.Listener
	target string

	blackhole atomic.Bool
	// commitResets is how many connections are still to be reset at a COMMIT.
	commitResets atomic.Int64
	// commitsCutBefore and commitsCutAfter count the resets done at a COMMIT, before and
	// after the server ran it.
	commitsCutBefore, commitsCutAfter atomic.Int64
	// marker names the statement whose executions CutAfterStatement cuts after the server
	// answered; statementResets is how many are still to cut, statementsCut how many were.
	marker                         string
	statementResets, statementsCut atomic.Int64
	// holdStatements holds the marked statement's executions in the relay until released;
	// held counts those waiting, and heldWrites says which credentials they write.
	holdStatements atomic.Bool
	held           atomic.Int64
	heldMu         sync.Mutex
	heldWrites     map[*relayConn][]HeldWrite
	// lateStored and lateRefused count the answers to held statements once released: a row
	// (stored, or recognised as a retry) or none (refused by the statement's own fence).
	lateStored, lateRefused atomic.Int64

	mu     sync.Mutex
	conns  map[*relayConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

type relayConn struct {
	client, server net.Conn
	once           sync.Once
	done           atomic.Bool
	// cutNextAnswer is set when the client executed the marked statement: the server's next
	// answer is dropped and the connection reset.
	cutNextAnswer atomic.Bool
	// heldAnswer is set when a held statement was released: the server's answer to it is
	// counted, against heldRows, the number of credentials it writes.
	heldAnswer atomic.Bool
	heldRows   atomic.Int64
	frontend   frontendParser
}

// close resets both sides: SO_LINGER 0 makes the kernel send an RST, as a failed network
// path or a crashed peer would, instead of an orderly FIN.
func (c *relayConn) close() {
	c.once.Do(func() {
		c.done.Store(true)
		for _, conn := range []net.Conn{c.client, c.server} {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = conn.Close()
		}
	})
}

// NewRelay listens on a free loopback port and forwards every connection to target. A
// non-empty marker makes the relay follow the client's protocol messages, so that
// CutAfterStatement can find the executions of the statement whose SQL contains it.
func NewRelay(target, marker string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, target: target, marker: marker, conns: map[*relayConn]struct{}{}, heldWrites: map[*relayConn][]HeldWrite{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Port is the relay's port on 127.0.0.1.
func (r *Relay) Port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", r.target, 5*time.Second)
		if err != nil {
			// PostgreSQL is down: the client sees the connection refused, as it would directly.
			if tc, ok := client.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = client.Close()
			continue
		}
		c := &relayConn{client: client, server: server}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.close()
			return
		}
		r.conns[c] = struct{}{}
		r.wg.Add(2)
		r.mu.Unlock()
		go r.pipe(c, client, server, true)
		go r.pipe(c, server, client, false)
	}
}

var (
	// commitQuery is pgx's Tx.Commit on the wire: a simple-protocol Query message.
	commitQuery = []byte("commit")
	// commitDone is the server's CommandComplete tag for a COMMIT that took effect.
	commitDone = []byte("COMMIT\x00")
)

// pipe copies one direction until either side fails. While the blackhole is on nothing is
// delivered: what was read waits, and the rest waits in the kernel, as behind a partition.
func (r *Relay) pipe(c *relayConn, from, to net.Conn, fromClient bool) {
	defer r.wg.Done()
	defer func() {
		c.close()
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := from.Read(buf)
		// A read already waiting when the blackhole came on must not deliver either.
		for r.blackhole.Load() && !c.done.Load() {
			time.Sleep(20 * time.Millisecond)
		}
		if c.done.Load() {
			return
		}
		if n > 0 {
			if r.cutAtCommit(buf[:n], fromClient) {
				return
			}
			if fromClient && r.marker != "" && c.frontend.executes(buf[:n], r.marker) {
				if r.statementResets.Load() > 0 {
					c.cutNextAnswer.Store(true)
				}
				r.hold(c, c.frontend.lastBind)
			}
			if !fromClient && c.heldAnswer.Load() {
				r.countLateAnswer(c, buf[:n])
			}
			if !fromClient && c.cutNextAnswer.Swap(false) && r.statementResets.Add(-1) >= 0 {
				r.statementsCut.Add(1)
				return
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cutAtCommit reports whether the chunk is a COMMIT to cut. Resets alternate between the
// client's COMMIT (the server never sees it and rolls back) and the server's answer to it
// (the transaction is committed, but the client cannot know): both leave the client with
// a transaction of unknown outcome.
func (r *Relay) cutAtCommit(chunk []byte, fromClient bool) bool {
	if r.commitResets.Load() <= 0 {
		return false
	}
	before := r.commitResets.Load()%2 == 0
	var match bool
	if fromClient {
		match = before && len(chunk) > 0 && chunk[0] == 'Q' && bytes.Contains(bytes.ToLower(chunk), commitQuery)
	} else {
		match = !before && bytes.Contains(chunk, commitDone)
	}
	if !match || r.commitResets.Add(-1) < 0 {
		return false
	}
	if fromClient {
		r.commitsCutBefore.Add(1)
	} else {
		r.commitsCutAfter.Add(1)
	}
	return true
}

// CutAfterStatement resets the next n connections that execute the marked statement (see
// NewRelay), after PostgreSQL ran it and before its answer reaches the client. For a
// statement outside a transaction that is a reset after COMMIT: the change is made, and the
// client does not know it.
func (r *Relay) CutAfterStatement(n int) { r.statementResets.Store(int64(n)) }

// HoldStatement holds (true) the marked statement's executions in the relay, or releases
// (false) those held: a held one reaches PostgreSQL late, whatever its sender did meanwhile.
func (r *Relay) HoldStatement(on bool) { r.holdStatements.Store(on) }

// Held returns how many executions of the marked statement are held now.
func (r *Relay) Held() int64 { return r.held.Load() }

// HeldWrite is the credential a held execution of the credential write stores.
type HeldWrite struct {
	AccountID int64
	Kind      string
}

// Parameters of the credential write (CredentialWriteFenced, 0-based): the arrays of the
// account ids and kinds of the credentials a batch writes; relay_test.go checks them
// against the real statement.
const writeAccountParam, writeKindParam = 0, 1

// HeldWrites lists the credentials of the executions held now.
func (r *Relay) HeldWrites() []HeldWrite {
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	out := make([]HeldWrite, 0, len(r.heldWrites))
	for _, ws := range r.heldWrites {
		out = append(out, ws...)
	}
	return out
}

func (r *Relay) hold(c *relayConn, bind []byte) {
	if !r.holdStatements.Load() {
		return
	}
	r.held.Add(1)
	defer r.held.Add(-1)
	if writes, ok := heldWrites(bind); ok {
		c.heldRows.Store(int64(len(writes)))
		r.heldMu.Lock()
		r.heldWrites[c] = writes
		r.heldMu.Unlock()
		defer func() {
			r.heldMu.Lock()
			delete(r.heldWrites, c)
			r.heldMu.Unlock()
		}()
	}
	for r.holdStatements.Load() && !c.done.Load() {
		time.Sleep(20 * time.Millisecond)
	}
	c.heldAnswer.Store(true)
}

// heldWrites decodes the credentials a credential write's Bind names, from its binary
// arrays of account ids and kinds.
func heldWrites(bind []byte) ([]HeldWrite, bool) {
	params, ok := bindParams(bind)
	if !ok || len(params) <= writeKindParam {
		return nil, false
	}
	ids, ok := params[writeAccountParam].array()
	if !ok {
		return nil, false
	}
	kinds, ok := params[writeKindParam].array()
	if !ok || len(kinds) != len(ids) {
		return nil, false
	}
	writes := make([]HeldWrite, len(ids))
	for i := range ids {
		if len(ids[i]) != 8 {
			return nil, false
		}
		writes[i] = HeldWrite{AccountID: int64(binary.BigEndian.Uint64(ids[i])), Kind: string(kinds[i])}
	}
	return writes, true
}

// commandComplete matches the tag of the server's CommandComplete for the credential write:
// a row per credential stored (or recognised as a retry); the rest were refused by their
// fence.
var commandComplete = regexp.MustCompile(`SELECT (\d+)\x00`)

// countLateAnswer counts the server's answer to a released held statement.
func (r *Relay) countLateAnswer(c *relayConn, chunk []byte) {
	m := commandComplete.FindSubmatch(chunk)
	if m == nil {
		return
	}
	stored, err := strconv.ParseInt(string(m[1]), 10, 64)
	if err != nil {
		return
	}
	r.lateStored.Add(stored)
	r.lateRefused.Add(max(0, c.heldRows.Load()-stored))
	c.heldAnswer.Store(false)
}

// LateAnswers returns how many credentials the held statements, once released, stored and
// how many their fences refused.
func (r *Relay) LateAnswers() (stored, refused int64) {
	return r.lateStored.Load(), r.lateRefused.Load()
}

// bindParam is one parameter of a Bind message: its value and whether it is in binary
// format.
type bindParam struct {
	value  []byte
	binary bool
}

// array decodes a one-dimensional array parameter in binary format (the header: dimensions,
// null flag, element type, then per dimension its length and lower bound; then each element
// as a length and its bytes) into its elements.
func (p bindParam) array() ([][]byte, bool) {
	b := p.value
	if !p.binary || len(b) < 12 {
		return nil, false
	}
	switch dims := binary.BigEndian.Uint32(b); dims {
	case 0:
		return nil, true
	case 1:
	default:
		return nil, false
	}
	if len(b) < 20 {
		return nil, false
	}
	n := int(int32(binary.BigEndian.Uint32(b[12:])))
	b = b[20:]
	elems := make([][]byte, 0, n)
	for range n {
		if len(b) < 4 {
			return nil, false
		}
		size := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		if size < 0 || size > len(b) {
			return nil, false
		}
		elems = append(elems, b[:size])
		b = b[size:]
	}
	return elems, true
}

// bindParams parses the parameters of a Bind message's body: portal and statement names,
// the parameter format codes (none: all text; one: for all; else one each), then each
// parameter as a length and its bytes.
func bindParams(body []byte) ([]bindParam, bool) {
	for range 2 { // portal name, statement name
		i := bytes.IndexByte(body, 0)
		if i < 0 {
			return nil, false
		}
		body = body[i+1:]
	}
	u16 := func() (int, bool) {
		if len(body) < 2 {
			return 0, false
		}
		n := int(binary.BigEndian.Uint16(body))
		body = body[2:]
		return n, true
	}
	nFormats, ok := u16()
	if !ok || len(body) < 2*nFormats {
		return nil, false
	}
	formats := make([]bool, nFormats)
	for i := range formats {
		formats[i] = binary.BigEndian.Uint16(body[2*i:]) == 1
	}
	body = body[2*nFormats:]
	n, ok := u16()
	if !ok {
		return nil, false
	}
	params := make([]bindParam, n)
	for i := range params {
		if len(body) < 4 {
			return nil, false
		}
		size := int(int32(binary.BigEndian.Uint32(body)))
		body = body[4:]
		if size > len(body) {
			return nil, false
		}
		if size > 0 {
			params[i].value = body[:size]
			body = body[size:]
		}
		switch nFormats {
		case 0:
		case 1:
			params[i].binary = formats[0]
		default:
			params[i].binary = i < nFormats && formats[i]
		}
	}
	return params, true
}

// StatementsCut returns how many connections CutAfterStatement reset so far.
func (r *Relay) StatementsCut() int64 { return r.statementsCut.Load() }

// frontendParser follows the client's side of the PostgreSQL protocol (version 3) far
// enough to know which prepared statement each Bind executes.
type frontendParser struct {
	started bool
	lost    bool // the stream made no sense (or was encrypted); stop following it
	buf     []byte
	marked  map[string]bool // statement name → its SQL contains the marker
	// lastBind is the body of the last Bind of a marked statement.
	lastBind []byte
}

// sslRequest and gssencRequest are the codes of the untyped requests a client may send
// before its startup message.
const sslRequest, gssencRequest = 80877103, 80877104

// executes reports whether chunk binds a statement whose SQL contains marker.
func (p *frontendParser) executes(chunk []byte, marker string) bool {
	if p.marked == nil {
		p.marked = map[string]bool{}
	}
	if p.lost {
		return false
	}
	p.buf = append(p.buf, chunk...)
	hit := false
	for {
		if !p.started {
			// The startup message, and an SSL or GSS request before it, have a length but
			// no type byte.
			if len(p.buf) < 8 {
				return hit
			}
			n := int(binary.BigEndian.Uint32(p.buf))
			if n < 8 || n > 1<<16 {
				p.lost = true
				return hit
			}
			if len(p.buf) < n {
				return hit
			}
			switch binary.BigEndian.Uint32(p.buf[4:8]) {
			case sslRequest, gssencRequest:
				// Accepted, the rest is encrypted; refused, the startup message follows.
				// Only sslmode=disable is followed here.
				p.lost = true
				return hit
			}
			p.buf, p.started = p.buf[n:], true
			continue
		}
		if len(p.buf) < 5 {
			return hit
		}
		n := int(binary.BigEndian.Uint32(p.buf[1:5]))
		if n < 4 || n > 1<<30 {
			p.lost = true
			return hit
		}
		if len(p.buf) < 1+n {
			return hit
		}
		typ, body := p.buf[0], p.buf[5:1+n]
		switch typ {
		case 'P': // Parse: statement name, SQL
			name, rest, _ := bytes.Cut(body, []byte{0})
			query, _, _ := bytes.Cut(rest, []byte{0})
			p.marked[string(name)] = bytes.Contains(query, []byte(marker))
		case 'B': // Bind: portal name, statement name
			_, rest, _ := bytes.Cut(body, []byte{0})
			name, _, _ := bytes.Cut(rest, []byte{0})
			if p.marked[string(name)] {
				hit = true
				p.lastBind = bytes.Clone(body)
			}
		}
		p.buf = p.buf[1+n:]
	}
}

// ResetAll resets every open connection.
func (r *Relay) ResetAll() {
	r.mu.Lock()
	conns := make([]*relayConn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// ResetAtCommit resets the next n connections that commit a transaction.
func (r *Relay) ResetAtCommit(n int) { r.commitResets.Store(int64(n)) }

// CommitsCut returns how many connections were reset at a COMMIT so far: before the server
// received it, and after the server committed.
func (r *Relay) CommitsCut() (before, after int64) {
	return r.commitsCutBefore.Load(), r.commitsCutAfter.Load()
}

// Blackhole holds (true) or releases (false) all traffic without closing anything.
func (r *Relay) Blackhole(on bool) { r.blackhole.Store(on) }

// Close stops the relay and resets its connections. Calls after the first do nothing.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	err := r.ln.Close()
	r.ResetAll()
	r.wg.Wait()
	return err
}
