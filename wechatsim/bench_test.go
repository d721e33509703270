package wechatsim

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// benchSim is a simulator with 1,000 accounts, the scale the end-to-end
// benchmarks drive, and one live classic token per account.
func benchSim(b *testing.B) (*Simulator, []string, []string) {
	b.Helper()
	sim := New(Config{})
	const n = 1000
	appids := make([]string, n)
	tokens := make([]string, n)
	for i := range n {
		appids[i] = fmt.Sprintf("wx_bench_%04d", i)
		if err := sim.AddAccount(Account{AppID: appids[i], Secret: "s", Quotas: map[string]int{APIToken: 1 << 30}}); err != nil {
			b.Fatal(err)
		}
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, pathToken+"?grant_type=client_credential&secret=s&appid="+appids[i], nil))
		tok, _, _ := strings.Cut(strings.TrimPrefix(rec.Body.String(), `{"access_token":"`), `"`)
		tokens[i] = tok
	}
	return sim, appids, tokens
}

// BenchmarkUseParallel measures token checks spread over many accounts; it
// should scale with cores because no global lock is on this path.
func BenchmarkUseParallel(b *testing.B) {
	sim, _, tokens := benchSim(b)
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tok := tokens[next.Add(1)%int64(len(tokens))]
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, pathDomainIP+"?access_token="+url.QueryEscape(tok), nil))
			if rec.Body.Len() == 0 || strings.Contains(rec.Body.String(), "errcode") {
				b.Fatalf("use failed: %s", rec.Body.String())
			}
		}
	})
}

// BenchmarkClassicTokenParallel measures issuing tokens over many accounts.
func BenchmarkClassicTokenParallel(b *testing.B) {
	sim, appids, _ := benchSim(b)
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			appid := appids[next.Add(1)%int64(len(appids))]
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, pathToken+"?grant_type=client_credential&secret=s&appid="+appid, nil))
			if !strings.Contains(rec.Body.String(), "access_token") {
				b.Fatalf("token failed: %s", rec.Body.String())
			}
		}
	})
}
