package db_test

import (
	"context"
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
	_, err = pool.Exec(ctx, "UPDATE credentials SET refresh_at = now() WHERE account_id = $1", account.ID)
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
