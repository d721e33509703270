package worker

import "github.com/prometheus/client_golang/prometheus"

// metrics are the worker's Prometheus series. Labels carry kinds and outcomes, never an
// appid with a secret or a value.
type metrics struct {
	refreshes *prometheus.CounterVec
	upstream  *prometheus.HistogramVec
	claims    prometheus.Counter
	retries   prometheus.Counter
	overQuota prometheus.Counter
	due       prometheus.Gauge
	calling   prometheus.Gauge
	// writeBatches and writeSeconds describe the statements that store fetched values.
	writeBatches prometheus.Histogram
	writeSeconds prometheus.Histogram
	// refreshTokenRecoveries counts authorizer refresh tokens WeChat no longer took, read
	// again from WeChat.
	refreshTokenRecoveries prometheus.Counter
	// contexts counts the daily reads of authorizers' context, by outcome.
	contexts *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_worker_refreshes_total",
			Help: "Finished refresh attempts by credential kind and outcome (refreshed, unchanged, transient, configuration, quota, fenced, write_failed, ...).",
		}, []string{"credential", "outcome"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxhub_worker_upstream_seconds",
			Help:    "Latency of WeChat credential calls by API and result.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"api", "result"}),
		claims: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxhub_worker_claims_total",
			Help: "Credentials claimed for refresh.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxhub_worker_write_retries_total",
			Help: "Retries of storing a fetched value after the database failed to take it.",
		}),
		overQuota: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxhub_worker_quota_guard_total",
			Help: "Due credentials parked until the next quota day because wxhub's daily quota guard was reached, or for WeCom's tickets until the next hour because its hourly limit guard was.",
		}),
		due: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wxhub_worker_due_credentials",
			Help: "Credentials due for refresh and not yet claimed (the backlog).",
		}),
		calling: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wxhub_worker_upstream_in_flight",
			Help: "WeChat credential calls waiting for their answer.",
		}),
		writeBatches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wxhub_worker_write_batch_rows",
			Help:    "Fetched values stored per statement.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wxhub_worker_write_seconds",
			Help:    "Duration of the statements that store fetched values, commit included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		refreshTokenRecoveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxhub_worker_refresh_token_recoveries_total",
			Help: "Authorizer refresh tokens WeChat no longer took (61023), replaced by the current one api_get_authorizer_info answered.",
		}),
		contexts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_worker_authorizer_contexts_total",
			Help: "Daily reads of authorizers' context from WeChat by outcome (unchanged, changed, revoked, error).",
		}, []string{"outcome"}),
	}
	for _, c := range []prometheus.Collector{m.refreshes, m.upstream, m.claims, m.retries, m.overQuota, m.due, m.calling,
		m.writeBatches, m.writeSeconds, m.refreshTokenRecoveries, m.contexts} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
