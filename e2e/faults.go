package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"wxhub/wechatsim"
)

// Fault is one failure the campaign injects. Inject starts it and returns heal, which ends
// it; recovery is timed from the end of heal.
type Fault struct {
	Name string
	// ExtraCalls says the fault may cost a WeChat call that was already made: a process
	// that dies or freezes after calling WeChat cannot hand over what it fetched, and a new
	// secret is tried at once. New tokens issued early while such a fault is in progress are
	// counted as its cost instead of as a violation.
	ExtraCalls bool
	// PostgresDown marks the fault in which PostgreSQL itself is down, WeChatDown those in
	// which WeChat fails calls: a token that expires meanwhile cannot be replaced, and a 503
	// is the right answer for it.
	PostgresDown, WeChatDown bool
	// Inject may note what it found (how many calls were in flight, say) in r.Detail.
	Inject func(ctx context.Context, c *Cluster, r *FaultResult) (heal func(ctx context.Context) error, err error)
}

// inFlight makes WeChat slow, so that refreshes are in the middle of their call when
// something happens to a worker, and waits until worker i has calls in flight. It notes
// how many in r and returns the function that makes WeChat fast again.
func inFlight(ctx context.Context, c *Cluster, i int, r *FaultResult) (func(context.Context) error, error) {
	if err := c.SimAPI.SetFaults(ctx, wechatsim.Faults{Latency: time.Second}); err != nil {
		return nil, err
	}
	fast := func(ctx context.Context) error { return c.SimAPI.ClearFaults(ctx) }
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := c.WorkerMetric(ctx, i, "wxhub_worker_upstream_in_flight ", "")
		if err != nil {
			return nil, err
		}
		if n > 0 {
			r.Detail = fmt.Sprintf("%.0f WeChat calls in flight", n)
			return fast, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s made no WeChat call within 20 s", c.Workers[i].Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func simBurst(f wechatsim.Faults, hold time.Duration) func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
	return func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
		if err := c.SimAPI.SetFaults(ctx, f); err != nil {
			return nil, err
		}
		time.Sleep(hold)
		return func(ctx context.Context) error { return c.SimAPI.ClearFaults(ctx) }, nil
	}
}

func healed(context.Context) error { return nil }

// Faults is the campaign's schedule, in order; a long campaign repeats it.
func Faults() []Fault {
	return []Fault{
		{Name: "kill -9 of a worker mid-refresh", ExtraCalls: true, Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			fast, err := inFlight(ctx, c, 0, r)
			if err != nil {
				return nil, err
			}
			if err := c.Workers[0].Kill(); err != nil {
				return nil, err
			}
			if r.Stranded, err = c.Claims(ctx, c.Workers[0].Name); err != nil {
				return nil, err
			}
			r.Detail += fmt.Sprintf(", %d claims stranded", len(r.Stranded))
			if err := fast(ctx); err != nil {
				return nil, err
			}
			time.Sleep(2 * time.Second)
			// A supervisor starts it again, as systemd or Kubernetes would.
			return func(ctx context.Context) error { return c.Workers[0].Start() }, nil
		}},
		{Name: "SIGSTOP of a worker between call and write, past its lease", ExtraCalls: true, Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			// The worker's writes are held in its relay until it has fetched values it cannot
			// store yet, then it is frozen. The other worker takes the claims over once the
			// lease ends and stores newer values; only then do the frozen worker's writes
			// reach PostgreSQL, where the generation check must refuse them.
			fencedBefore, err := c.WorkerMetric(ctx, 1, "wxhub_worker_refreshes_total{", `outcome="fenced"`)
			if err != nil {
				return nil, err
			}
			relay := c.WorkerRelays[1]
			relay.HoldStatement(true)
			deadline := time.Now().Add(20 * time.Second)
			for relay.Held() < 4 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			held := relay.Held()
			if held == 0 {
				relay.HoldStatement(false)
				return nil, fmt.Errorf("%s stored nothing within 20 s", c.Workers[1].Name)
			}
			if err := c.Workers[1].Signal(syscall.SIGSTOP); err != nil {
				relay.HoldStatement(false)
				return nil, err
			}
			if r.Stranded, err = c.Claims(ctx, c.Workers[1].Name); err != nil {
				relay.HoldStatement(false)
				return nil, err
			}
			time.Sleep(c.Opts.Lease + 2*time.Second)
			relay.HoldStatement(false)
			time.Sleep(500 * time.Millisecond)
			return func(ctx context.Context) error {
				if err := c.Workers[1].Signal(syscall.SIGCONT); err != nil {
					return err
				}
				time.Sleep(time.Second)
				fenced, err := c.WorkerMetric(ctx, 1, "wxhub_worker_refreshes_total{", `outcome="fenced"`)
				r.Detail = fmt.Sprintf("%d claims stranded, %d writes arrived late, %.0f fenced", len(r.Stranded), held, fenced-fencedBefore)
				return err
			}, nil
		}},
		{Name: "listener backends terminated (pg_terminate_backend)", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			var n int
			err := c.DB.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name LIKE 'wxhub-listener-%'`).Scan(&n)
			if err == nil && n != len(c.Nodes) {
				err = fmt.Errorf("terminated %d listener backends, want %d", n, len(c.Nodes))
			}
			r.Detail = fmt.Sprintf("%d backends terminated", n)
			return healed, err
		}},
		{Name: "connections reset at COMMIT (proxy)", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			// Claims are transactions ended by COMMIT; a fetched value is stored by one
			// statement outside a transaction, so its commit is the statement's end.
			recognisedBefore := c.countLogLines(c.Workers, storedEarlierLog)
			relays := append(append([]*Relay{}, c.WorkerRelays...), c.NodeRelays...)
			for _, relay := range relays {
				relay.ResetAtCommit(4)
			}
			for _, relay := range c.WorkerRelays {
				relay.CutAfterStatement(2)
			}
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) && cutTotal(c.WorkerRelays) < int64(6*len(c.WorkerRelays)) {
				time.Sleep(100 * time.Millisecond)
			}
			return func(context.Context) error {
				var before, after, writes int64
				for _, relay := range relays {
					relay.ResetAtCommit(0)
					relay.CutAfterStatement(0)
					b, a := relay.CommitsCut()
					before, after, writes = before+b, after+a, writes+relay.StatementsCut()
				}
				// A cut write is retried after a backoff; give the retries time to be logged.
				time.Sleep(3 * time.Second)
				recognised := c.countLogLines(c.Workers, storedEarlierLog) - recognisedBefore
				r.Detail = fmt.Sprintf("%d cut before PostgreSQL got COMMIT, %d after it committed, %d after a credential write (%d recognised as stored on retry)",
					before, after, writes, recognised)
				if before == 0 || after == 0 || writes == 0 {
					return fmt.Errorf("the fault did not bite: %s", r.Detail)
				}
				return nil
			}, nil
		}},
		{Name: "half-open listener connection on node 2 (proxy blackhole, 10 s)", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			until := time.Now().Add(10 * time.Second)
			c.ListenRelays[1].Blackhole(true)
			time.Sleep(time.Second)
			// Scheduled refreshes come late enough that the old value would expire from the
			// cache on its own; refreshes app servers ask for (min_ttl) do not, so node 2
			// must find them although no notification reaches it.
			n, err := c.ForceRefreshes(ctx, 0, 10, r)
			if err != nil {
				c.ListenRelays[1].Blackhole(false)
				return nil, err
			}
			r.Detail = fmt.Sprintf("%d classic tokens refreshed early through node 1 meanwhile", n)
			time.Sleep(time.Until(until))
			return func(context.Context) error { c.ListenRelays[1].Blackhole(false); return nil }, nil
		}},
		{Name: "API node 3 restarted", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			return func(ctx context.Context) error { return c.RestartNode(ctx, 2) }, nil
		}},
		// A value fetched just before the crash is stored once PostgreSQL is back, if that is
		// within the overlap; later it is discarded and fetched again (ExtraCalls).
		{Name: "PostgreSQL stopped -m immediate, restarted after 3 s", PostgresDown: true, ExtraCalls: true, Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			if err := c.CrashPostgres(); err != nil {
				return nil, err
			}
			time.Sleep(3 * time.Second)
			return c.RestartPostgres, nil
		}},
		{Name: "WeChat answers -1 to half the calls (8 s)", WeChatDown: true, Inject: simBurst(wechatsim.Faults{BusyRate: 0.5}, 8*time.Second)},
		{Name: "WeChat answers 1.5 s late (8 s)", WeChatDown: true, Inject: simBurst(wechatsim.Faults{Latency: 1500 * time.Millisecond}, 8*time.Second)},
		{Name: "WeChat drops half the connections (8 s)", WeChatDown: true, Inject: simBurst(wechatsim.Faults{DropRate: 0.5}, 8*time.Second)},
		{Name: "secret of two accounts wrong for 8 s, then fixed", ExtraCalls: true, Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			victims := c.secretVictims()
			for _, a := range victims {
				if _, err := c.API(ctx, 0, http.MethodPatch, "/v1/accounts/"+a.AppID, map[string]any{"secret": "wrong-" + a.Secret}, nil); err != nil {
					return nil, err
				}
			}
			time.Sleep(8 * time.Second)
			return func(ctx context.Context) error {
				for _, a := range victims {
					if _, err := c.API(ctx, 1, http.MethodPatch, "/v1/accounts/"+a.AppID, map[string]any{"secret": a.Secret}, nil); err != nil {
						return err
					}
				}
				return nil
			}, nil
		}},
	}
}

// storedEarlierLog is what a worker logs when a retried write finds its own value stored.
const storedEarlierLog = "an earlier attempt had stored the value"

// countLogLines counts the lines of the processes' logs that contain text.
func (c *Cluster) countLogLines(procs []*Proc, text string) int {
	n := 0
	for _, p := range procs {
		b, err := os.ReadFile(p.logPath)
		if err == nil {
			n += strings.Count(string(b), text)
		}
	}
	return n
}

// ForceRefreshes asks node for the tokens of n classic accounts with a min_ttl no token
// has, which makes wxhub refresh them now instead of when they are due. It returns how
// many were refreshed and records them in r.Forced.
func (c *Cluster) ForceRefreshes(ctx context.Context, node, n int, r *FaultResult) (int, error) {
	victims := map[string]bool{}
	for _, a := range c.secretVictims() {
		victims[a.AppID] = true
	}
	var picked []string
	for _, i := range rand.Perm(len(c.Accounts)) {
		a := c.Accounts[i]
		if len(picked) < n && a.TokenMode == "classic" && !c.QuotaLimited(i) && !victims[a.AppID] {
			picked = append(picked, a.AppID)
		}
	}
	r.Forced = map[string]bool{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	refreshed := 0
	for _, appid := range picked {
		r.Forced[appid] = true
		g.Go(func() error {
			var before, after tokenAnswer
			if _, err := c.API(gctx, node, http.MethodGet, "/v1/accounts/"+appid+"/access-token", nil, &before); err != nil {
				return err
			}
			minTTL := strconv.Itoa(int(c.Opts.TokenTTL.Seconds()))
			if _, err := c.API(gctx, node, http.MethodGet, "/v1/accounts/"+appid+"/access-token?min_ttl="+minTTL, nil, &after); err != nil {
				return err
			}
			if after.Generation > before.Generation {
				mu.Lock()
				refreshed++
				mu.Unlock()
			}
			return nil
		})
	}
	return refreshed, g.Wait()
}

// secretVictims are a stable-token and a classic-token account without a small quota.
func (c *Cluster) secretVictims() []Account {
	var stable, classic *Account
	for i := range c.Accounts {
		a := &c.Accounts[i]
		if c.QuotaLimited(i) {
			continue
		}
		if a.TokenMode == "stable" && stable == nil {
			stable = a
		}
		if a.TokenMode == "classic" && classic == nil {
			classic = a
		}
	}
	return []Account{*stable, *classic}
}

func cutTotal(relays []*Relay) int64 {
	var n int64
	for _, r := range relays {
		before, after := r.CommitsCut()
		n += before + after + r.StatementsCut()
	}
	return n
}
