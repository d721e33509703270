package e2e

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/db/dbtest"
	"wxhub/db/keyring"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// relayed returns a test database's URL and the same URL through a new relay.
func relayed(t *testing.T, marker string) (direct, viaRelay string, r *Relay) {
	t.Helper()
	direct = dbtest.URL(t)
	u, err := url.Parse(direct)
	require.NoError(t, err)
	r, err = NewRelay(u.Host, marker)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	u.Host = "127.0.0.1:" + strconv.Itoa(r.Port())
	return direct, u.String(), r
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func count(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM relay_notes").Scan(&n))
	return n
}

func TestRelayResetAtCommitAlternatesBeforeAndAfterTheServerCommits(t *testing.T) {
	direct, via, r := relayed(t, "")
	check := connect(t, direct)
	_, err := check.Exec(t.Context(), "CREATE TABLE relay_notes (id int)")
	require.NoError(t, err)

	for _, tc := range []struct {
		name      string
		committed int
	}{
		{"cut before the server gets COMMIT: rolled back", 0},
		{"cut after the server committed", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := check.Exec(t.Context(), "TRUNCATE relay_notes")
			require.NoError(t, err)
			r.ResetAtCommit(2 - tc.committed) // even: before, odd: after
			conn := connect(t, via)
			tx, err := conn.Begin(t.Context())
			require.NoError(t, err)
			_, err = tx.Exec(t.Context(), "INSERT INTO relay_notes VALUES (1)")
			require.NoError(t, err)
			require.Error(t, tx.Commit(t.Context()), "the client never learns the outcome")
			require.Equal(t, tc.committed, count(t, check))
			r.ResetAtCommit(0)
		})
	}
	before, after := r.CommitsCut()
	require.Equal(t, [2]int64{1, 1}, [2]int64{before, after})
}

func TestRelayCutsAfterTheMarkedStatementRan(t *testing.T) {
	direct, via, r := relayed(t, "-- name: Mark")
	check := connect(t, direct)
	_, err := check.Exec(t.Context(), "CREATE TABLE relay_notes (id int); INSERT INTO relay_notes VALUES (0)")
	require.NoError(t, err)

	conn := connect(t, via)
	const marked = "-- name: Mark\nUPDATE relay_notes SET id = id + $1"
	// The first execution prepares the statement; later ones only bind it by name.
	_, err = conn.Exec(t.Context(), marked, 1)
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), "SELECT $1::int", 1)
	require.NoError(t, err, "other statements pass")

	r.CutAfterStatement(1)
	_, err = conn.Exec(t.Context(), marked, 1)
	require.Error(t, err)
	var id int
	require.NoError(t, check.QueryRow(t.Context(), "SELECT id FROM relay_notes").Scan(&id))
	require.Equal(t, 2, id, "the statement ran although its answer never arrived")
	require.EqualValues(t, 1, r.StatementsCut())

	again := connect(t, via)
	_, err = again.Exec(t.Context(), marked, 1)
	require.NoError(t, err, "only n executions are cut")
}

func TestRelayBlackholeHoldsTrafficUntilReleased(t *testing.T) {
	_, via, r := relayed(t, "")
	conn := connect(t, via)
	r.Blackhole(true)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.Error(t, conn.Ping(ctx), "nothing arrives while the blackhole is on")
	require.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond, "a partition is found by a timeout, not a reset")

	r.Blackhole(false)
	fresh := connect(t, via)
	require.NoError(t, fresh.Ping(t.Context()))

	r.Blackhole(true)
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on connections held by the blackhole")
	}
}

func TestRelayResetAllBreaksOpenConnections(t *testing.T) {
	_, via, r := relayed(t, "")
	conn := connect(t, via)
	require.NoError(t, conn.Ping(t.Context()))
	r.ResetAll()
	require.Error(t, conn.Ping(t.Context()))
	require.NoError(t, connect(t, via).Ping(t.Context()), "new connections go through")
}

func TestRelayHoldsTheMarkedStatementUntilReleased(t *testing.T) {
	direct, via, r := relayed(t, "-- name: Mark")
	check := connect(t, direct)
	_, err := check.Exec(t.Context(), "CREATE TABLE relay_notes (id int); INSERT INTO relay_notes VALUES (0)")
	require.NoError(t, err)
	conn := connect(t, via)
	const marked = "-- name: Mark\nUPDATE relay_notes SET id = $1"
	_, err = conn.Exec(t.Context(), marked, 1)
	require.NoError(t, err)

	r.HoldStatement(true)
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), marked, 2)
		done <- err
	}()
	require.Eventually(t, func() bool { return r.Held() == 1 }, 5*time.Second, 10*time.Millisecond)
	var id int
	require.NoError(t, check.QueryRow(t.Context(), "SELECT id FROM relay_notes").Scan(&id))
	require.Equal(t, 1, id, "a held statement has not reached PostgreSQL")

	r.HoldStatement(false)
	require.NoError(t, <-done)
	require.NoError(t, check.QueryRow(t.Context(), "SELECT id FROM relay_notes").Scan(&id))
	require.Equal(t, 2, id)
	require.Zero(t, r.Held())
}

func TestRelayNamesTheCredentialOfAHeldWriteAndCountsItsAnswer(t *testing.T) {
	dsn, via, r := relayed(t, WriteMarker)
	ring, err := keyring.Parse("t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	require.NoError(t, err)
	pool, err := db.Open(t.Context(), via)
	require.NoError(t, err)
	defer pool.Close()
	store := db.NewStore(pool, ring)
	_, err = store.CreateTenant(t.Context(), "acme")
	require.NoError(t, err)
	account, err := store.CreateAccount(t.Context(), db.NewAccount{Tenant: "acme", AppID: "wxrelay", Kind: "official_account", Secret: "s"})
	require.NoError(t, err)
	res, err := store.ClaimDue(t.Context(), db.ClaimRequest{Worker: "t", Max: 1, Lease: time.Minute,
		Plan: func(db.Due) (db.Plan, error) { return db.Plan{API: "stable_token", DailyLimit: 10}, nil }})
	require.NoError(t, err)
	require.Len(t, res.Claims, 1)

	r.HoldStatement(true)
	done := make(chan error, 1)
	go func() {
		_, _, err := store.WriteCredential(context.Background(), res.Claims[0],
			db.Write{Value: "v", ExpiresAt: time.Now().Add(time.Hour), RefreshIn: time.Hour, PreviousValidFor: time.Minute})
		done <- err
	}()
	require.Eventually(t, func() bool { return r.Held() == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []HeldWrite{{AccountID: account.ID, Kind: "access_token"}}, r.HeldWrites())
	r.HoldStatement(false)
	require.NoError(t, <-done)
	require.Empty(t, r.HeldWrites())
	stored, refused := r.LateAnswers()
	require.Equal(t, [2]int64{1, 0}, [2]int64{stored, refused}, "the late write stored its value")

	// A second claim whose lease runs out while its write is held; another worker (not
	// through the relay) claims the credential meanwhile, so the late write is refused.
	direct, err := db.Open(t.Context(), dsn)
	require.NoError(t, err)
	defer direct.Close()
	_, err = direct.Exec(t.Context(), "UPDATE credential_schedule SET refresh_at = now()")
	require.NoError(t, err)
	plan := func(db.Due) (db.Plan, error) { return db.Plan{API: "stable_token", DailyLimit: 10}, nil }
	res, err = store.ClaimDue(t.Context(), db.ClaimRequest{Worker: "late", Max: 1, Lease: 100 * time.Millisecond, Plan: plan})
	require.NoError(t, err)
	require.Len(t, res.Claims, 1)
	r.HoldStatement(true)
	go func() {
		_, _, err := store.WriteCredential(context.Background(), res.Claims[0],
			db.Write{Value: "late", ExpiresAt: time.Now().Add(time.Hour), RefreshIn: time.Hour, PreviousValidFor: time.Minute})
		done <- err
	}()
	require.Eventually(t, func() bool { return r.Held() == 1 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	other, err := db.NewStore(direct, ring).ClaimDue(t.Context(), db.ClaimRequest{Worker: "other", Max: 1, Lease: time.Minute, Plan: plan})
	require.NoError(t, err)
	require.Len(t, other.Claims, 1)
	r.HoldStatement(false)
	require.ErrorIs(t, <-done, db.ErrFenced)
	stored, refused = r.LateAnswers()
	require.Equal(t, [2]int64{1, 1}, [2]int64{stored, refused}, "the second late write was refused by its fence")
}
