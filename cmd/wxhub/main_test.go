package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"wxhub/db/dbtest"
)

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
		{[]string{"sim", "--overlap", "3h"}, 2, "0 < --overlap < --token-ttl"},
		{[]string{"sim", "--account", "nosecret"}, 2, "appid:secret"},
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
