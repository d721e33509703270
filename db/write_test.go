package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/db/dbtest"
)

func TestARetriedWriteIsRecognisedAndAStaleOneIsFenced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := db.Open(ctx, dbtest.URL(t))
	require.NoError(t, err)
	defer pool.Close()
	store := db.NewStore(pool, ring(t, keyA))
	account := seed(t, store, 1)[0]
	_, err = pool.Exec(ctx, "UPDATE credential_schedule SET refresh_at = now() WHERE account_id = $1", account.ID)
	require.NoError(t, err)
	res, err := store.ClaimDue(ctx, db.ClaimRequest{Worker: "t", Max: 1, Lease: time.Minute,
		Plan: func(db.Due) (db.Plan, error) { return db.Plan{API: "token", DailyLimit: 1000}, nil }})
	require.NoError(t, err)
	require.Len(t, res.Claims, 1)
	claim := res.Claims[0]
	w := db.Write{Value: "second", ExpiresAt: time.Now().Add(time.Hour), RefreshIn: time.Hour, PreviousValidFor: time.Minute}

	for _, tc := range []struct {
		name     string
		value    string
		replayed bool
		fenced   bool
	}{
		{"first write", "second", false, false},
		{"the same write again, as after a lost answer", "second", true, false},
		{"another value on the same claim", "other", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.Value = tc.value
			gen, replayed, err := store.WriteCredential(ctx, claim, w)
			if tc.fenced {
				require.ErrorIs(t, err, db.ErrFenced)
				return
			}
			require.NoError(t, err)
			require.Equal(t, claim.Generation+1, gen)
			require.Equal(t, tc.replayed, replayed)
		})
	}
	cur, err := store.GetCredential(ctx, account.ID, "access_token")
	require.NoError(t, err)
	require.Equal(t, "second", cur.Value)
	require.Equal(t, claim.Generation+1, cur.Generation)
}

// TestABatchFencesEachRowOnItsOwn writes 250 credentials in one statement: most stored, one
// whose claim another worker took over, one whose generation changed, one retried after its
// answer was lost. Each gets its own outcome, and the API nodes hear of exactly the stored
// ones, in notifications small enough for NOTIFY.
func TestABatchFencesEachRowOnItsOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := db.Open(ctx, dbtest.URL(t))
	require.NoError(t, err)
	defer pool.Close()
	store := db.NewStore(pool, ring(t, keyA))
	const n = 250
	accounts := seed(t, store, n)
	_, err = pool.Exec(ctx, "UPDATE credential_schedule SET refresh_at = now()")
	require.NoError(t, err)
	plan := func(db.Due) (db.Plan, error) { return db.Plan{API: "stable_token", DailyLimit: 1000}, nil }
	res, err := store.ClaimDue(ctx, db.ClaimRequest{Worker: "batch", Max: n, Lease: time.Minute, Plan: plan})
	require.NoError(t, err)
	require.Len(t, res.Claims, n)
	byAppID := map[string]db.Claim{}
	for _, c := range res.Claims {
		byAppID[c.AppID] = c
	}
	takenOver, changed, retried := accounts[10], accounts[20], accounts[30]

	// Another worker takes over one claim (as after this worker's lease ran out).
	_, err = pool.Exec(ctx, "UPDATE credentials SET claim_seq = claim_seq + 1 WHERE account_id = $1", takenOver.ID)
	require.NoError(t, err)
	// Another value was stored for one credential since it was claimed.
	_, err = pool.Exec(ctx, "UPDATE credentials SET generation = generation + 1 WHERE account_id = $1", changed.ID)
	require.NoError(t, err)
	// One write was committed before, and its answer lost.
	retriedWrite := db.Write{Value: "v-" + retried.AppID, ExpiresAt: time.Now().Add(time.Hour), RefreshIn: time.Hour, PreviousValidFor: time.Minute}
	_, _, err = store.WriteCredential(ctx, byAppID[retried.AppID], retriedWrite)
	require.NoError(t, err)

	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN wxhub_changes")
	require.NoError(t, err)

	writes := make([]db.ClaimWrite, n)
	for i, a := range accounts {
		writes[i] = db.ClaimWrite{Claim: byAppID[a.AppID], Write: db.Write{Value: "v-" + a.AppID,
			ExpiresAt: time.Now().Add(time.Hour), RefreshIn: time.Hour, PreviousValidFor: time.Minute}}
	}
	out, err := store.WriteCredentials(ctx, writes)
	require.NoError(t, err)
	require.Len(t, out, n)
	for i, a := range accounts {
		claim := byAppID[a.AppID]
		switch a.ID {
		case takenOver.ID, changed.ID:
			require.ErrorIs(t, out[i].Err, db.ErrFenced, a.AppID)
		case retried.ID:
			require.NoError(t, out[i].Err)
			require.True(t, out[i].Replayed, "the retried write is recognised")
			require.Equal(t, claim.Generation+1, out[i].Generation)
		default:
			require.NoError(t, out[i].Err, a.AppID)
			require.False(t, out[i].Replayed)
			require.Equal(t, claim.Generation+1, out[i].Generation)
		}
		cur, err := store.GetCredential(ctx, a.ID, "access_token")
		require.NoError(t, err)
		if a.ID == takenOver.ID || a.ID == changed.ID {
			require.Equal(t, "token-"+a.AppID, cur.Value, "a fenced row keeps its value")
			var leased bool
			require.NoError(t, pool.QueryRow(ctx, "SELECT claimed_until > now() FROM credentials WHERE account_id = $1",
				a.ID).Scan(&leased))
			require.True(t, leased, "and the claim that took it over stands")
			continue
		}
		require.Equal(t, "v-"+a.AppID, cur.Value)
	}

	// 247 stored rows: notifications of at most 100 credentials each, listing every stored
	// credential once and nothing else.
	notified := map[int64]int64{}
	for range 3 {
		waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := conn.Conn().WaitForNotification(waitCtx)
		cancel()
		require.NoError(t, err)
		require.Less(t, len(msg.Payload), 8000)
		var payload struct{ Credentials [][3]any }
		require.NoError(t, json.Unmarshal([]byte(msg.Payload), &payload))
		require.LessOrEqual(t, len(payload.Credentials), 100)
		for _, c := range payload.Credentials {
			require.Equal(t, "access_token", c[1])
			notified[int64(c[0].(float64))] = int64(c[2].(float64))
		}
	}
	require.Len(t, notified, n-3)
	for _, a := range accounts {
		if a.ID == takenOver.ID || a.ID == changed.ID || a.ID == retried.ID {
			require.NotContains(t, notified, a.ID)
			continue
		}
		require.Equal(t, byAppID[a.AppID].Generation+1, notified[a.ID])
	}
	waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = conn.Conn().WaitForNotification(waitCtx)
	require.Error(t, err, "no fourth notification")
}

// TestWritesAndAccountChangesDoNotDeadlock runs batched credential writes that clear the
// failing status of their accounts beside operators changing the same accounts' secrets.
// The write locks a credential, then its account; the change locks the account, then its
// credentials unless it takes the credentials' locks first. PostgreSQL would abort one of
// the two with deadlock_detected.
func TestWritesAndAccountChangesDoNotDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := db.Open(ctx, dbtest.URL(t))
	require.NoError(t, err)
	defer pool.Close()
	store := db.NewStore(pool, ring(t, keyA))
	accounts := seed(t, store, 20)
	plan := func(db.Due) (db.Plan, error) { return db.Plan{API: "stable_token", DailyLimit: 1_000_000}, nil }
	deadline := time.Now().Add(3 * time.Second)
	errs := make(chan error, 2)
	go func() {
		for time.Now().Before(deadline) {
			_, err := pool.Exec(ctx, "UPDATE accounts SET status = 'failing'")
			if err == nil {
				_, err = pool.Exec(ctx, "UPDATE credential_schedule SET refresh_at = now() - interval '1 second'")
			}
			var res db.ClaimResult
			if err == nil {
				res, err = store.ClaimDue(ctx, db.ClaimRequest{Worker: "w", Max: 100, Lease: time.Minute, Plan: plan})
			}
			if err != nil {
				errs <- err
				return
			}
			var writes []db.ClaimWrite
			for _, c := range res.Claims {
				writes = append(writes, db.ClaimWrite{Claim: c, Write: db.Write{Value: fmt.Sprintf("v%d", c.Generation+1),
					ExpiresAt: time.Now().Add(time.Hour), RefreshIn: time.Hour, PreviousValidFor: time.Minute}})
			}
			if _, err := store.WriteCredentials(ctx, writes); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	go func() {
		for i := 0; time.Now().Before(deadline); i++ {
			secret := fmt.Sprintf("new-secret-%d", i)
			if _, err := store.UpdateAccount(ctx, accounts[i%len(accounts)], db.AccountChange{Secret: &secret}); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
}
