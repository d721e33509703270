package wechatsim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fuzzClock is the simulator clock of FuzzSimulatorBodies: fixed, so that an
// input does the same thing every time it runs.
var fuzzClock = time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)

// FuzzSimulatorBodies posts arbitrary JSON bodies to POST /sim/accounts, then
// POST /sim/faults, then POST /cgi-bin/stable_token of a fresh simulator, each
// through ServeHTTP. No request may panic (except the documented
// http.ErrAbortHandler of an injected connection drop, which net/http turns
// into a closed connection). The /sim/ endpoints never answer 5xx and always
// one JSON document, and /sim/accounts never returns the secret. stable_token
// answers 5xx or HTML only when the faults in force for the appid it names ask
// for exactly that, one JSON document otherwise, and issues a token only for
// the appid and secret of the account created by the first body, never for
// a component. (Automatic ticket pushes are off: a fuzz input must not send
// requests to the URLs it makes up.)
func FuzzSimulatorBodies(f *testing.F) {
	accounts := []string{
		`{"appid":"wx_a","secret":"secret_a"}`,
		`{"appid":"wx_a","secret":"secret_a","kind":"mini_program","quotas":{"stable_token":2}}`,
		`{"appid":"wx_a","secret":"secret_a","quotas":{"token":0,"getticket":-1}}`,
		`{"appid":"wx_a","secret":"secret_a","quotas":{"nope":1}}`,
		`{"appid":"","secret":"s"}`,
		`{"appid":"wx_a","kind":"bank"}`,
		`{"appid":"wx_a","secret":""}`,
		`{"appid":"wx_a","secret":"secret_a","kind":"component","callback_token":"t","encoding_aes_key":"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG","callback_url":"http://127.0.0.1:1/cb"}`,
		`{"appid":"wx_a","secret":"secret_a","kind":"component","encoding_aes_key":"short"}`,
		`{"appid":"wx_a","secret":"secret_a","callback_url":"http://127.0.0.1:1/cb"}`,
		`[]`,
		`not json`,
		``,
	}
	faults := []string{
		`{}`,
		`{"appid":"wx_a","busy_rate":1}`,
		`{"appid":"wx_a","ip_not_whitelisted":true}`,
		`{"quota_exhausted":true}`,
		`{"appid":"wx_a","drop_rate":1}`,
		`{"latency":"1h"}`,
		`{"latency_ms":2.5}`,
		`{"latency":"-1s"}`,
		`{"latency":"soon"}`,
		`{"busy_rate":1.5}`,
		`{"appid":"wx_a","clear":true}`,
		`{"latency_ms":1e300}`,
		`{"appid":"wx_a","http_status":503}`,
		`{"http_status":200}`,
		`{"html_error":true}`,
		`{"appid":"wx_a","errcode":48001}`,
		`{"errcode":0}`,
		`{"appid":"wx_a","reset_after_issue_rate":1}`,
		`{"reset_after_issue_rate":2}`,
	}
	stables := []string{
		`{"grant_type":"client_credential","appid":"wx_a","secret":"secret_a"}`,
		`{"grant_type":"client_credential","appid":"wx_a","secret":"secret_a","force_refresh":true}`,
		`{"grant_type":"client_credential","appid":"wx_a","secret":"wrong"}`,
		`{"grant_type":"password","appid":"wx_a","secret":"secret_a"}`,
		`{"grant_type":"client_credential","appid":"wx_b","secret":"secret_a"}`,
		`{"grant_type":"client_credential","appid":"wx_a"}`,
		`{"grant_type":"client_credential","secret":"secret_a"}`,
		`{"force_refresh":"yes"}`,
		``,
	}
	for i, s := range stables {
		f.Add([]byte(accounts[i%len(accounts)]), []byte(faults[0]), []byte(s))
	}
	for i, a := range accounts {
		f.Add([]byte(a), []byte(faults[i%len(faults)]), []byte(stables[0]))
	}
	for _, x := range faults {
		f.Add([]byte(accounts[0]), []byte(x), []byte(stables[1]))
	}

	f.Fuzz(func(t *testing.T, accountBody, faultsBody, stableBody []byte) {
		sim := New(Config{Now: func() time.Time { return fuzzClock }, Component: ComponentConfig{TicketInterval: -1}})

		status, body := fuzzSimPost(t, sim, "/sim/accounts", accountBody)
		created := status == http.StatusOK || status == http.StatusCreated
		if created {
			var out map[string]json.RawMessage
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatalf("POST /sim/accounts %q answered %d with %q, not an object: %v", accountBody, status, body, err)
			}
			for _, secret := range []string{"secret", "callback_token", "encoding_aes_key"} {
				if _, ok := out[secret]; ok {
					t.Fatalf("POST /sim/accounts %q answered the %s: %s", accountBody, secret, body)
				}
			}
		}

		fuzzSimPost(t, sim, "/sim/faults", faultsBody)

		var acct Account
		var req stableRequest
		_ = json.Unmarshal(accountBody, &acct)
		_ = json.Unmarshal(stableBody, &req)
		f := sim.world.Load().faults.forApp(req.AppID)
		status, header, body := fuzzPost(t, sim, pathStableToken, stableBody)
		switch {
		case status == 0:
			return // the connection was dropped by an injected fault
		case f != nil && f.HTTPStatus == status:
			return // the injected HTTP status fault
		case f != nil && f.HTMLError && status == http.StatusOK && strings.HasPrefix(header.Get("Content-Type"), "text/html"):
			return // the injected HTML error fault
		case status != http.StatusOK:
			t.Fatalf("POST %s answered HTTP %d; WeChat errors are HTTP 200 with an errcode: %s", pathStableToken, status, body)
		}
		requireOneJSON(t, pathStableToken, stableBody, status, body)
		var ans struct {
			ErrCode     int    `json:"errcode"`
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		}
		if err := json.Unmarshal(body, &ans); err != nil {
			t.Fatalf("POST %s answered %q: %v", pathStableToken, body, err)
		}
		if ans.ErrCode != 0 {
			if ans.AccessToken != "" {
				t.Fatalf("POST %s answered errcode %d with a token: %s", pathStableToken, ans.ErrCode, body)
			}
			return
		}
		// A token: the request must name the account the first body created,
		// with its secret.
		switch {
		case ans.AccessToken == "" || ans.ExpiresIn <= 0:
			t.Fatalf("POST %s succeeded without a usable token: %s", pathStableToken, body)
		case !created:
			t.Fatalf("POST %s issued a token though no account was created: %s", pathStableToken, body)
		case req.GrantType != grantClientCredential || req.AppID != acct.AppID || req.Secret == "" || req.Secret != acct.Secret ||
			acct.Kind == KindComponent:
			t.Fatalf("POST %s issued a token for %+v; the account is %+v", pathStableToken, req, acct)
		}
	})
}

// fuzzPost makes one POST through sim.ServeHTTP and returns the status,
// header and body, or status 0 for a dropped connection. No request may
// panic but for a connection drop.
func fuzzPost(t *testing.T, sim *Simulator, path string, body []byte) (status int, header http.Header, answer []byte) {
	t.Helper()
	// The caller has given up already, so injected latency ends at once: the
	// simulator stops waiting then and answers. (A real wait would be slow,
	// and a race between a timer and a deadline would make coverage flaky.)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	dropped := func() (dropped bool) {
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					t.Fatalf("POST %s %q panicked: %v", path, body, v)
				}
				dropped = true
			}
		}()
		sim.ServeHTTP(rec, req)
		return false
	}()
	if dropped {
		return 0, nil, nil
	}
	res := rec.Result()
	return res.StatusCode, res.Header, rec.Body.Bytes()
}

// fuzzSimPost posts to a simulator-only endpoint, which must answer below 500
// with one JSON document.
func fuzzSimPost(t *testing.T, sim *Simulator, path string, body []byte) (status int, answer []byte) {
	t.Helper()
	status, _, answer = fuzzPost(t, sim, path, body)
	if status >= 500 || status == 0 {
		t.Fatalf("POST %s %q answered HTTP %d: %s", path, body, status, answer)
	}
	requireOneJSON(t, path, body, status, answer)
	return status, answer
}

// requireOneJSON fails unless answer is exactly one JSON document.
func requireOneJSON(t *testing.T, path string, body []byte, status int, answer []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(answer))
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		t.Fatalf("POST %s %q answered HTTP %d with %q, not one JSON document (%v)", path, body, status, answer, err)
	}
}
