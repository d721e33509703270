package db_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/db/dbsqlc"
	"wxhub/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// schemaOf describes the public schema (columns, constraints, indexes and comments) so two
// states of a database can be compared.
func schemaOf(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE 'goose%'
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text NOT LIKE 'goose%'
		UNION ALL
		SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE 'goose%'
		UNION ALL
		SELECT 'comment ' || c.relname || '.' || coalesce(a.attname, '') || ' ' || d.description
		FROM pg_description d JOIN pg_class c ON c.oid = d.objoid
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0
		WHERE c.relnamespace = 'public'::regnamespace
		ORDER BY 1`)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestMigrateDownToZeroAndUpAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := dbtest.URL(t)
	pool, err := db.Open(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	before := schemaOf(t, pool)
	require.NotEmpty(t, before)

	m, err := db.NewMigrator(dsn)
	require.NoError(t, err)
	defer m.Close()

	down, err := m.DownTo(ctx, 0)
	require.NoError(t, err)
	require.NotEmpty(t, down)
	require.Empty(t, schemaOf(t, pool), "down to 0 must remove every table")
	status, err := m.Status(ctx)
	require.NoError(t, err)
	for _, s := range status {
		require.False(t, s.Applied, "migration %d still applied", s.Version)
	}

	up, err := m.Up(ctx)
	require.NoError(t, err)
	require.Equal(t, down[len(down)-1], up[0])
	require.Equal(t, before, schemaOf(t, pool), "up after down must rebuild the same schema")

	again, err := m.Up(ctx)
	require.NoError(t, err)
	require.Empty(t, again, "a second up has nothing to apply")
}

func TestEveryTableAndColumnHasAComment(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	rows, err := pool.Query(context.Background(), `
		SELECT c.relname || coalesce('.' || a.attname, '')
		FROM pg_class c
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
			AND a.attname NOT IN ('id', 'tenant_id', 'account_id', 'created_at', 'updated_at', 'at',
				'name', 'previous_key_id', 'previous_expires_at', 'value_key_id',
				'last_refreshed_at', 'expires_at', 'revoked_at', 'details', 'outcome')
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname NOT LIKE 'goose%'
		  AND col_description(c.oid, coalesce(a.attnum, 0)) IS NULL
		  AND (a.attnum IS NOT NULL OR obj_description(c.oid, 'pg_class') IS NULL)`)
	require.NoError(t, err)
	var missing []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		missing = append(missing, s)
	}
	require.NoError(t, rows.Err())
	require.Empty(t, missing, "tables and non-obvious columns need COMMENT ON")
}

func TestConstraintsKeepBadDataOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	q := dbsqlc.New(pool)
	tenant, err := q.TenantCreate(ctx, "acme")
	require.NoError(t, err)
	other, err := q.TenantCreate(ctx, "other")
	require.NoError(t, err)
	keyID := "k1"
	good := dbsqlc.AccountCreateParams{
		TenantID: tenant.ID, Appid: "wx0000000000000001", Kind: "official_account",
		SecretCiphertext: []byte{1, 2, 3}, SecretKeyID: &keyID, TokenMode: "stable",
		Tickets: []string{"jsapi"}, DailyLimits: []byte(`{}`),
	}
	acct, err := q.AccountCreate(ctx, good)
	require.NoError(t, err)
	require.Equal(t, "active", acct.Status)
	component := good
	component.Appid, component.Kind = "wxcomponent00000001", "component"
	comp, err := q.AccountCreate(ctx, component)
	require.NoError(t, err)

	with := func(change func(p *dbsqlc.AccountCreateParams)) dbsqlc.AccountCreateParams {
		p := good
		p.Appid = "wx0000000000000002"
		change(&p)
		return p
	}
	agent := int64(1000002)
	corp := "ww0000000000000001"
	tests := []struct {
		name       string
		params     dbsqlc.AccountCreateParams
		constraint string
	}{
		{"duplicate appid", with(func(p *dbsqlc.AccountCreateParams) { p.Appid = good.Appid }), "accounts_appid_key"},
		{"unknown kind", with(func(p *dbsqlc.AccountCreateParams) { p.Kind = "bank" }), "accounts_kind_valid"},
		{"appid with a space", with(func(p *dbsqlc.AccountCreateParams) { p.Appid = "wx 1" }), "accounts_appid_format"},
		{"unknown token mode", with(func(p *dbsqlc.AccountCreateParams) { p.TokenMode = "sometimes" }), "accounts_token_mode_valid"},
		{"unknown ticket", with(func(p *dbsqlc.AccountCreateParams) { p.Tickets = []string{"lottery"} }), "accounts_tickets_valid"},
		{"limits not an object", with(func(p *dbsqlc.AccountCreateParams) { p.DailyLimits = []byte(`[1]`) }), "accounts_daily_limits_object"},
		{"no secret", with(func(p *dbsqlc.AccountCreateParams) { p.SecretCiphertext, p.SecretKeyID = nil, nil }), "accounts_secret_required"},
		{"secret without key id", with(func(p *dbsqlc.AccountCreateParams) { p.SecretKeyID = nil }), "accounts_secret_with_key"},
		{"wecom app without agent", with(func(p *dbsqlc.AccountCreateParams) { p.Kind, p.CorpID = "wecom_app", &corp }), "accounts_wecom_identity"},
		{"agent on an official account", with(func(p *dbsqlc.AccountCreateParams) { p.CorpID, p.AgentID = &corp, &agent }), "accounts_wecom_identity"},
		{"authorizer without component", with(func(p *dbsqlc.AccountCreateParams) { p.Kind = "authorizer" }), "accounts_authorizer_component"},
		{"authorizer of another tenant's component", with(func(p *dbsqlc.AccountCreateParams) {
			p.Kind, p.TenantID, p.ComponentAccountID = "authorizer", other.ID, &comp.ID
		}), "accounts_tenant_id_component_account_id_fkey"},
		{"unknown tenant", with(func(p *dbsqlc.AccountCreateParams) { p.TenantID = 999999 }), "accounts_tenant_id_fkey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := q.AccountCreate(ctx, tt.params)
			requireConstraint(t, err, tt.constraint)
		})
	}

	t.Run("bad tenant name", func(t *testing.T) {
		_, err := q.TenantCreate(ctx, "Has Spaces")
		requireConstraint(t, err, "tenants_name_format")
	})
	t.Run("credential of an account in another tenant", func(t *testing.T) {
		_, err := q.CredentialInsert(ctx, dbsqlc.CredentialInsertParams{TenantID: other.ID, AccountID: acct.ID, Kind: "access_token"})
		requireConstraint(t, err, "credentials_tenant_id_account_id_fkey")
	})
	t.Run("unknown credential kind", func(t *testing.T) {
		_, err := q.CredentialInsert(ctx, dbsqlc.CredentialInsertParams{TenantID: tenant.ID, AccountID: acct.ID, Kind: "password"})
		requireConstraint(t, err, "credentials_kind_valid")
	})
	t.Run("value without expiry", func(t *testing.T) {
		_, err := pool.Exec(ctx, `INSERT INTO credentials (tenant_id, account_id, kind, value_ciphertext, value_key_id, value_fingerprint, generation)
			VALUES ($1, $2, 'jsapi_ticket', '\x01', 'k1', 'ab12', 1)`, tenant.ID, acct.ID)
		requireConstraint(t, err, "credentials_value_complete")
	})
	t.Run("admin key scoped to a tenant", func(t *testing.T) {
		_, err := pool.Exec(ctx, `INSERT INTO api_keys (lookup, hash, name, role, tenant_id) VALUES ('l1', '\x00', 'n', 'admin', $1)`, tenant.ID)
		requireConstraint(t, err, "api_keys_tenant_scope")
	})
}

func TestNewCredentialIsDueAtOnceAndEmpty(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	q := dbsqlc.New(pool)
	tenant, err := q.TenantCreate(ctx, "acme")
	require.NoError(t, err)
	keyID := "k1"
	acct, err := q.AccountCreate(ctx, dbsqlc.AccountCreateParams{
		TenantID: tenant.ID, Appid: "wx0000000000000001", Kind: "mini_program",
		SecretCiphertext: []byte{1}, SecretKeyID: &keyID, TokenMode: "classic", Tickets: []string{}, DailyLimits: []byte(`{"token":200}`),
	})
	require.NoError(t, err)
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	cred, err := q.CredentialInsert(ctx, dbsqlc.CredentialInsertParams{TenantID: tenant.ID, AccountID: acct.ID, Kind: "access_token", Due: true, Now: &now})
	require.NoError(t, err)
	require.True(t, cred.RefreshAt.Equal(now))
	ticket, err := q.CredentialInsert(ctx, dbsqlc.CredentialInsertParams{TenantID: tenant.ID, AccountID: acct.ID, Kind: "jsapi_ticket", Now: &now})
	require.NoError(t, err)
	require.Nil(t, ticket.RefreshAt, "a ticket waits for the first access token")
	require.Zero(t, cred.Generation)
	require.Nil(t, cred.ValueCiphertext)
	require.Nil(t, cred.ExpiresAt)
}

func TestQuotaDayIsChinaCalendarDay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	q := dbsqlc.New(pool)
	tenant, err := q.TenantCreate(ctx, "acme")
	require.NoError(t, err)
	keyID := "k1"
	acct, err := q.AccountCreate(ctx, dbsqlc.AccountCreateParams{
		TenantID: tenant.ID, Appid: "wx0000000000000001", Kind: "official_account",
		SecretCiphertext: []byte{1}, SecretKeyID: &keyID, TokenMode: "stable", Tickets: []string{}, DailyLimits: []byte(`{}`),
	})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO upstream_calls (tenant_id, account_id, api, day, calls, daily_limit) VALUES ($1, $2, 'stable_token', '2026-11-28', 7, 450000)`, tenant.ID, acct.ID)
	require.NoError(t, err)

	tests := []struct {
		name  string
		now   time.Time
		calls int32
	}{
		{"15:59:59 UTC is still 27 November in China", time.Date(2026, 11, 27, 15, 59, 59, 0, time.UTC), 0},
		{"16:00 UTC is 28 November in China", time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC), 7},
		{"15:59:59 UTC next day is still 28 November", time.Date(2026, 11, 28, 15, 59, 59, 0, time.UTC), 7},
		{"16:00 UTC next day is 29 November", time.Date(2026, 11, 28, 16, 0, 0, 0, time.UTC), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := q.UpstreamCallsToday(ctx, dbsqlc.UpstreamCallsTodayParams{AccountID: acct.ID, Now: &tt.now})
			require.NoError(t, err)
			var total int32
			for _, r := range rows {
				total += r.Calls
			}
			require.Equal(t, tt.calls, total)
		})
	}
}

func TestOpenRejectsBadURLWithoutEchoingIt(t *testing.T) {
	t.Parallel()
	_, err := db.Open(context.Background(), "postgres://user:s3cret-pass@[::1/db")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret-pass")
	_, err = db.Open(context.Background(), "")
	require.ErrorIs(t, err, db.ErrNoDatabaseURL)
}

func requireConstraint(t *testing.T, err error, constraint string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a violation of %s, got %v", constraint, err)
	require.Equal(t, constraint, pgErr.ConstraintName, pgErr.Message)
}

func TestConnectionsCarryTheNameOfTheirProcess(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	for _, tc := range []struct{ url, application, want string }{
		{url, "wxhub-worker", "wxhub-worker"},
		{url + "&application_name=ops-named", "wxhub-worker", "ops-named"},
	} {
		pool, err := db.OpenFor(context.Background(), tc.url, tc.application)
		require.NoError(t, err)
		var name string
		require.NoError(t, pool.QueryRow(context.Background(), "SELECT current_setting('application_name')").Scan(&name))
		pool.Close()
		require.Equal(t, tc.want, name)
	}
}

func TestTheDBAViewsShowStateWithoutSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := db.Open(ctx, dbtest.URL(t))
	require.NoError(t, err)
	defer pool.Close()
	store := db.NewStore(pool, ring(t, keyA))
	accounts := seed(t, store, 2)
	_, err = pool.Exec(ctx, "UPDATE credential_schedule SET refresh_at = now() - interval '1 minute' WHERE account_id = $1", accounts[0].ID)
	require.NoError(t, err)

	var columns []string
	rows, err := pool.Query(ctx, `SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
		WHERE table_name IN ('wxhub_credentials_due', 'wxhub_account_health', 'wxhub_quota_today')`)
	require.NoError(t, err)
	columns, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, columns)
	for _, c := range columns {
		require.NotRegexp(t, `secret|ciphertext|key_id|\.value_|\.previous_|bytea`, c, "no secret or value in a DBA view")
	}

	var due []string
	rows, err = pool.Query(ctx, "SELECT appid FROM wxhub_credentials_due")
	require.NoError(t, err)
	due, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{accounts[0].AppID}, due)

	var status string
	var withoutValue int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT status, without_valid_value FROM wxhub_account_health WHERE appid = $1",
		accounts[1].AppID).Scan(&status, &withoutValue))
	require.Equal(t, "active", status)
	require.Zero(t, withoutValue, "seeded accounts hold a valid token")

	var calls int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT sum(calls) FROM wxhub_quota_today").Scan(&calls))
	require.Equal(t, int64(2), calls, "one counted call per seeded account")
}

func TestTheQuotaLedgerKeepsOnlyItsHistoryDays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := db.Open(ctx, dbtest.URL(t))
	require.NoError(t, err)
	defer pool.Close()
	store := db.NewStore(pool, ring(t, keyA))
	a := seed(t, store, 1)[0] // counts one call today
	today := "((now() AT TIME ZONE 'UTC') + interval '8 hours')::date"
	_, err = pool.Exec(ctx, `INSERT INTO upstream_calls (tenant_id, account_id, api, day, calls, daily_limit)
		SELECT $1, $2, 'token', `+today+` - d, 1, 10 FROM generate_series(1, 40) d`, a.TenantID, a.ID)
	require.NoError(t, err)

	n, err := store.PruneQuotaLedger(ctx, 35)
	require.NoError(t, err)
	require.Equal(t, int64(5), n, "days 36 to 40 before today")
	var oldest int
	require.NoError(t, pool.QueryRow(ctx, "SELECT "+today+" - min(day) FROM upstream_calls").Scan(&oldest))
	require.Equal(t, 35, oldest)
	var todays int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM upstream_calls WHERE day = "+today).Scan(&todays))
	require.Equal(t, int64(1), todays, "today's count stays")
}

func TestWaitForDatabaseWaitsThenSaysWhy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	require.NoError(t, db.WaitForDatabase(ctx, dbtest.URL(t), time.Second))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	start := time.Now()
	err = db.WaitForDatabase(ctx, "postgres://wxhub:not-a-real-password@"+addr+"/wxhub?sslmode=disable", time.Second)
	require.ErrorContains(t, err, "the database did not answer within 1s")
	require.NotContains(t, err.Error(), "not-a-real-password")
	require.GreaterOrEqual(t, time.Since(start), time.Second, "it kept trying for the whole wait")
}
