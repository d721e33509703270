package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/db"
)

// hourlyCalls reads the hourly ledger's count of scope and api in its current window.
func (b claimBundle) hourlyCalls(t *testing.T, scope, api string) int {
	t.Helper()
	var n int
	err := b.pool.QueryRow(context.Background(), `SELECT coalesce(sum(calls), 0) FROM upstream_calls_hourly
		WHERE scope = $1 AND api = $2 AND window_start > now() - interval '1 hour'`, scope, api).Scan(&n)
	require.NoError(t, err)
	return n
}

func TestHourlyLedgerCountsClaimsUpToTheLimitAndGivesBackUncalledOnes(t *testing.T) {
	t.Parallel()
	b := claimSetup(t)
	ctx := context.Background()
	const scope, api = "corp:ww_test", "wecom_get_jsapi_ticket"
	claim := func(hourlyLimit, dailyLimit int) db.ClaimResult {
		t.Helper()
		b.due(t)
		res, err := b.store.ClaimDue(ctx, db.ClaimRequest{Worker: "w", Max: 10, Lease: time.Minute,
			Plan: func(db.Due) (db.Plan, error) {
				return db.Plan{API: api, DailyLimit: dailyLimit, HourlyScope: scope, HourlyLimit: hourlyLimit}, nil
			}})
		require.NoError(t, err)
		return res
	}
	tests := []struct {
		name        string
		hourly      int
		daily       int
		notCalled   bool
		wantClaimed bool
		wantCalls   int // the hourly ledger's count afterwards
		wantOver    bool
	}{
		{name: "first call", hourly: 2, daily: 100, wantClaimed: true, wantCalls: 1},
		{name: "a claim that called nothing gives its count back", hourly: 2, daily: 100, notCalled: true, wantClaimed: true, wantCalls: 1},
		{name: "second call", hourly: 2, daily: 100, wantClaimed: true, wantCalls: 2},
		{name: "over the hourly limit: parked", hourly: 2, daily: 100, wantCalls: 2, wantOver: true},
		{name: "a higher limit lets it through", hourly: 3, daily: 100, wantClaimed: true, wantCalls: 3},
		{name: "refused by the daily limit: the hourly count is given back", hourly: 10, daily: 1, wantCalls: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := claim(tt.hourly, tt.daily)
			require.Equal(t, tt.wantClaimed, len(res.Claims) == 1, "%+v", res)
			if tt.wantOver {
				require.Equal(t, []string{b.account.AppID}, res.OverHourly)
				c := b.credential(t)
				require.Equal(t, db.CodeHourlyGuard, c.LastErrCode)
				require.True(t, c.RefreshAt.After(time.Now()), "parked until the window turns")
				require.False(t, c.RefreshAt.After(time.Now().Add(time.Hour+time.Minute)), "no later than the next hour and its jitter")
			}
			if len(res.Claims) == 1 {
				c := res.Claims[0]
				require.Equal(t, scope, c.HourlyScope)
				require.Equal(t, c.HourlyWindow, c.HourlyWindow.Truncate(time.Hour), "the window is the clock hour")
				f := db.Failure{Code: -1, Message: "test", RetryIn: 0, NotCalled: tt.notCalled}
				require.NoError(t, b.store.RecordFailure(ctx, c, f))
			}
			require.Equal(t, tt.wantCalls, b.hourlyCalls(t, scope, api))
		})
	}
}
