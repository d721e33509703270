// Command bench measures the refresh engine on a durable PostgreSQL it starts itself: how
// long N credentials, all due at once, take to be fresh with 1 and 2 workers against a
// simulator that answers at once, next to two floors run in the same session on the same
// database (one UPDATE and pg_notify per transaction, and a 256-row batched UPDATE with one
// pg_notify), and how long a new value takes from its commit to being served by 3 API nodes,
// next to a bare LISTEN/NOTIFY. With -read it measures instead how many cached token reads an
// API node answers next to a bare net/http handler.
//
//	go run ./bench                               10,000 and 100,000 credentials, 3 rounds
//	go run ./bench -accounts 1000000 -rounds 1   a million, once
//	go run ./bench -quick                        10,000 credentials, 1 round (make test)
//	go run ./bench -read                         the token read path against a bare net/http
//	                                             handler, loaded by wrk in 5 interleaved rounds
//
// Figures go to standard output; bench/RESULTS.md records them with the command that made
// them.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"wxhub/db"
	"wxhub/db/keyring"
	"wxhub/db/localpg"
	"wxhub/server"
	"wxhub/wechat"
	"wxhub/wechatsim"
	"wxhub/worker"
)

// benchKeys is a throwaway key ring: the benchmark's secrets are made up.
const benchKeys = "b1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// adminKey lets the benchmark read tokens from the API nodes.
const adminKey = "bench-admin-key-not-secret"

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	accounts    []int
	workers     []int
	rounds      int
	propagation int
	cpuProfile  string
	read        bool
	reads       readOptions
}

func parse(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	accounts := fs.String("accounts", "10000,100000", "comma-separated numbers of due credentials")
	workers := fs.String("workers", "1,2", "comma-separated numbers of workers")
	rounds := fs.Int("rounds", 3, "rounds of each measurement")
	propagation := fs.Int("propagation", 1000, "refreshes timed from commit to 3 API nodes serving them (0 skips)")
	quick := fs.Bool("quick", false, "10,000 credentials, 1 worker, 1 round, 200 propagations: proves the benchmark runs")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the largest worker run to this file")
	read := fs.Bool("read", false, "measure only the token read path against a bare net/http handler, with wrk")
	readRounds := fs.Int("read-rounds", 5, "interleaved rounds of the read benchmark")
	readConns := fs.Int("read-connections", 16, "wrk's connections in the read benchmark")
	readDuration := fs.Duration("read-duration", 5*time.Second, "length of one wrk round")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	o := options{rounds: *rounds, propagation: *propagation, cpuProfile: *cpuProfile, read: *read,
		reads: readOptions{rounds: *readRounds, connections: *readConns, duration: *readDuration}}
	if o.reads.rounds < 1 || o.reads.connections < 1 || o.reads.duration < time.Second {
		return o, errors.New("-read-rounds and -read-connections must be at least 1, -read-duration at least 1s")
	}
	var err error
	if o.accounts, err = ints(*accounts); err != nil {
		return o, fmt.Errorf("-accounts: %w", err)
	}
	if o.workers, err = ints(*workers); err != nil {
		return o, fmt.Errorf("-workers: %w", err)
	}
	if *quick {
		o.accounts, o.workers, o.rounds, o.propagation = []int{10_000}, []int{1}, 1, 200
	}
	if o.rounds < 1 {
		return o, errors.New("-rounds must be at least 1")
	}
	return o, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// bench is one session: the cluster, the simulator and the key ring.
type bench struct {
	pg     *localpg.Server
	ring   *keyring.Ring
	sim    *wechatsim.Simulator
	simURL string
	out    io.Writer
	seq    atomic.Int64
	// hot collects, per worker run, how many updates of the credentials table were HOT.
	hot []string
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	ring, err := keyring.Parse(benchKeys)
	if err != nil {
		return err
	}
	pg, err := localpg.Start(ctx, localpg.Options{Durable: true})
	if err != nil {
		return err
	}
	defer pg.Stop()
	sim := wechatsim.New(wechatsim.Config{})
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	b := &bench{pg: pg, ring: ring, sim: sim, simURL: simSrv.URL, out: out}
	if err := b.describe(ctx); err != nil {
		return err
	}
	if o.read {
		return b.reads(ctx, o.reads)
	}
	for _, n := range o.accounts {
		if err := b.refreshes(ctx, n, o); err != nil {
			return err
		}
	}
	if o.propagation > 0 {
		return b.propagation(ctx, o.propagation)
	}
	return nil
}

// describe prints the settings that make the figures durable ones.
func (b *bench) describe(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, b.pg.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var version, fsync, syncCommit string
	if err := conn.QueryRow(ctx, "SELECT version(), current_setting('fsync'), current_setting('synchronous_commit')").
		Scan(&version, &fsync, &syncCommit); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "%s\nfsync=%s synchronous_commit=%s\n\n", version, fsync, syncCommit)
	return nil
}

// refreshes measures n due credentials: for each round, the floors and each worker count on
// a fresh copy of a database whose n credentials are all due.
func (b *bench) refreshes(ctx context.Context, n int, o options) error {
	template := fmt.Sprintf("bench_%d", n)
	start := time.Now()
	if err := b.makeTemplate(ctx, template, n); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "%d due credentials (set up in %s)\n", n, time.Since(start).Round(time.Second))
	type measure struct {
		name string
		run  func(ctx context.Context, url string) (time.Duration, error)
	}
	measures := []measure{
		{"floor: UPDATE+pg_notify per transaction, 8 connections", func(ctx context.Context, url string) (time.Duration, error) {
			return floorPerRow(ctx, url, 8)
		}},
		{"floor: 256-row UPDATE+pg_notify per transaction, 2 connections", func(ctx context.Context, url string) (time.Duration, error) {
			return floorBatched(ctx, url, 256, 2)
		}},
	}
	for _, w := range o.workers {
		profile := o.cpuProfile != "" && n == slices.Max(o.accounts) && w == slices.Max(o.workers)
		measures = append(measures, measure{fmt.Sprintf("wxhub: %d worker(s), defaults", w), func(ctx context.Context, url string) (time.Duration, error) {
			return b.workers(ctx, url, n, w, profile, o.cpuProfile)
		}})
	}
	results := make([][]time.Duration, len(measures))
	for round := range o.rounds {
		for i, m := range measures {
			d, err := b.onCopy(ctx, template, func(url string) (time.Duration, error) { return m.run(ctx, url) })
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", m.name, round+1, err)
			}
			results[i] = append(results[i], d)
		}
	}
	floor := median(results[1])
	fmt.Fprintf(b.out, "  %-64s %10s %14s %14s %s\n", "", "median", "spread", "per second", "÷ batched floor")
	for i, m := range measures {
		med := median(results[i])
		fmt.Fprintf(b.out, "  %-64s %9.2fs %6.2f–%.2fs %14.0f %8.2f×   rounds: %s\n", m.name, med.Seconds(),
			slices.Min(results[i]).Seconds(), slices.Max(results[i]).Seconds(), float64(n)/med.Seconds(),
			med.Seconds()/floor.Seconds(), seconds(results[i]))
	}
	fmt.Fprintf(b.out, "  heap-only (HOT) updates, per worker run: %s\n", strings.Join(b.hot, "; "))
	b.hot = nil
	fmt.Fprintln(b.out)
	return nil
}

// makeTemplate creates a database with n official accounts whose access tokens are all due,
// and the same accounts in the simulator. Every token already holds a value, as due tokens
// do in service (a refresh replaces a value of the same size, which is what lets its update
// stay on its page). The tokens are classic, so that every refresh fetches a new value: a
// stable token would come back unchanged until its last minutes. Setting up is not
// measured, so it commits without waiting for the disk.
func (b *bench) makeTemplate(ctx context.Context, name string, n int) error {
	if err := b.exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+name, "CREATE DATABASE "+name); err != nil {
		return err
	}
	url := b.pg.URL(name)
	m, err := db.NewMigrator(url)
	if err != nil {
		return err
	}
	_, err = m.Up(ctx)
	m.Close()
	if err != nil {
		return err
	}
	pool, err := db.Open(ctx, url+"&options=-c%20synchronous_commit%3Doff")
	if err != nil {
		return err
	}
	defer pool.Close()
	store := db.NewStore(pool, b.ring)
	if _, err := store.CreateTenant(ctx, "bench"); err != nil {
		return err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				appid := fmt.Sprintf("wxb%d_%07d", n, i)
				err := b.sim.AddAccount(wechatsim.Account{AppID: appid, Secret: "s-" + appid})
				if err == nil {
					_, err = store.CreateAccount(ctx, db.NewAccount{Tenant: "bench", AppID: appid, Kind: "official_account",
						Secret: "s-" + appid, TokenMode: "classic"})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if _, err := b.workers(ctx, url+"&options=-c%20synchronous_commit%3Doff", n, 2, false, ""); err != nil {
		return fmt.Errorf("first values: %w", err)
	}
	b.hot = nil
	_, err = pool.Exec(ctx, "UPDATE credential_schedule SET refresh_at = now() - interval '1 minute'")
	if err != nil {
		return err
	}
	_, err = pool.Exec(ctx, "VACUUM ANALYZE")
	return err
}

// onCopy runs f on a fresh copy of template and drops the copy after.
func (b *bench) onCopy(ctx context.Context, template string, f func(url string) (time.Duration, error)) (time.Duration, error) {
	name := fmt.Sprintf("%s_run%d", template, b.seq.Add(1))
	if err := b.exec(ctx, "postgres", fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, template), "CHECKPOINT"); err != nil {
		return 0, err
	}
	d, err := f(b.pg.URL(name))
	return d, errors.Join(err, b.exec(ctx, "postgres", "DROP DATABASE "+name+" WITH (FORCE)"))
}

func (b *bench) exec(ctx context.Context, database string, statements ...string) error {
	conn, err := pgx.Connect(ctx, b.pg.URL(database))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, s := range statements {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// workers runs w workers with the binary's defaults until every credential holds a value
// newer than the one it held at the start.
func (b *bench) workers(ctx context.Context, url string, n, w int, profile bool, profilePath string) (time.Duration, error) {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, w)
	client := wechat.New(b.simURL, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}})
	watch, err := db.Open(ctx, url)
	if err != nil {
		return 0, err
	}
	defer watch.Close()
	var before int64
	if err := watch.QueryRow(ctx, "SELECT coalesce(min(generation), 0) FROM credentials").Scan(&before); err != nil {
		return 0, err
	}
	if profile {
		f, err := os.Create(profilePath)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	var pools []*pgxpool.Pool
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	for i := range w {
		pool, err := db.Open(ctx, url)
		if err != nil {
			return 0, err
		}
		pools = append(pools, pool)
		wk, err := worker.New(db.NewStore(pool, b.ring), client, worker.Config{
			ID:     fmt.Sprintf("bench-%d", i+1),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			return 0, err
		}
		wg.Go(func() { errs <- wk.Run(runCtx) })
	}
	elapsed, err := waitAllFresh(ctx, watch, n, before, start)
	stop()
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	// The workers' backends report their statistics as they exit.
	for _, p := range pools {
		p.Close()
	}
	pools = nil
	var updates, hot, schedUpdates, schedHot int64
	if serr := watch.QueryRow(ctx, `SELECT
			sum(n_tup_upd) FILTER (WHERE relname = 'credentials'), sum(n_tup_hot_upd) FILTER (WHERE relname = 'credentials'),
			sum(n_tup_upd) FILTER (WHERE relname = 'credential_schedule'), sum(n_tup_hot_upd) FILTER (WHERE relname = 'credential_schedule')
		FROM pg_stat_user_tables`).Scan(&updates, &hot, &schedUpdates, &schedHot); serr != nil {
		return elapsed, errors.Join(err, serr)
	}
	b.hot = append(b.hot, fmt.Sprintf("%d worker(s): %d updates of credentials, %d of them HOT (%.0f%%); "+
		"%d of credential_schedule, %d HOT (%.0f%%); together %.0f%% HOT",
		w, updates, hot, 100*float64(hot)/float64(max(1, updates)),
		schedUpdates, schedHot, 100*float64(schedHot)/float64(max(1, schedUpdates)),
		100*float64(hot+schedHot)/float64(max(1, updates+schedUpdates))))
	return elapsed, err
}

// waitAllFresh polls until every credential holds a value past generation before, and returns
// the time since start.
func waitAllFresh(ctx context.Context, pool *pgxpool.Pool, n int, before int64, start time.Time) (time.Duration, error) {
	deadline := start.Add(10 * time.Minute)
	for {
		var fresh int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM credentials WHERE generation > $1", before).Scan(&fresh); err != nil {
			return 0, err
		}
		if fresh >= n {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d of %d credentials fresh after 10 minutes", fresh, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// floorWrite is what a refresh changes, without the fences: the value of the credentials
// where selects (w, the written rows) and their schedule; the floors' common table
// expressions.
func floorWrite(where string) string {
	return `w AS (UPDATE credentials SET value_ciphertext = '\x01', value_key_id = 'k', value_fingerprint = 'f',
		expires_at = now() + interval '2 hours', generation = generation + 1, replace_not_before = now() + interval '1 hour'
		WHERE ` + where + ` RETURNING account_id, kind, generation),
	s AS (UPDATE credential_schedule s SET refresh_at = now() + interval '1 hour'
		FROM w WHERE s.account_id = w.account_id AND s.kind = w.kind)`
}

// floorPerRow is the old write path's floor: each credential its own transaction of one
// UPDATE with its pg_notify, from conns connections.
func floorPerRow(ctx context.Context, url string, conns int) (time.Duration, error) {
	return floor(ctx, url, conns, 1, `WITH `+floorWrite(`account_id = ($1::bigint[])[1] AND kind = 'access_token'`)+`
		SELECT pg_notify('wxhub_changes', json_build_object('account_id', account_id, 'kind', kind, 'generation', generation)::text)
		FROM w`)
}

// floorBatched is the batched write path's floor: rows credentials per statement (one
// transaction) and one pg_notify, from conns connections.
func floorBatched(ctx context.Context, url string, rows, conns int) (time.Duration, error) {
	return floor(ctx, url, conns, rows, `WITH `+floorWrite(`account_id = ANY($1) AND kind = 'access_token'`)+`
		SELECT pg_notify('wxhub_changes', json_build_object('credentials', json_agg(json_build_array(account_id, kind, generation)))::text)
		FROM w`)
}

func floor(ctx context.Context, url string, conns, rows int, statement string) (time.Duration, error) {
	pool, err := db.Open(ctx, url)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	var ids []int64
	r, err := pool.Query(ctx, "SELECT account_id FROM credentials ORDER BY account_id")
	if err != nil {
		return 0, err
	}
	if ids, err = pgx.CollectRows(r, pgx.RowTo[int64]); err != nil {
		return 0, err
	}
	batches := slices.Collect(slices.Chunk(ids, rows))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(batches)); i = next.Add(1) - 1 {
				if _, err := pool.Exec(ctx, statement, batches[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	return elapsed, <-errs
}

// propagation times refreshes from their commit to 3 API nodes serving the new value, and a
// bare NOTIFY from its commit to a LISTEN connection, count times each.
func (b *bench) propagation(ctx context.Context, count int) error {
	const n = 1000
	url, pool, store, err := b.apiDatabase(ctx, fmt.Sprintf("bench_%d", n), n)
	if err != nil {
		return err
	}
	defer pool.Close()
	var nodes []string
	nodeCtx, stopNodes := context.WithCancel(ctx)
	defer stopNodes()
	for range 3 {
		nodePool, err := db.Open(ctx, url)
		if err != nil {
			return err
		}
		defer nodePool.Close()
		srv := server.New(db.NewStore(nodePool, b.ring), server.Config{ListenerURL: url,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		go srv.Run(nodeCtx)
		ts := httptest.NewServer(srv.Handler())
		defer ts.Close()
		nodes = append(nodes, ts.URL)
	}
	appids := make([]string, count)
	for i := range appids {
		appids[i] = fmt.Sprintf("wxb%d_%07d", n, i%n)
	}
	// A first value for every account, through a claim and a write like a worker's.
	if _, err := b.writeDue(ctx, store, pool, ""); err != nil {
		return err
	}
	var served []time.Duration
	for i, appid := range appids {
		committed, err := b.writeDue(ctx, store, pool, appid)
		if err != nil {
			return err
		}
		gen := committed.generation
		var wg sync.WaitGroup
		seen := make([]time.Duration, len(nodes))
		errs := make(chan error, len(nodes))
		for j, node := range nodes {
			wg.Go(func() {
				d, err := waitServed(ctx, node, appid, gen, committed.at)
				seen[j] = d
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return fmt.Errorf("refresh %d of %s: %w", i+1, appid, err)
			}
		}
		served = append(served, seen...)
	}
	notify, err := notifyLatency(ctx, url, count)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "propagation, %d refreshes × 3 API nodes: commit → node serves the new value\n", count)
	fmt.Fprintf(b.out, "  %-40s p50 %7.2f ms   p99 %7.2f ms   max %7.2f ms\n", "wxhub (write, NOTIFY, cache, GET)",
		ms(percentile(served, 0.5)), ms(percentile(served, 0.99)), ms(slices.Max(served)))
	fmt.Fprintf(b.out, "  %-40s p50 %7.2f ms   p99 %7.2f ms   max %7.2f ms\n", "bare NOTIFY → LISTEN",
		ms(percentile(notify, 0.5)), ms(percentile(notify, 0.99)), ms(slices.Max(notify)))
	return nil
}

// apiDatabase builds a database of n accounts for API nodes to read, with the admin key the
// benchmark reads with, and opens a pool on it.
func (b *bench) apiDatabase(ctx context.Context, name string, n int) (string, *pgxpool.Pool, *db.Store, error) {
	if err := b.makeTemplate(ctx, name, n); err != nil {
		return "", nil, nil, err
	}
	url := b.pg.URL(name)
	pool, err := db.Open(ctx, url)
	if err != nil {
		return "", nil, nil, err
	}
	store := db.NewStore(pool, b.ring)
	if err := server.EnsureBootstrapKey(ctx, store, adminKey); err != nil {
		pool.Close()
		return "", nil, nil, err
	}
	return url, pool, store, nil
}

type commit struct {
	generation int64
	at         time.Time
}

// writeDue makes appid's access token due (every account's when appid is ""), claims and
// refreshes it through the store, and says when the write came back committed.
func (b *bench) writeDue(ctx context.Context, store *db.Store, pool *pgxpool.Pool, appid string) (commit, error) {
	_, err := pool.Exec(ctx, `UPDATE credential_schedule s SET refresh_at = now() FROM accounts a
		WHERE a.id = s.account_id AND ($1 = '' OR a.appid = $1)`, appid)
	if err != nil {
		return commit{}, err
	}
	res, err := store.ClaimDue(ctx, db.ClaimRequest{Worker: "bench", Max: 5000, Lease: time.Minute,
		Plan: func(db.Due) (db.Plan, error) { return db.Plan{API: "stable_token", DailyLimit: 1_000_000}, nil }})
	if err != nil {
		return commit{}, err
	}
	var writes []db.ClaimWrite
	for _, c := range res.Claims {
		writes = append(writes, db.ClaimWrite{Claim: c, Write: db.Write{Value: fmt.Sprintf("v%d-%s", c.Generation+1, c.AppID),
			ExpiresAt: time.Now().Add(2 * time.Hour), RefreshIn: time.Hour, PreviousValidFor: time.Hour}})
	}
	out, err := store.WriteCredentials(ctx, writes)
	at := time.Now()
	if err != nil {
		return commit{}, err
	}
	for _, o := range out {
		if o.Err != nil {
			return commit{}, o.Err
		}
	}
	if len(out) == 0 {
		return commit{}, fmt.Errorf("nothing was due for %q", appid)
	}
	return commit{generation: out[0].Generation, at: at}, nil
}

// waitServed asks node for appid's token until it serves generation gen, and returns the time
// from committed.
func waitServed(ctx context.Context, node, appid string, gen int64, committed time.Time) (time.Duration, error) {
	deadline := committed.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+"/v1/accounts/"+appid+"/access-token", nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		var body struct{ Generation int64 }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET token from %s: status %d: %v", node, resp.StatusCode, err)
		}
		if body.Generation >= gen {
			return max(0, time.Since(committed)), nil
		}
	}
	return 0, fmt.Errorf("%s did not serve generation %d of %s within 30 s", node, gen, appid)
}

// notifyLatency times count bare NOTIFYs from their commit to their arrival on a LISTEN
// connection.
func notifyLatency(ctx context.Context, url string, count int) ([]time.Duration, error) {
	listen, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer listen.Close(ctx)
	if _, err := listen.Exec(ctx, "LISTEN bench_latency"); err != nil {
		return nil, err
	}
	send, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer send.Close(ctx)
	var out []time.Duration
	for i := range count {
		payload := strconv.Itoa(i)
		if _, err := send.Exec(ctx, "SELECT pg_notify('bench_latency', $1)", payload); err != nil {
			return nil, err
		}
		at := time.Now()
		for {
			n, err := listen.WaitForNotification(ctx)
			if err != nil {
				return nil, err
			}
			if n.Payload == payload {
				break
			}
		}
		out = append(out, max(0, time.Since(at)))
	}
	return out, nil
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 0.5) }

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.SortFunc(s, cmp.Compare)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func seconds(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(parts, " ")
}
