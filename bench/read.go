package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"time"

	"wxhub/server"
)

// readOptions shape the read benchmark: wrk's connections and duration per round.
type readOptions struct {
	rounds      int
	connections int
	duration    time.Duration
}

// readRound is one wrk run against one server.
type readRound struct {
	perSecond float64
	cpuPerReq time.Duration // this process's CPU (both servers live in it) per request
}

// reads measures a cache hit of the token GET on an API node against a bare net/http handler
// that returns the same bytes from a map, both served over TCP in this process, loaded by
// wrk (an external process) in interleaved rounds.
func (b *bench) reads(ctx context.Context, o readOptions) error {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return fmt.Errorf("the read benchmark needs wrk (apt-get install wrk): %w", err)
	}
	url, pool, store, err := b.apiDatabase(ctx, "bench_read", 1)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := b.writeDue(ctx, store, pool, ""); err != nil {
		return err
	}
	// The per-key limit is checked on every request but set out of reach: the figure is the
	// read path's, not the limit's.
	srv := server.New(store, server.Config{ListenerURL: url, RateLimit: 1e9,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	nodeCtx, stop := context.WithCancel(ctx)
	defer stop()
	go srv.Run(nodeCtx)
	node := httptest.NewServer(srv.Handler())
	defer node.Close()

	path := "/v1/accounts/wxb1_0000000/access-token"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node.URL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET token: status %d: %v", resp.StatusCode, err)
	}
	headers := resp.Header.Clone()
	headers.Del("Date")
	headers.Del("Content-Length")
	bodies := map[string][]byte{path: body}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		for k, v := range headers {
			w.Header()[k] = v
		}
		_, _ = w.Write(b)
	}))
	defer bare.Close()

	targets := []struct{ name, url string }{{"bare net/http handler, same bytes from a map", bare.URL + path},
		{"wxhub: GET access-token, cache hit", node.URL + path}}
	results := make([][]readRound, len(targets))
	for round := range o.rounds {
		// Alternate which server goes first, so neither always runs on a warmer machine.
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			r, err := runWrk(ctx, wrk, targets[i].url, o)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", targets[i].name, round+1, err)
			}
			results[i] = append(results[i], r)
		}
	}
	fmt.Fprintf(b.out, "reads: wrk -t1 -c%d -d%s, %d interleaved rounds, one body of %d bytes\n",
		o.connections, o.duration, o.rounds, len(body))
	fmt.Fprintf(b.out, "  %-48s %12s %22s %16s %s\n", "", "median/s", "spread", "CPU µs/request", "÷ bare")
	bareMedian := medianRate(results[0])
	for i, t := range targets {
		rates := make([]float64, len(results[i]))
		cpu := make([]time.Duration, len(results[i]))
		for j, r := range results[i] {
			rates[j], cpu[j] = r.perSecond, r.cpuPerReq
		}
		med := medianRate(results[i])
		fmt.Fprintf(b.out, "  %-48s %12.0f %10.0f–%-11.0f %16.1f %6.2f×   rounds: %s\n", t.name, med,
			slices.Min(rates), slices.Max(rates), float64(median(cpu).Nanoseconds())/1000, med/bareMedian, rateList(rates))
	}
	fmt.Fprintln(b.out)
	return nil
}

var (
	wrkRate   = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTotal  = regexp.MustCompile(`([0-9]+) requests in`)
	wrkErrors = regexp.MustCompile(`Non-2xx or 3xx responses: ([0-9]+)|Socket errors: .*`)
)

// runWrk loads url for one round and reads wrk's rate, with this process's CPU time spent
// meanwhile divided by the requests served.
func runWrk(ctx context.Context, wrk, url string, o readOptions) (readRound, error) {
	before := cpuTime()
	out, err := exec.CommandContext(ctx, wrk, "-t1", "-c"+strconv.Itoa(o.connections), "-d"+o.duration.String(),
		"-H", "Authorization: Bearer "+adminKey, url).CombinedOutput()
	cpu := cpuTime() - before
	if err != nil {
		return readRound{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	if m := wrkErrors.Find(out); m != nil {
		return readRound{}, fmt.Errorf("wrk saw failed requests: %s", bytes.TrimSpace(m))
	}
	rate, total := wrkRate.FindSubmatch(out), wrkTotal.FindSubmatch(out)
	if rate == nil || total == nil {
		return readRound{}, fmt.Errorf("cannot read wrk's output: %s", out)
	}
	perSecond, _ := strconv.ParseFloat(string(rate[1]), 64)
	requests, _ := strconv.ParseInt(string(total[1]), 10, 64)
	if requests == 0 {
		return readRound{}, fmt.Errorf("wrk made no request: %s", out)
	}
	return readRound{perSecond: perSecond, cpuPerReq: cpu / time.Duration(requests)}, nil
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func medianRate(rs []readRound) float64 {
	rates := make([]float64, len(rs))
	for i, r := range rs {
		rates[i] = r.perSecond
	}
	slices.Sort(rates)
	return rates[len(rates)/2]
}

func rateList(rates []float64) string {
	var b bytes.Buffer
	for i, r := range rates {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.0f", r)
	}
	return b.String()
}
