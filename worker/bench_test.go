package worker_test

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
	"wxhub/wechatsim"
)

const benchCredentials = 10_000

// BenchmarkRefresh measures refreshes per second for 10,000 due credentials against a
// simulator that answers at once, next to a baseline on the same database: the bare write a
// refresh ends in (UPDATE of the row and NOTIFY in one transaction), from the same number of
// goroutines. The ratio is the worker's cost over the floor the database sets.
func BenchmarkRefresh(b *testing.B) {
	b.Run("baseline_update_notify", func(b *testing.B) {
		for range b.N {
			bb, ids := benchSetup(b)
			pool, err := db.Open(context.Background(), bb.dsn)
			require.NoError(b, err)
			b.StartTimer()
			start := time.Now()
			updateNotifyLoop(b, pool, ids, 32)
			b.StopTimer()
			b.ReportMetric(float64(len(ids))/time.Since(start).Seconds(), "refreshes/s")
			pool.Close()
		}
	})
	b.Run("worker", func(b *testing.B) {
		for range b.N {
			bb, ids := benchSetup(b)
			cfg := bb.config("bench")
			cfg.Concurrency, cfg.PollInterval = 32, 10*time.Millisecond
			b.StartTimer()
			start := time.Now()
			w := bb.startWorker(b, cfg, bb.simURL)
			pool, err := db.Open(context.Background(), bb.dsn)
			require.NoError(b, err)
			for {
				var left int
				require.NoError(b, pool.QueryRow(context.Background(),
					"SELECT count(*) FROM credentials WHERE generation = 0").Scan(&left))
				if left == 0 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			w.stop()
			pool.Close()
			b.ReportMetric(float64(len(ids))/elapsed.Seconds(), "refreshes/s")
			require.Equal(b, int64(len(ids)), bb.sim.Stats("").Totals.TokensIssued)
		}
	})
}

// benchSetup creates the accounts with the timer stopped and returns their ids.
func benchSetup(b *testing.B) (*bundle, []int64) {
	b.StopTimer()
	bb := setup(b, time.Hour, 5*time.Minute)
	ids := make([]int64, benchCredentials)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < benchCredentials; i = next.Add(1) - 1 {
				appid := fmt.Sprintf("wxbench%06d", i)
				require.NoError(b, bb.sim.AddAccount(wechatsim.Account{AppID: appid, Secret: "s-" + appid}))
				a, err := bb.store.CreateAccount(context.Background(), db.NewAccount{
					Tenant: "acme", AppID: appid, Kind: "official_account", Secret: "s-" + appid,
				})
				require.NoError(b, err)
				ids[i] = a.ID
			}
		}()
	}
	wg.Wait()
	return bb, ids
}

// updateNotifyLoop is the baseline: per credential, one transaction with the UPDATE a
// refresh makes and its NOTIFY.
func updateNotifyLoop(b *testing.B, pool *pgxpool.Pool, ids []int64, workers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := next.Add(1) - 1; i < int64(len(ids)); i = next.Add(1) - 1 {
				tx, err := pool.Begin(ctx)
				require.NoError(b, err)
				_, err = tx.Exec(ctx, `UPDATE credentials SET value_ciphertext = '\x01', value_key_id = 'k',
					value_fingerprint = 'f', expires_at = now() + interval '2 hours', generation = generation + 1
					WHERE account_id = $1 AND kind = 'access_token'`, ids[i])
				require.NoError(b, err)
				_, err = tx.Exec(ctx, `UPDATE credential_schedule SET refresh_at = now() + interval '1 hour'
					WHERE account_id = $1 AND kind = 'access_token'`, ids[i])
				require.NoError(b, err)
				_, err = tx.Exec(ctx, `SELECT pg_notify('wxhub_changes', $1)`, fmt.Sprint(ids[i]))
				require.NoError(b, err)
				require.NoError(b, tx.Commit(ctx))
			}
		}()
	}
	wg.Wait()
}
