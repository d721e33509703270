package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/db/dbtest"
	"wxhub/db/keyring"
)

// envMu serialises tests that change the process environment while others run in parallel.
var envMu sync.Mutex

// runWithEnv runs f with the variables set, then restores them.
func runWithEnv(vars map[string]string, f func() int) int {
	envMu.Lock()
	defer envMu.Unlock()
	for k, v := range vars {
		old, had := os.LookupEnv(k)
		os.Setenv(k, v)
		defer func() {
			if had {
				os.Setenv(k, old)
			} else {
				os.Unsetenv(k)
			}
		}()
	}
	return f()
}

func TestMain(m *testing.M) { dbtest.Main(m) }

func wxhub(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestMigrateDownToZeroThenUpAgain(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t) // migrated already, as the harness hands it out
	code, out, errOut := wxhub(t, "migrate", "--database-url", url, "status")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "applied")

	code, out, errOut = wxhub(t, "migrate", "--database-url", url, "down", "--to", "0")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "rolled back 00001")
	code, out, _ = wxhub(t, "migrate", "--database-url", url, "status")
	require.Zero(t, code)
	require.NotContains(t, out, "applied ")

	code, out, errOut = wxhub(t, "migrate", "--database-url", url, "up")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "applied 00001")
	code, out, _ = wxhub(t, "migrate", "--database-url", url, "up")
	require.Zero(t, code)
	require.Contains(t, out, "nothing to apply")
}

func TestCommandErrorsAreOneReadableLine(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	t.Setenv("WXHUB_KEYS", "")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"migrate", "sideways"}, 2, `want up, down or status`},
		{[]string{"migrate", "up"}, 1, "no database URL"},
		{[]string{"migrate", "up", "--to", "3"}, 2, "--to goes with down"},
		{[]string{"migrate", "--database-url", "postgres://u:pw-should-not-show@[::1/x", "up"}, 1, "not valid"},
		{[]string{"worker"}, 1, "WXHUB_KEYS is not set"},
		{[]string{"worker", "--lease", "5s", "--call-timeout", "10s"}, 2, "--lease must be longer"},
		{[]string{"sim", "--overlap", "3h"}, 2, "--overlap 3h0m0s must be shorter than --token-ttl 2h0m0s"},
		{[]string{"sim", "--overlap", "60s", "--token-ttl", "60s"}, 2, "--overlap 1m0s must be shorter than --token-ttl 1m0s"},
		{[]string{"sim", "--overlap", "0s"}, 2, "--overlap 0s must be positive"},
		{[]string{"sim", "--classic-survivors", "0"}, 2, "--classic-survivors 0 must be at least 1"},
		{[]string{"dev", "--overlap", "3h"}, 2, "--overlap 3h0m0s must be shorter than --token-ttl 2h0m0s"},
		{[]string{"dev", "--token-ttl", "1s"}, 2, "--overlap 1s must be shorter than --token-ttl 1s"},
		{[]string{"dev", "--overlap", "0s"}, 2, "--overlap 0s must be positive"},
		{[]string{"dev", "--token-ttl", "60s"}, 2, "--overlap 2s is too short for dev"},
		{[]string{"worker", "--overlap", "5s", "--call-timeout", "5s"}, 2, "--overlap must be longer than --call-timeout"},
		{[]string{"serve", "--overlap", "20s", "--staleness-bound", "19s"}, 2, "--overlap 20s must exceed --staleness-bound 19s by 2s"},
		{[]string{"sim", "--account", "nosecret"}, 2, "appid:secret"},
		{[]string{"sim", "--account", "w:s:wecom_app:ww1"}, 2, "appid:secret:wecom_app:corpid:agentid"},
		{[]string{"sim", "--account", "w:s:official_account:ww1:7"}, 2, "appid:secret:wecom_app:corpid:agentid"},
		{[]string{"sim", "--account", "w:s:wecom_app:ww1:x"}, 2, "agentid a positive number"},
		{[]string{"sim", "--wecom-expired-code", "40001"}, 2, "want 40014 or 42001"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := wxhub(t, tt.args...)
			require.Equal(t, tt.code, code, errOut)
			require.Contains(t, errOut, tt.want)
			require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			require.NotContains(t, errOut, "pw-should-not-show")
		})
	}
}

func TestDevOverlapScalesWithTokenTTLInWeChatsRatio(t *testing.T) {
	tests := []struct {
		ttl, want time.Duration
	}{
		{ttl: 7200 * time.Second, want: 300 * time.Second},
		{ttl: 240 * time.Second, want: 10 * time.Second},
		{ttl: 60 * time.Second, want: 2 * time.Second},
		{ttl: 10 * time.Second, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.ttl.String(), func(t *testing.T) {
			require.Equal(t, tt.want, devOverlap(tt.ttl))
		})
	}
}

func TestKeysRotateThenOldKeyLeaves(t *testing.T) {
	t.Parallel()
	const keyA = "a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	const keyB = "b:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE="
	url := dbtest.URL(t)
	ctx := context.Background()
	pool, err := db.Open(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	ringA, err := keyring.Parse(keyA)
	require.NoError(t, err)
	storeA := db.NewStore(pool, ringA)
	_, err = storeA.CreateTenant(ctx, "acme")
	require.NoError(t, err)
	_, err = storeA.CreateAccount(ctx, db.NewAccount{Tenant: "acme", AppID: "wx1", Kind: "official_account", Secret: "s1"})
	require.NoError(t, err)

	var out, errOut bytes.Buffer
	withKeys := func(keys string, args ...string) int {
		out.Reset()
		errOut.Reset()
		return runWithEnv(map[string]string{"WXHUB_KEYS": keys}, func() int { return run(ctx, args, &out, &errOut) })
	}
	require.Equal(t, 1, withKeys(keyB, "keys", "rotate", "--database-url", url))
	require.Contains(t, errOut.String(), `key id "a"`, "a ring without the stored key is refused, naming it")
	require.Zero(t, withKeys(keyB+","+keyA, "keys", "rotate", "--database-url", url), errOut.String())
	require.Contains(t, out.String(), "re-encrypted 1 secrets")
	require.Zero(t, withKeys(keyB, "keys", "rotate", "--database-url", url), errOut.String())
	require.Contains(t, out.String(), "re-encrypted 0 secrets and 0 credentials")
}
