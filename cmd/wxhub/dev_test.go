package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDevPrintsCurlLinesThatWork starts `wxhub dev` on a fresh data folder (its own local
// PostgreSQL) and runs the printed access-token curl line against the printed address.
func TestDevPrintsCurlLinesThatWork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own")
	}
	t.Setenv("DATABASE_URL", "")
	t.Setenv("WXHUB_KEYS", "")
	t.Setenv("WXHUB_BOOTSTRAP_ADMIN_KEY", "")
	// Not t.TempDir: its parent is private to root, and the local server runs as postgres.
	dataDir, err := os.MkdirTemp("", "wxhub-dev-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dataDir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		done <- run(ctx, []string{"dev", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--sim-listen", "127.0.0.1:0", "--log-level", "error"}, w, &stderr)
		w.Close()
	}()
	curl := regexp.MustCompile(`^\s*curl -H 'Authorization: Bearer (\S+)' (http://\S+/access-token)$`)
	var key, url string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := curl.FindStringSubmatch(sc.Text()); m != nil {
			key, url = m[1], m[2]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	if url == "" {
		<-done
		t.Fatalf("no access-token curl line printed; stderr: %s", stderr.String())
	}
	require.True(t, strings.HasPrefix(key, "wxh_"))

	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	client := &http.Client{Timeout: 15 * time.Second}
	res, err := client.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	require.Contains(t, string(body), `"access_token"`)

	cancel()
	select {
	case code := <-done:
		require.Zero(t, code, "Ctrl-C stops everything cleanly")
	case <-time.After(30 * time.Second):
		t.Fatal("wxhub dev did not stop")
	}
}
