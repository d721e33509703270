package wechatsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Faults describes injected failures, for one appid or (AppID empty) for all
// appids without faults of their own. An appid's faults replace the global
// ones entirely, so a test can also exempt one appid from global faults by
// posting an empty Faults for it.
//
// Latency applies to every WeChat endpoint. The other faults apply to the
// credential-issuing endpoints only (token, stable_token, getticket). Those
// that refuse a call are tried in this order, and the first that fires
// answers: drop, busy, HTTP status, HTML error, errcode, IP whitelist, then
// the quota fault (checked where a real 45009 would be). None of them issues
// anything. ResetAfterIssueRate is the exception: it applies after a call
// has issued its credential, and loses only the answer.
//
// On the wire latency is a Go duration string ("200ms") or latency_ms.
type Faults struct {
	// AppID selects the account; empty means the global faults.
	AppID string
	// BusyRate is the fraction of calls answered -1 "system error".
	BusyRate float64
	// Latency is added before answering, in real time: it models the network,
	// not the simulated clock.
	Latency time.Duration
	// DropRate is the fraction of calls whose connection is closed without an
	// answer.
	DropRate float64
	// QuotaExhausted answers 45009 from now on, whatever the counters say.
	QuotaExhausted bool
	// IPNotWhitelisted answers 40164, as for a caller outside the IP whitelist.
	IPNotWhitelisted bool
	// ErrCode, when non-zero, answers this WeChat errcode to every call: 40001
	// for a secret WeChat stopped accepting (on /cgi-bin/token too), 40014,
	// 41001, 45011, 48001, 61004, 40243, 89503 or any other.
	ErrCode int
	// HTTPStatus, when non-zero (500–599), answers that HTTP status with a
	// short plain-text body, as a failing front end does.
	HTTPStatus int
	// HTMLError answers HTTP 200 with an HTML error page, as a gateway in
	// front of WeChat sometimes does: the status says nothing went wrong.
	HTMLError bool
	// ResetAfterIssueRate is the fraction of otherwise successful calls whose
	// answer is lost: the credential is issued, with every effect of a
	// success (superseding, quota, counters), and then the connection is
	// closed without an answer. The caller never learns the live token.
	ResetAfterIssueRate float64
	// Clear removes the faults of AppID (the global faults when empty) instead
	// of setting them.
	Clear bool
}

// faultsWire is Faults' JSON form.
type faultsWire struct {
	AppID            string   `json:"appid"`
	BusyRate         float64  `json:"busy_rate,omitempty"`
	Latency          string   `json:"latency,omitempty"`
	LatencyMS        *float64 `json:"latency_ms,omitempty"`
	DropRate         float64  `json:"drop_rate,omitempty"`
	QuotaExhausted   bool     `json:"quota_exhausted,omitempty"`
	IPNotWhitelisted bool     `json:"ip_not_whitelisted,omitempty"`
	// ErrCode is a pointer so that an explicit 0, which would be a success
	// rather than a fault, can be refused instead of silently meaning "none".
	ErrCode             *int    `json:"errcode,omitempty"`
	HTTPStatus          int     `json:"http_status,omitempty"`
	HTMLError           bool    `json:"html_error,omitempty"`
	ResetAfterIssueRate float64 `json:"reset_after_issue_rate,omitempty"`
	Clear               bool    `json:"clear,omitempty"`
}

// MarshalJSON writes latency as a duration string.
func (f Faults) MarshalJSON() ([]byte, error) {
	w := faultsWire{
		AppID:               f.AppID,
		BusyRate:            f.BusyRate,
		DropRate:            f.DropRate,
		QuotaExhausted:      f.QuotaExhausted,
		IPNotWhitelisted:    f.IPNotWhitelisted,
		HTTPStatus:          f.HTTPStatus,
		HTMLError:           f.HTMLError,
		ResetAfterIssueRate: f.ResetAfterIssueRate,
		Clear:               f.Clear,
	}
	if f.Latency > 0 {
		w.Latency = f.Latency.String()
	}
	if f.ErrCode != 0 {
		w.ErrCode = &f.ErrCode
	}
	return json.Marshal(w)
}

// UnmarshalJSON accepts latency as a duration string or latency_ms as a
// number of milliseconds; the string wins when both are given.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var w faultsWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*f = Faults{
		AppID:               w.AppID,
		BusyRate:            w.BusyRate,
		DropRate:            w.DropRate,
		QuotaExhausted:      w.QuotaExhausted,
		IPNotWhitelisted:    w.IPNotWhitelisted,
		HTTPStatus:          w.HTTPStatus,
		HTMLError:           w.HTMLError,
		ResetAfterIssueRate: w.ResetAfterIssueRate,
		Clear:               w.Clear,
	}
	if w.ErrCode != nil {
		if *w.ErrCode == 0 {
			return fmt.Errorf("%w: errcode 0 is a success, not a fault", ErrInvalidFaults)
		}
		f.ErrCode = *w.ErrCode
	}
	switch {
	case w.Latency != "":
		d, err := time.ParseDuration(w.Latency)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		f.Latency = d
	case w.LatencyMS != nil:
		f.Latency = time.Duration(*w.LatencyMS * float64(time.Millisecond))
	}
	return nil
}

// ErrInvalidFaults is wrapped by SetFaults' errors for out-of-range values.
var ErrInvalidFaults = errors.New("wechatsim: invalid faults")

func (f Faults) validate() error {
	if f.BusyRate < 0 || f.BusyRate > 1 {
		return fmt.Errorf("%w: busy_rate %v is not in [0, 1]", ErrInvalidFaults, f.BusyRate)
	}
	if f.DropRate < 0 || f.DropRate > 1 {
		return fmt.Errorf("%w: drop_rate %v is not in [0, 1]", ErrInvalidFaults, f.DropRate)
	}
	if f.Latency < 0 {
		return fmt.Errorf("%w: latency %v is negative", ErrInvalidFaults, f.Latency)
	}
	if f.HTTPStatus != 0 && (f.HTTPStatus < 500 || f.HTTPStatus > 599) {
		return fmt.Errorf("%w: http_status %d is not in [500, 599]", ErrInvalidFaults, f.HTTPStatus)
	}
	if f.ResetAfterIssueRate < 0 || f.ResetAfterIssueRate > 1 {
		return fmt.Errorf("%w: reset_after_issue_rate %v is not in [0, 1]", ErrInvalidFaults, f.ResetAfterIssueRate)
	}
	return nil
}

// FaultTable is every fault currently set, as GET /sim/faults returns it.
type FaultTable struct {
	Global   *Faults           `json:"global"`
	Accounts map[string]Faults `json:"accounts"`
}

// SetFaults sets (or with Clear, removes) the faults of f.AppID, or the global
// faults when f.AppID is empty, as POST /sim/faults does.
func (s *Simulator) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	t := &s.world.Load().faults
	if f.Clear {
		t.clear(f.AppID)
		return nil
	}
	t.set(f)
	return nil
}

// ClearAllFaults removes global and per-appid faults, as DELETE /sim/faults does.
func (s *Simulator) ClearAllFaults() { s.world.Load().faults.clearAll() }

// Faults returns the faults currently set.
func (s *Simulator) Faults() FaultTable { return s.world.Load().faults.table() }

// faultTable holds an immutable snapshot that requests read without locking;
// writers, which are rare, copy it under mu and swap it in.
type faultTable struct {
	mu  sync.Mutex
	cur atomic.Pointer[faultSnapshot]
}

type faultSnapshot struct {
	global *Faults
	perApp map[string]*Faults
}

func (t *faultTable) init() { t.cur.Store(&faultSnapshot{}) }

// forApp returns the faults in force for appid, or nil for none.
func (t *faultTable) forApp(appid string) *Faults {
	snap := t.cur.Load()
	if f, ok := snap.perApp[appid]; ok && appid != "" {
		return f
	}
	return snap.global
}

func (t *faultTable) update(fn func(next *faultSnapshot)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.cur.Load()
	next := &faultSnapshot{global: old.global, perApp: make(map[string]*Faults, len(old.perApp)+1)}
	for k, v := range old.perApp {
		next.perApp[k] = v
	}
	fn(next)
	t.cur.Store(next)
}

func (t *faultTable) set(f Faults) {
	f.Clear = false
	t.update(func(next *faultSnapshot) {
		if f.AppID == "" {
			next.global = &f
			return
		}
		next.perApp[f.AppID] = &f
	})
}

func (t *faultTable) clear(appid string) {
	t.update(func(next *faultSnapshot) {
		if appid == "" {
			next.global = nil
			return
		}
		delete(next.perApp, appid)
	})
}

func (t *faultTable) clearAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur.Store(&faultSnapshot{})
}

func (t *faultTable) table() FaultTable {
	snap := t.cur.Load()
	out := FaultTable{Accounts: make(map[string]Faults, len(snap.perApp))}
	if snap.global != nil {
		g := *snap.global
		out.Global = &g
	}
	keys := make([]string, 0, len(snap.perApp))
	for k := range snap.perApp {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out.Accounts[k] = *snap.perApp[k]
	}
	return out
}

// chance draws from math/rand/v2's global generator, which is seeded from the
// runtime and safe for concurrent use; fault rates need no cryptographic
// randomness.
func chance(rate float64) bool { return rate > 0 && rand.Float64() < rate }

// sleepCtx waits d of real time, or until the caller gives up.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// writeHTTPError answers status with a short plain-text body, the way a
// front end that never reached WeChat does.
func writeHTTPError(w http.ResponseWriter, status int) {
	http.Error(w, fmt.Sprintf("%d %s", status, http.StatusText(status)), status)
}

// gatewayErrorPage is what a proxy in front of WeChat answers, with HTTP 200,
// when it cannot reach it.
const gatewayErrorPage = `<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
`

// writeHTMLError answers HTTP 200 with gatewayErrorPage.
func writeHTMLError(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, gatewayErrorPage)
}

// dropConnection closes the client's connection without an answer. Hijacking
// gives a clean close on HTTP/1; where it is not possible (HTTP/2, wrapped
// writers) http.ErrAbortHandler makes the server abort the response instead.
// Called outside an http.Server (httptest.ResponseRecorder) it panics.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
