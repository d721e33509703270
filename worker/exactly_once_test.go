package worker_test

import (
	"flag"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/wechatsim"
)

var (
	exactlyOnceAccounts = flag.Int("exactly-once-accounts", 1000, "accounts in TestExactlyOnce")
	exactlyOnceCycles   = flag.Int("exactly-once-lifetimes", 3, "token lifetimes TestExactlyOnce runs for")
)

// TestExactlyOnce runs four workers, each with its own pool, against one database for at
// least three token lifetimes, and checks what WeChat saw: one new token per account per
// refresh cycle, never two, at most two token calls per cycle, and no rejected use of the
// token stored in the database.
func TestExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several token lifetimes")
	}
	t.Parallel()
	const ttl, overlap = 30 * time.Second, 6 * time.Second
	tests := []struct {
		mode, api string
	}{
		{"stable", wechatsim.APIStableToken},
		{"classic", wechatsim.APIToken},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			b := setup(t, ttl, overlap)
			accounts := b.addAccounts(t, "wx"+tt.mode[:2], *exactlyOnceAccounts, tt.mode, nil, nil)
			start := time.Now()
			for i := range 4 {
				b.startWorker(t, b.config(fmt.Sprintf("w%d", i)), b.simURL)
			}
			chk := b.startChecker(t, accounts, time.Second)
			time.Sleep(time.Duration(*exactlyOnceCycles)*ttl + 5*time.Second)
			elapsed := time.Since(start)
			chk.requireNoRejections(t)

			stats := b.sim.Stats("")
			requireNoQuotaAnswers(t, stats)
			minCycles := int64(elapsed / ttl)
			var issued, calls int64
			var minGap time.Duration = ttl
			for _, a := range accounts {
				s := stats.Accounts[a.AppID]
				issued += s.TokensIssued
				calls += s.Calls[tt.api]
				require.GreaterOrEqual(t, s.TokensIssued, minCycles, "%s was not refreshed every cycle", a.AppID)
				require.LessOrEqual(t, s.Calls[tt.api], 2*s.TokensIssued, "%s: more than two calls per cycle", a.AppID)
				times := append([]time.Time(nil), s.TokenIssueTimes...)
				sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
				for i := 1; i < len(times); i++ {
					gap := times[i].Sub(times[i-1])
					minGap = min(minGap, gap)
					require.Greater(t, gap, ttl/2, "%s got two new tokens in one cycle", a.AppID)
				}
			}
			t.Logf("%s: %d accounts, %s: %d tokens issued, %d calls, shortest gap between two tokens of one account %s, %d uses checked",
				tt.mode, len(accounts), elapsed.Round(time.Second), issued, calls, minGap.Round(time.Millisecond), chk.uses.Load())
		})
	}
}
