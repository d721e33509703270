package e2e

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"time"

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
	// PostgresDown marks the fault in which PostgreSQL itself is down.
	PostgresDown bool
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
		n, err := c.UpstreamInFlight(ctx, i)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			r.Detail = fmt.Sprintf("%d WeChat calls in flight", n)
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
			if err := fast(ctx); err != nil {
				return nil, err
			}
			time.Sleep(2 * time.Second)
			// A supervisor starts it again, as systemd or Kubernetes would.
			return func(ctx context.Context) error { return c.Workers[0].Start() }, nil
		}},
		{Name: "SIGSTOP of a worker past its lease, then SIGCONT", ExtraCalls: true, Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			fast, err := inFlight(ctx, c, 1, r)
			if err != nil {
				return nil, err
			}
			if err := c.Workers[1].Signal(syscall.SIGSTOP); err != nil {
				return nil, err
			}
			if err := fast(ctx); err != nil {
				return nil, err
			}
			time.Sleep(c.Opts.Lease + 2*time.Second)
			return func(context.Context) error { return c.Workers[1].Signal(syscall.SIGCONT) }, nil
		}},
		{Name: "PostgreSQL stopped -m immediate, restarted after 4 s", PostgresDown: true, Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			if err := c.CrashPostgres(); err != nil {
				return nil, err
			}
			time.Sleep(4 * time.Second)
			return c.RestartPostgres, nil
		}},
		{Name: "connections reset at COMMIT (proxy)", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			// Claims are transactions ended by COMMIT; a fetched value is stored by one
			// statement outside a transaction, so its commit is the statement's end.
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
				r.Detail = fmt.Sprintf("%d cut before PostgreSQL got COMMIT, %d after it committed, %d after a credential write", before, after, writes)
				return nil
			}, nil
		}},
		{Name: "half-open listener connection on node 2 (proxy blackhole, 10 s)", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			c.ListenRelays[1].Blackhole(true)
			time.Sleep(10 * time.Second)
			return func(context.Context) error { c.ListenRelays[1].Blackhole(false); return nil }, nil
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
		{Name: "API node 3 restarted", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			return func(ctx context.Context) error { return c.RestartNode(ctx, 2) }, nil
		}},
		{Name: "WeChat answers -1 to half the calls (8 s)", Inject: simBurst(wechatsim.Faults{BusyRate: 0.5}, 8*time.Second)},
		{Name: "WeChat answers 1.5 s late (8 s)", Inject: simBurst(wechatsim.Faults{Latency: 1500 * time.Millisecond}, 8*time.Second)},
		{Name: "WeChat drops half the connections (8 s)", Inject: simBurst(wechatsim.Faults{DropRate: 0.5}, 8*time.Second)},
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
