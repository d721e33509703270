package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/server"
)

// BenchmarkCacheHit measures cache-hit reads of GET .../access-token through the full stack
// (HTTP, authentication, huma, cache) next to a bare net/http handler that returns the same
// bytes, with the same load generator (parallel keep-alive clients) in the same run. The
// ratio of the two requests/s figures is the cost of wxhub's stack.
func BenchmarkCacheHit(b *testing.B) {
	e := newEnv(b, time.Hour, 5*time.Minute)
	n := e.startNodeWith(b, server.Config{ListenerURL: e.dsn, RateLimit: -1, Logger: quiet})
	e.startWorker(b)
	e.tenant(b, n, "acme")
	e.account(b, n, "acme", appid(1))
	key := e.tenantKey(b, n, "acme")
	path := "/v1/accounts/" + appid(1) + "/access-token"
	res := n.call(b, key, http.MethodGet, path, nil)
	require.Equal(b, http.StatusOK, res.status)
	body := []byte(res.text)
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(bare.Close)

	load := func(b *testing.B, url string) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.SetParallelism(8)
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+key)
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Errorf("status %d", res.StatusCode)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	}
	b.Run("bare_net_http", func(b *testing.B) { load(b, bare.URL+path) })
	b.Run("wxhub", func(b *testing.B) {
		loads := n.srv.Cache().Loads()
		load(b, n.url+path)
		if n.srv.Cache().Loads() != loads {
			b.Errorf("cache hits read the database %d times", n.srv.Cache().Loads()-loads)
		}
	})
	b.Run("wxhub_handler_allocs", func(b *testing.B) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		h := n.srv.Handler()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
		}
	})
}
