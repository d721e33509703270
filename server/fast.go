package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wxhub/db"
)

// The token read is what app servers do all day, so it has a path of its own beside the huma
// operation get-access-token, which the OpenAPI document describes and which answers every
// request the fast path declines. The fast path answers only what that operation would
// answer 200 from memory, with the same bytes (TestTheFastReadAnswersAsTheOperationDoes): a
// GET without a query, of a key and a credential both cached and usable, within the key's
// rate. It hashes the key once, takes no lock, resolves no metric label, and writes a body
// rendered once per cached value but for its expiry.

// fastReads serves token reads it can from memory and hands every other request to next.
func (s *Server) fastReads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.RawQuery == "" && s.fastToken(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
	bodyBuffers     = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
)

// fastToken answers GET /v1/accounts/{appid}/access-token when it can, and reports whether
// it did; when it did not, it has written nothing.
func (s *Server) fastToken(w http.ResponseWriter, r *http.Request) bool {
	appid, ok := tokenPathAppID(r.URL.Path)
	if !ok {
		return false
	}
	if a := r.Header.Get("Accept"); a != "" && !strings.Contains(a, "json") && !strings.Contains(a, "*/*") {
		return false
	}
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || key == "" {
		return false
	}
	now := time.Now()
	p, found, err := s.keys.cached(sha256.Sum256([]byte(key)), s.listener.Connected(), now)
	if !found || err != nil {
		return false
	}
	e := s.cache.entry(credKey{appid, "access_token"}, now)
	if e == nil || !p.mayAccess(e.cred.TenantID) || e.cred.AccountStatus == "unauthorized" {
		return false
	}
	good := s.goodUntil(e.cred, now)
	if good.Sub(now) < minPromise || s.reportedDead(e.cred) || !s.allow(p.KeyID) {
		return false
	}
	bp := bodyBuffers.Get().(*[]byte)
	b := append((*bp)[:0], e.prefix...)
	b = good.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","expires_in":`...)
	b = strconv.AppendInt(b, secondsLeft(good), 10)
	b = append(b, e.suffix...)
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	_, _ = w.Write(b)
	*bp = b
	bodyBuffers.Put(bp)
	s.metrics.tokenOK.Inc()
	s.metrics.tokenSeconds.Observe(time.Since(now).Seconds())
	s.fastServed.Add(1)
	return true
}

// FastReads is how many token reads the fast path answered.
func (s *Server) FastReads() int64 { return s.fastServed.Load() }

// tokenPathAppID extracts the appid of /v1/accounts/{appid}/access-token, if it matches the
// operation's pattern ^[A-Za-z0-9_-]{1,64}$ (else the operation answers 422).
func tokenPathAppID(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/v1/accounts/")
	if !ok {
		return "", false
	}
	appid, ok := strings.CutSuffix(rest, "/access-token")
	if !ok || len(appid) == 0 || len(appid) > 64 {
		return "", false
	}
	for i := 0; i < len(appid); i++ {
		c := appid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return "", false
		}
	}
	return appid, true
}

// renderToken renders the token answer of a cached credential around its expiry, as huma
// encodes TokenBody: {"access_token":…,"expires_at":"…","expires_in":…,"generation":…}
// and a newline.
func renderToken(c db.CachedCredential) (prefix, suffix []byte) {
	var value bytes.Buffer
	enc := json.NewEncoder(&value)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(c.Value) // a string always encodes
	prefix = append([]byte(`{"access_token":`), bytes.TrimSuffix(value.Bytes(), []byte("\n"))...)
	prefix = append(prefix, `,"expires_at":"`...)
	suffix = append([]byte(`,"generation":`), strconv.FormatInt(c.Generation, 10)...)
	suffix = append(suffix, "}\n"...)
	return prefix, suffix
}

// keyLimiter is one API key's request budget: RateLimit requests a second on average, in
// bursts of up to twice that. It is the generic cell rate algorithm on one atomic value, so
// the requests of a busy key never queue on a lock (golang.org/x/time/rate's Limiter takes
// a mutex on every call).
type keyLimiter struct {
	interval  int64        // nanoseconds per request at the rate
	tolerance int64        // how far ahead of now the schedule may run: the burst
	tat       atomic.Int64 // theoretical arrival time of the next request, unix nanoseconds
}

func newKeyLimiter(perSecond float64) *keyLimiter {
	interval := max(1, int64(float64(time.Second)/perSecond))
	burst := max(1, int64(2*perSecond))
	return &keyLimiter{interval: interval, tolerance: (burst - 1) * interval}
}

// allow takes one request from the budget, if there is one at now (unix nanoseconds).
func (l *keyLimiter) allow(now int64) bool {
	for {
		tat := l.tat.Load()
		next := max(tat, now)
		if next-now > l.tolerance {
			return false
		}
		if l.tat.CompareAndSwap(tat, next+l.interval) {
			return true
		}
	}
}
