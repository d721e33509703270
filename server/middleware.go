package server

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"
)

type principalKey struct{}

// principal returns the caller established by authenticate.
func principal(ctx context.Context) (Principal, error) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	if !ok {
		return Principal{}, errNoPrincipal
	}
	return p, nil
}

// rolesKey is the operation metadata naming the roles allowed to call it.
const rolesKey = "roles"

// authenticate resolves the bearer key and checks the operation's roles.
func (s *Server) authenticate(ctx huma.Context, next func(huma.Context)) {
	if public, _ := ctx.Operation().Metadata[publicKey].(bool); public {
		next(ctx)
		return
	}
	roles, _ := ctx.Operation().Metadata[rolesKey].([]string)
	key, ok := strings.CutPrefix(ctx.Header("Authorization"), "Bearer ")
	if !ok || key == "" {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="wxhub"`)
		_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "missing bearer API key")
		return
	}
	addr := ctx.RemoteAddr()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	p, err := s.keys.authenticate(ctx.Context(), key, addr, s.listener.Connected())
	switch {
	case err == errBadKey || err == errMalformedKey:
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="wxhub", error="invalid_token"`)
		_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, err.Error())
		return
	case err == errTooManyBadKeys:
		ctx.SetHeader("Retry-After", "1")
		_ = huma.WriteErr(s.api, ctx, http.StatusTooManyRequests, err.Error())
		return
	case err != nil:
		s.log.Error("authenticate", "err", err)
		_ = huma.WriteErr(s.api, ctx, http.StatusServiceUnavailable, "cannot check the API key now")
		return
	}
	if !s.allow(p.KeyID) {
		ctx.SetHeader("Retry-After", "1")
		_ = huma.WriteErr(s.api, ctx, http.StatusTooManyRequests, "too many requests with this API key; slow down")
		return
	}
	if !slices.Contains(roles, p.Role) {
		_ = huma.WriteErr(s.api, ctx, http.StatusForbidden, "this API key's role may not call this operation")
		return
	}
	next(huma.WithValue(ctx, principalKey{}, p))
}

// allow applies the per-key rate limit of this node.
func (s *Server) allow(keyID int64) bool {
	if s.cfg.RateLimit < 0 {
		return true
	}
	l, ok := s.limiters.Load(keyID)
	if !ok {
		l, _ = s.limiters.LoadOrStore(keyID, newKeyLimiter(s.cfg.RateLimit))
	}
	return l.(*keyLimiter).allow(time.Now().UnixNano())
}

// observe counts requests and their latency by operation and status.
func (s *Server) observe(ctx huma.Context, next func(huma.Context)) {
	start := time.Now()
	next(ctx)
	op := ctx.Operation().OperationID
	s.metrics.requests.WithLabelValues(op, strconv.Itoa(ctx.Status())).Inc()
	s.metrics.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

type apiMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// The fast token read's series, resolved once.
	tokenOK      prometheus.Counter
	tokenSeconds prometheus.Observer
}

func newAPIMetrics(reg *prometheus.Registry, s *Server) *apiMetrics {
	m := &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_api_requests_total", Help: "API requests by operation and status.",
		}, []string{"operation", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wxhub_api_request_seconds", Help: "API request latency by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation"}),
	}
	reg.MustRegister(m.requests, m.latency,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wxhub_api_cache_loads_total", Help: "Database reads made by the credential cache.",
		}, func() float64 { return float64(s.cache.Loads()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wxhub_api_fast_reads_total", Help: "Token reads answered from memory by the fast path (counted in wxhub_api_requests_total too).",
		}, func() float64 { return float64(s.FastReads()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wxhub_api_dead_reports_total", Help: "Reports of a rejected access token sent to the database; concurrent reports of one token count once.",
		}, func() float64 { return float64(s.DeadReports()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wxhub_api_listener_connected", Help: "1 while the LISTEN session is up.",
		}, func() float64 {
			if s.listener.Connected() {
				return 1
			}
			return 0
		}),
	)
	m.tokenOK = m.requests.WithLabelValues("get-access-token", "200")
	m.tokenSeconds = m.latency.WithLabelValues("get-access-token")
	return m
}
