package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/wechatsim"
)

// TestDevPrintsCurlLinesThatWork starts `wxhub dev` on a fresh data folder (its own local
// PostgreSQL) and runs the printed access-token curl line against the printed address.
func TestDevPrintsCurlLinesThatWork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own")
	}
	d := startDev(t, devDataDir(t))
	require.True(t, strings.HasPrefix(d.curlKey, "wxh_"))
	req, err := http.NewRequest(http.MethodGet, d.curlURL, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+d.curlKey)
	client := &http.Client{Timeout: 15 * time.Second}
	res, err := client.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	require.Contains(t, string(body), `"access_token"`)
	var rest map[string]any
	require.NoError(t, json.Unmarshal(body, &rest))

	// The gateway's curl line, WeChat's own token request, answers the same token.
	require.NotEmpty(t, d.gatewayCurl, "dev prints the gateway and a curl line for it")
	res, err = client.Get(d.gatewayCurl)
	require.NoError(t, err)
	var wx map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&wx))
	res.Body.Close()
	require.Equal(t, rest["access_token"], wx["access_token"], "%v", wx)
	require.Contains(t, wx, "expires_in")
	d.stop()
}

// devDataDir is a fresh data folder for `wxhub dev`, with no key ring, admin key or database
// from the environment.
func devDataDir(t *testing.T) string {
	t.Helper()
	t.Setenv("DATABASE_URL", "")
	t.Setenv("WXHUB_KEYS", "")
	t.Setenv("WXHUB_BOOTSTRAP_ADMIN_KEY", "")
	// Not t.TempDir: its parent is private to root, and the local server runs as postgres.
	dir, err := os.MkdirTemp("", "wxhub-dev-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// devRun is a running `wxhub dev`, with what it printed.
type devRun struct {
	api, sim, key    string
	curlURL, curlKey string // of the printed access-token curl line
	gatewayCurl      string // the URL of the printed gateway curl line
	stop             func()
}

// startDev starts `wxhub dev` on dataDir, as the README's run command does, and reads the
// addresses and admin key it prints.
func startDev(t *testing.T, dataDir string, extra ...string) devRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan int, 1)
	var stderr strings.Builder
	args := append([]string{"dev", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--sim-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--log-level", "error"}, extra...)
	go func() {
		done <- run(ctx, args, w, &stderr)
		w.Close()
	}()
	field := regexp.MustCompile(`^\s+(API|simulator|admin key)\s+(\S+)`)
	curl := regexp.MustCompile(`^\s*curl -H 'Authorization: Bearer (\S+)' (http://\S+/access-token)$`)
	gatewayCurl := regexp.MustCompile(`^\s*curl '(http://\S+/cgi-bin/token\?\S+)'\)$`)
	var d devRun
	sc := bufio.NewScanner(r)
	for sc.Scan() && d.curlURL == "" {
		if m := curl.FindStringSubmatch(sc.Text()); m != nil {
			d.curlKey, d.curlURL = m[1], m[2]
		}
		if m := gatewayCurl.FindStringSubmatch(sc.Text()); m != nil {
			d.gatewayCurl = m[1]
		}
		if m := field.FindStringSubmatch(sc.Text()); m != nil {
			switch m[1] {
			case "API":
				d.api = m[2]
			case "simulator":
				d.sim = m[2]
			case "admin key":
				d.key = m[2]
			}
		}
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	if d.key == "" || d.curlURL == "" {
		cancel()
		<-done
		t.Fatalf("wxhub dev did not print its addresses, key and curl lines; stderr: %s", stderr.String())
	}
	d.stop = func() {
		cancel()
		select {
		case code := <-done:
			require.Zero(t, code, "Ctrl-C stops everything cleanly: %s", stderr.String())
		case <-time.After(30 * time.Second):
			t.Fatal("wxhub dev did not stop")
		}
	}
	return d
}

// call makes one API request with the admin key and decodes the JSON answer.
func (d devRun) call(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, d.api+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+d.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// accepted asks the simulator whether it takes token, as an application server would.
func (d devRun) accepted(t *testing.T, token string) bool {
	t.Helper()
	code, err := (&wechatsim.Client{BaseURL: d.sim, HTTP: http.DefaultClient}).Use(context.Background(), token)
	require.NoError(t, err)
	return code == 0
}

// acceptedByWeCom asks the simulator's WeCom whether it takes a WeCom app's token.
func (d devRun) acceptedByWeCom(t *testing.T, token string) bool {
	t.Helper()
	code, err := (&wechatsim.Client{BaseURL: d.sim, HTTP: http.DefaultClient}).UseWeCom(context.Background(), token)
	require.NoError(t, err)
	return code == 0
}

// weComTokens reads the access tokens of the demo WeCom app and of wecommine0000001.
func (d devRun) weComTokens(t *testing.T) (demo, mine string) {
	t.Helper()
	token := func(appid string) string {
		status, body := d.call(t, http.MethodGet, "/v1/accounts/"+appid+"/access-token", "")
		require.Equal(t, http.StatusOK, status, "%s: %v", appid, body)
		tok := body["access_token"].(string)
		require.True(t, d.acceptedByWeCom(t, tok), "the simulator's WeCom accepts the token of %s", appid)
		return tok
	}
	return token("wecomdemo0000001"), token("wecommine0000001")
}

func TestDevAccountsOfYourOwnWorkAndSurviveARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own")
	}
	dataDir := devDataDir(t)

	d := startDev(t, dataDir)
	status, _ := d.call(t, http.MethodPost, "/v1/tenants", `{"name":"mine"}`)
	require.Equal(t, http.StatusCreated, status)
	status, body := d.call(t, http.MethodPost, "/v1/accounts", `{"appid":"wxmine0000000001","kind":"official_account","secret":"my-own-secret","tenant":"mine"}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	status, body = d.call(t, http.MethodGet, "/v1/accounts/wxmine0000000001/access-token", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	first := body["access_token"].(string)
	require.True(t, d.accepted(t, first), "the simulator accepts the token of an account created through the API")
	status, body = d.call(t, http.MethodPost, "/v1/accounts", `{"appid":"wecommine0000001","kind":"wecom_app","secret":"my-corpsecret","tenant":"mine","corp_id":"wwmine","agent_id":1000005,"tickets":["agent_config"]}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	demoWeCom, mineWeCom := d.weComTokens(t)
	require.NotEqual(t, demoWeCom, mineWeCom)
	d.stop()

	d = startDev(t, dataDir)
	status, body = d.call(t, http.MethodGet, "/v1/accounts/wxmine0000000001/access-token", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	second := body["access_token"].(string)
	require.NotEqual(t, first, second, "the new simulator never issued the token stored before the restart")
	require.True(t, d.accepted(t, second), "after a restart, the simulator accepts the account's token")
	d.weComTokens(t)
	status, body = d.call(t, http.MethodGet, "/v1/accounts?tenant=demo", "")
	require.Equal(t, http.StatusOK, status)
	d.stop()
}

func TestDevStartsWithARevokedAdminKeyAndPrintsANewOne(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own")
	}
	dataDir := devDataDir(t)

	d := startDev(t, dataDir, "--account", "wxflag0000000001:flag-secret")
	status, body := d.call(t, http.MethodGet, "/v1/accounts/wxflag0000000001/access-token", "")
	require.Equal(t, http.StatusOK, status, "an --account account works: %v", body)
	require.True(t, d.accepted(t, body["access_token"].(string)))
	req, err := http.NewRequest(http.MethodGet, d.api+"/v1/api-keys", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+d.key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var keys []map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&keys))
	res.Body.Close()
	require.Len(t, keys, 1)
	id := fmt.Sprint(int64(keys[0]["id"].(float64)))
	status, _ = d.call(t, http.MethodDelete, "/v1/api-keys/"+id, "")
	require.Equal(t, http.StatusNoContent, status, "the admin key revoked itself")
	old := d.key
	d.stop()

	d = startDev(t, dataDir)
	require.NotEqual(t, old, d.key, "a new admin key, printed")
	status, _ = d.call(t, http.MethodGet, "/v1/accounts", "")
	require.Equal(t, http.StatusOK, status, "and it works")
	d.stop()
}
