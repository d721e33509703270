package db_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/db/dbtest"
)

// claimBundle is a database with one account whose access token holds a value, and a store.
type claimBundle struct {
	pool    *pgxpool.Pool
	store   *db.Store
	account db.Account
}

func claimSetup(t *testing.T) claimBundle {
	t.Helper()
	ctx := context.Background()
	pool, err := db.Open(ctx, dbtest.URL(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store := db.NewStore(pool, ring(t, keyA))
	return claimBundle{pool: pool, store: store, account: seed(t, store, 1)[0]}
}

// due makes the account's access token due now, as a write that scheduled it for now would.
func (b claimBundle) due(t *testing.T) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(),
		"UPDATE credentials SET replace_not_before = now() WHERE account_id = $1", b.account.ID)
	require.NoError(t, err)
	_, err = b.pool.Exec(context.Background(),
		"UPDATE credential_schedule SET refresh_at = now() WHERE account_id = $1", b.account.ID)
	require.NoError(t, err)
}

// claim runs one claim round as worker with the given lease, for a credential that rotates
// or not, with a 2 s orphan hold.
func (b claimBundle) claim(t *testing.T, worker string, lease time.Duration, rotates bool) []db.Claim {
	t.Helper()
	res, err := b.store.ClaimDue(context.Background(), db.ClaimRequest{Worker: worker, Max: 10, Lease: lease,
		OrphanHold: 2 * time.Second,
		Plan: func(db.Due) (db.Plan, error) {
			return db.Plan{API: "token", DailyLimit: 1000, Rotates: rotates}, nil
		}})
	require.NoError(t, err)
	return res.Claims
}

func (b claimBundle) credential(t *testing.T) db.Credential {
	t.Helper()
	c, err := b.store.GetCredential(context.Background(), b.account.ID, "access_token")
	require.NoError(t, err)
	return c
}

var write = db.Write{Value: "next", ExpiresAt: time.Now().Add(time.Hour), RefreshIn: time.Hour, PreviousValidFor: time.Minute}

func TestAWorkerWhoseLeaseWasTakenOverCannotWrite(t *testing.T) {
	t.Parallel()
	b := claimSetup(t)
	b.due(t)
	stale := b.claim(t, "paused", 200*time.Millisecond, false)
	require.Len(t, stale, 1)
	time.Sleep(300 * time.Millisecond)
	fresh := b.claim(t, "healthy", time.Minute, false)
	require.Len(t, fresh, 1, "the lease ran out, so another worker takes the credential over")
	require.Equal(t, stale[0].Generation, fresh[0].Generation, "nothing was written in between")

	// The paused worker wakes up and writes: its generation is still current, but its claim
	// is not.
	_, _, err := b.store.WriteCredential(context.Background(), stale[0], write)
	require.ErrorIs(t, err, db.ErrFenced)

	var claimedBy string
	var leased bool
	require.NoError(t, b.pool.QueryRow(context.Background(),
		"SELECT claimed_by, claimed_until > now() FROM credentials WHERE account_id = $1 AND kind = 'access_token'",
		b.account.ID).Scan(&claimedBy, &leased))
	require.Equal(t, "healthy", claimedBy, "the new holder's lease stands")
	require.True(t, leased)
	require.Equal(t, "token-"+b.account.AppID, b.credential(t).Value)

	gen, replayed, err := b.store.WriteCredential(context.Background(), fresh[0], write)
	require.NoError(t, err)
	require.False(t, replayed)
	require.Equal(t, fresh[0].Generation+1, gen)
}

// A worker may start its call up to the end of its lease, and the call may reach WeChat
// until it times out. A takeover that fetched before then could be superseded by that call,
// whose value the claim fence keeps out: the stored value would die while promised. The
// claim here comes long after replace_not_before (a backlog, a retry), so the hold counted
// from replace_not_before has already passed.
func TestALapsedClaimHoldsTheTakeoverUntilItsCallCannotLandAnyMore(t *testing.T) {
	t.Parallel()
	b := claimSetup(t)
	b.due(t)
	_, err := b.pool.Exec(context.Background(),
		"UPDATE credentials SET replace_not_before = now() - interval '10 seconds' WHERE account_id = $1", b.account.ID)
	require.NoError(t, err)
	const callBound = time.Second
	claim := func(worker string, lease time.Duration) []db.Claim {
		res, err := b.store.ClaimDue(context.Background(), db.ClaimRequest{Worker: worker, Max: 10, Lease: lease,
			OrphanHold: 2 * time.Second, CallBound: callBound,
			Plan: func(db.Due) (db.Plan, error) { return db.Plan{API: "token", DailyLimit: 1000, Rotates: true}, nil }})
		require.NoError(t, err)
		return res.Claims
	}
	require.Len(t, claim("slow", 200*time.Millisecond), 1)
	var leaseEnd time.Time
	require.NoError(t, b.pool.QueryRow(context.Background(),
		"SELECT claimed_until FROM credentials WHERE account_id = $1 AND kind = 'access_token'", b.account.ID).Scan(&leaseEnd))
	time.Sleep(time.Until(leaseEnd) + 50*time.Millisecond)

	require.Empty(t, claim("takeover", time.Minute), "the slow worker's call may still reach WeChat")
	held := b.credential(t)
	require.NotNil(t, held.OrphanHoldUntil)
	require.WithinDuration(t, leaseEnd.Add(callBound), *held.OrphanHoldUntil, time.Millisecond)
	require.True(t, held.RefreshAt.Equal(*held.OrphanHoldUntil))

	time.Sleep(time.Until(*held.OrphanHoldUntil) + 50*time.Millisecond)
	require.Len(t, claim("takeover", time.Minute), 1, "no call of the lapsed claim can land any more")
}

func TestAnUnfinishedClaimHoldsTheNextFetchOfARotatingValue(t *testing.T) {
	tests := []struct {
		name    string
		rotates bool
		held    bool
	}{
		// The vanished worker may have got a new value from WeChat: a fetch now would make it
		// the survivor and kill the stored value at once, while nodes still promise it.
		{"classic token or ticket", true, true},
		// stable_token in normal mode kills nothing, so there is nothing to wait for.
		{"stable token", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := claimSetup(t)
			b.due(t)
			before := b.credential(t)
			require.Len(t, b.claim(t, "vanished", 100*time.Millisecond, tt.rotates), 1)
			time.Sleep(200 * time.Millisecond)

			claims := b.claim(t, "survivor", time.Minute, tt.rotates)
			after := b.credential(t)
			require.True(t, after.ReplaceNotBefore.Equal(*before.ReplaceNotBefore), "a claim never moves what nodes promise")
			if !tt.held {
				require.Len(t, claims, 1)
				require.Nil(t, after.OrphanHoldUntil)
				return
			}
			require.Empty(t, claims, "held until the nodes have stopped promising the stored value")
			require.NotNil(t, after.OrphanHoldUntil)
			require.WithinDuration(t, before.ReplaceNotBefore.Add(2*time.Second), *after.OrphanHoldUntil, time.Millisecond)
			require.True(t, after.RefreshAt.Equal(*after.OrphanHoldUntil))

			// A request from an app server cannot cut the hold short.
			did, err := b.store.RequestRefresh(context.Background(), b.account.ID, "access_token", after.Generation, 0)
			require.NoError(t, err)
			require.True(t, did)
			requested := b.credential(t)
			require.True(t, requested.RefreshAt.Equal(*after.OrphanHoldUntil))
			require.True(t, requested.ReplaceNotBefore.Equal(*before.ReplaceNotBefore))

			time.Sleep(time.Until(*after.OrphanHoldUntil) + 50*time.Millisecond)
			claims = b.claim(t, "survivor", time.Minute, tt.rotates)
			require.Len(t, claims, 1, "claimed once the hold is over")
			_, _, err = b.store.WriteCredential(context.Background(), claims[0], write)
			require.NoError(t, err)
			require.Nil(t, b.credential(t).OrphanHoldUntil, "the stored value is WeChat's newest again")
		})
	}
}

func TestAFailureWithoutAnAnswerHoldsTheNextFetch(t *testing.T) {
	tests := []struct {
		name string
		hold time.Duration
	}{
		{"WeChat answered an errcode: nothing was issued", 0},
		{"the connection was lost: a value may have been issued", 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := claimSetup(t)
			b.due(t)
			before := b.credential(t)
			claims := b.claim(t, "w", time.Minute, true)
			require.Len(t, claims, 1)
			require.NoError(t, b.store.RecordFailure(context.Background(), claims[0],
				db.Failure{Code: -1, Message: "system error", RetryIn: 100 * time.Millisecond, OrphanHold: tt.hold}))
			after := b.credential(t)
			if tt.hold == 0 {
				require.Nil(t, after.OrphanHoldUntil)
				require.True(t, after.ReplaceNotBefore.Equal(*after.RefreshAt), "the retry is the earliest fetch, and nodes may promise until its overlap")
				require.True(t, after.RefreshAt.Before(time.Now().Add(time.Second)))
				return
			}
			require.True(t, after.ReplaceNotBefore.Equal(*before.ReplaceNotBefore), "what nodes promise does not grow")
			require.WithinDuration(t, before.ReplaceNotBefore.Add(tt.hold), *after.OrphanHoldUntil, time.Millisecond)
			require.True(t, after.RefreshAt.Equal(*after.OrphanHoldUntil))
			require.Empty(t, b.claim(t, "w", time.Minute, true))
		})
	}
}

func TestARequestedRefreshTellsTheNodes(t *testing.T) {
	t.Parallel()
	b := claimSetup(t)
	ctx := context.Background()
	conn, err := b.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN wxhub_changes")
	require.NoError(t, err)

	before := b.credential(t)
	require.True(t, before.ReplaceNotBefore.After(time.Now().Add(30*time.Minute)), "written with a refresh an hour away")
	did, err := b.store.RequestRefresh(ctx, b.account.ID, "access_token", before.Generation, 0)
	require.NoError(t, err)
	require.True(t, did)
	after := b.credential(t)
	require.WithinDuration(t, time.Now(), *after.ReplaceNotBefore, time.Second, "a replacement may now be fetched at once")

	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := conn.Conn().WaitForNotification(waitCtx)
	require.NoError(t, err)
	var payload struct {
		AccountID  int64 `json:"account_id"`
		Kind       string
		Generation int64
	}
	require.NoError(t, json.Unmarshal([]byte(n.Payload), &payload))
	require.Equal(t, b.account.ID, payload.AccountID)
	require.Equal(t, "access_token", payload.Kind)
	require.Equal(t, before.Generation, payload.Generation)

	// Compare and refresh: a generation that is no longer current changes nothing.
	did, err = b.store.RequestRefresh(ctx, b.account.ID, "access_token", before.Generation-1, 0)
	require.NoError(t, err)
	require.False(t, did)
}

func TestARotatingValueIsNotReplacedTwiceWithinTheOverlap(t *testing.T) {
	tests := []struct {
		name string
		dead bool
	}{
		// WeChat keeps one superseded value: a second replacement soon after the first would
		// kill the value before the stored one while nodes and clients may still rely on it.
		{"an app server needs a longer-lived value", false},
		// Once WeChat rejected the stored value, every older one is dead too.
		{"WeChat rejected the stored value", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := claimSetup(t)
			ctx := context.Background()
			b.due(t)
			claims := b.claim(t, "w", time.Minute, true)
			require.Len(t, claims, 1)
			w := db.Write{Value: "second", ExpiresAt: time.Now().Add(time.Hour), RefreshIn: time.Hour, PreviousValidFor: 2 * time.Second}
			gen, _, err := b.store.WriteCredential(ctx, claims[0], w)
			require.NoError(t, err)

			request := b.store.RequestRefresh
			if tt.dead {
				request = b.store.ReportDead
			}
			did, err := request(ctx, b.account.ID, "access_token", gen, 0)
			require.NoError(t, err)
			require.True(t, did)
			claims = b.claim(t, "w", time.Minute, true)
			if tt.dead {
				require.Len(t, claims, 1, "claimed at once")
				return
			}
			require.Empty(t, claims, "held while the replaced value may still be promised")
			c := b.credential(t)
			require.WithinDuration(t, time.Now().Add(2*time.Second), *c.RefreshAt, 500*time.Millisecond)
			time.Sleep(time.Until(*c.RefreshAt) + 50*time.Millisecond)
			require.Len(t, b.claim(t, "w", time.Minute, true), 1, "claimed once the replaced value has died on its own")
		})
	}
}

func TestARequestKeepsADueCredentialsPlaceInTheQueue(t *testing.T) {
	t.Parallel()
	b := claimSetup(t)
	ctx := context.Background()
	// Due ten seconds ago, behind a backlog after an outage: a node that asks for it must not
	// send it to the back of the queue.
	_, err := b.pool.Exec(ctx, "UPDATE credential_schedule SET refresh_at = now() - interval '10 seconds' WHERE account_id = $1", b.account.ID)
	require.NoError(t, err)
	before := b.credential(t)
	did, err := b.store.RequestRefresh(ctx, b.account.ID, "access_token", before.Generation, 0)
	require.NoError(t, err)
	require.True(t, did)
	require.True(t, b.credential(t).RefreshAt.Equal(*before.RefreshAt))
}
