package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var (
	accounts   = flag.Int("e2e.accounts", 200, "accounts wxhub keeps fresh during the campaign")
	duration   = flag.Duration("e2e.duration", 0, "keep injecting faults, round after round, for this long (0: one round, every fault once)")
	ttl        = flag.Duration("e2e.ttl", 60*time.Second, "token lifetime the simulator gives")
	overlap    = flag.Duration("e2e.overlap", 8*time.Second, "how long the simulator accepts a replaced token; keep it well under a fifth of -e2e.ttl, so that a replaced token dies before it expires, as WeChat's 300 s do in 7200 s")
	appServers = flag.Int("e2e.appservers", 8, "simulated application servers")
	pause      = flag.Duration("e2e.pause", 10*time.Millisecond, "pause of each application server between two requests")
	keep       = flag.Bool("e2e.keep", false, "keep the logs and PostgreSQL's data folder after a passing campaign")
)

// TestCampaign is the end-to-end fault campaign: PostgreSQL, the simulator, 2 workers and 3
// API nodes as separate processes, application servers using every token they get, and
// every fault of Faults injected while they work.
func TestCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("the campaign runs for minutes")
	}
	dir, err := os.MkdirTemp("", "wxhub-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL runs as its own user and must be able to reach its data folder inside.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || *keep {
			t.Logf("logs and data kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if *accounts < 20 {
		t.Fatal("-e2e.accounts must be at least 20")
	}
	opts := Options{Dir: dir, Accounts: *accounts, TokenTTL: *ttl, Overlap: *overlap,
		Lease: 3 * time.Second, CallTimeout: 2 * time.Second, StalenessBound: 3 * time.Second,
		QuotaEvery: 10, QuotaLimit: int(2 * (*duration + 10*time.Minute) / (*ttl - *overlap))}
	c, err := StartCluster(ctx, opts, 2, 3)
	if c != nil {
		defer func() {
			if err := c.Close(); err != nil {
				t.Errorf("stopping the cluster: %v", err)
			}
		}()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started PostgreSQL, the simulator, %d workers and %d API nodes with %d accounts", len(c.Workers), len(c.Nodes), len(c.Accounts))
	if _, err := c.WaitHealthy(ctx, time.Minute+time.Duration(*accounts)*5*time.Millisecond, nil); err != nil {
		t.Fatalf("first refresh of every account: %v", err)
	}

	rec := &Recorder{}
	appCtx, stopApps := context.WithCancel(ctx)
	defer stopApps()
	apps := c.RunAppServers(appCtx, *appServers, *pause, rec)
	cp := &Campaign{C: c, Rec: rec, RecoveryTimeout: 2 * *ttl, Settle: 3 * time.Second, Log: os.Stdout}
	if err := cp.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	from := time.Now()
	for round := 1; round == 1 || time.Since(from) < *duration; round++ {
		for _, f := range Faults() {
			if err := cp.Inject(ctx, f); err != nil {
				t.Errorf("round %d: %v", round, err)
				if ctx.Err() != nil {
					return
				}
			}
		}
	}
	to := time.Now()
	// The application servers keep working while every credential refreshes once more, and
	// what they see until they stop is judged too.
	stale, err := cp.CredentialsNotRefreshed(ctx, *ttl+15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	stopApps()
	apps.Wait()
	rec.WaitHeld()
	h, v, err := cp.Judge(ctx, from, to, stale)
	if err != nil {
		t.Fatal(err)
	}
	Report(os.Stdout, h, v)
	if v.Failed() {
		t.Errorf("the campaign broke %d promises (see above)", len(v.Violations))
	}
	if v.Failed() || *keep {
		// What WeChat saw, for the post-mortem: every token's issue time per account.
		if err := writeJSON(filepath.Join(dir, "sim-stats.json"), h.After); err != nil {
			t.Error(err)
		}
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
