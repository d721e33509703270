package db_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/db/dbtest"
	"wxhub/db/keyring"
)

const (
	keyA = "a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	keyB = "b:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE="
)

func ring(t *testing.T, spec string) *keyring.Ring {
	t.Helper()
	r, err := keyring.Parse(spec)
	require.NoError(t, err)
	return r
}

// seed creates n accounts whose access tokens hold a value, all encrypted with store's key.
func seed(t *testing.T, store *db.Store, n int) []db.Account {
	t.Helper()
	ctx := context.Background()
	_, err := store.CreateTenant(ctx, "acme")
	require.NoError(t, err)
	accounts := make([]db.Account, n)
	for i := range n {
		accounts[i], err = store.CreateAccount(ctx, db.NewAccount{Tenant: "acme", AppID: fmt.Sprintf("wx%06d", i), Kind: "official_account", Secret: fmt.Sprintf("secret-wx%06d", i)})
		require.NoError(t, err)
	}
	for written := 0; written < n; {
		res, err := store.ClaimDue(ctx, db.ClaimRequest{Worker: "t", Max: 100, Lease: time.Minute,
			Plan: func(db.Due) (db.Plan, error) { return db.Plan{API: "stable_token", DailyLimit: 1000}, nil }})
		require.NoError(t, err)
		for _, c := range res.Claims {
			require.Equal(t, "secret-"+c.AppID, c.Secret, "the claim carries the decrypted secret")
			_, _, err := store.WriteCredential(ctx, c, db.Write{Value: "token-" + c.AppID, ExpiresAt: time.Now().Add(time.Hour), RefreshIn: time.Hour, PreviousValidFor: time.Minute})
			require.NoError(t, err)
			written++
		}
	}
	return accounts
}

func TestRotationReencryptsOnlineAndOldKeyCanLeave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := dbtest.URL(t)
	pool, err := db.Open(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	accounts := seed(t, db.NewStore(pool, ring(t, keyA)), 300)
	// A component's callback settings are sealed apart from its secret, and rotate too.
	callback := db.CallbackConfig{Token: "pushtoken", AESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}
	_, err = db.NewStore(pool, ring(t, keyA)).CreateAccount(ctx, db.NewAccount{Tenant: "acme", AppID: "wxcomponent01", Kind: "component", Secret: "component-secret", Callback: &callback})
	require.NoError(t, err)

	rotating := db.NewStore(pool, ring(t, keyB+","+keyA))
	require.NoError(t, rotating.CheckKeyRing(ctx))
	var reads, failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			a := accounts[i%len(accounts)]
			c, err := rotating.GetCredential(ctx, a.ID, "access_token")
			if err != nil || c.Value != "token-"+a.AppID {
				failures.Add(1)
			}
			reads.Add(1)
		}
	}()
	var reports int
	p, err := rotating.RotateKeys(ctx, 50, func(db.RotationProgress) { reports++ })
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.Equal(t, 300+2, p.Secrets, "AppSecrets, the component's included, and its callback settings")
	require.Equal(t, 300, p.Credentials)
	require.GreaterOrEqual(t, reports, 12, "progress is reported per batch")
	require.Positive(t, reads.Load())
	require.Zero(t, failures.Load(), "reads during the rotation")
	t.Logf("%d reads during the rotation, none failed", reads.Load())

	onlyB := db.NewStore(pool, ring(t, keyB))
	require.NoError(t, onlyB.CheckKeyRing(ctx), "key a is no longer used")
	c, err := onlyB.GetCredential(ctx, accounts[7].ID, "access_token")
	require.NoError(t, err)
	require.Equal(t, "token-"+accounts[7].AppID, c.Value)
	comp, err := onlyB.GetComponentEndpoint(ctx, "wxcomponent01")
	require.NoError(t, err)
	require.Equal(t, callback, comp.Callback)
	res, err := onlyB.ClaimDue(ctx, db.ClaimRequest{Worker: "t", Max: 1, Lease: time.Minute,
		Plan: func(db.Due) (db.Plan, error) { return db.Plan{API: "stable_token", DailyLimit: 1000}, nil }})
	require.NoError(t, err)
	require.Empty(t, res.Claims, "nothing is due")
	again, err := onlyB.RotateKeys(ctx, 50, func(db.RotationProgress) {})
	require.NoError(t, err)
	require.Zero(t, again.Secrets+again.Credentials, "a second rotation has nothing to do")
}

func TestStartupRefusesRingWithoutAStoredKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := db.Open(ctx, dbtest.URL(t))
	require.NoError(t, err)
	defer pool.Close()
	seed(t, db.NewStore(pool, ring(t, keyA)), 1)
	err = db.NewStore(pool, ring(t, keyB)).CheckKeyRing(ctx)
	require.ErrorContains(t, err, `key id "a"`)
}

func TestSwappedSecretsFailNamingTheAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := db.Open(ctx, dbtest.URL(t))
	require.NoError(t, err)
	defer pool.Close()
	store := db.NewStore(pool, ring(t, keyA))
	accounts := seed(t, store, 3)
	swap(t, pool, accounts[0].ID, accounts[1].ID)
	due(t, pool)
	res, err := store.ClaimDue(ctx, db.ClaimRequest{Worker: "t", Max: 10, Lease: time.Minute,
		Plan: func(db.Due) (db.Plan, error) { return db.Plan{API: "stable_token", DailyLimit: 1000}, nil }})
	require.NoError(t, err)
	require.Len(t, res.Claims, 3)
	for _, c := range res.Claims {
		switch c.AppID {
		case accounts[0].AppID, accounts[1].AppID:
			require.ErrorContains(t, c.OpenErr, "secret of account "+c.AppID)
			require.ErrorIs(t, c.OpenErr, keyring.ErrDecrypt)
		default:
			require.NoError(t, c.OpenErr, "other accounts are untouched")
			require.Equal(t, "secret-"+c.AppID, c.Secret)
		}
	}
}

func swap(t *testing.T, pool *pgxpool.Pool, a, b int64) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		UPDATE accounts x SET secret_ciphertext = y.secret_ciphertext
		FROM (SELECT id, secret_ciphertext FROM accounts WHERE id IN ($1, $2)) y
		WHERE x.id IN ($1, $2) AND y.id <> x.id`, a, b)
	require.NoError(t, err)
}

func due(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `UPDATE credential_schedule SET refresh_at = now() - interval '1 second'`)
	require.NoError(t, err)
}
