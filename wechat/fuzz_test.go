package wechat_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"wxhub/wechat"
)

// fuzzAnswer is what the fake WeChat of FuzzClientAnswer replies: one fuzz
// input at a time (a fuzz worker runs its inputs one after the other).
type fuzzAnswer struct {
	status int
	body   []byte
}

// FuzzClientAnswer makes a fake WeChat answer ClassicToken, StableToken and
// Ticket with arbitrary status codes and bodies (including bodies that quote
// the secret, as an echoing proxy would). The client must never panic; an
// error must never contain the AppSecret or access token of the call, in any
// of the forms it takes in a query string or JSON body; a success must carry a
// non-empty value and a positive lifetime.
func FuzzClientAnswer(f *testing.F) {
	var current atomic.Pointer[fuzzAnswer]
	// The fake WeChat is an http.Handler served in process by the client's
	// transport: a socket would add nothing the handler does not already
	// exercise, and the server's and transport's background goroutines make
	// coverage flaky, which stalls the fuzzer in minimization.
	fake := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := current.Load()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = w.Write(a.body)
	})
	// No client timeout: the in-process call cannot hang, and the timer
	// goroutine of a timeout would make coverage flaky too.
	client := wechat.New("https://api.weixin.qq.com", &http.Client{Transport: inProcess{fake}})

	bodies := []string{
		`{"access_token":"ACCESS_TOKEN","expires_in":7200}`,
		`{"errcode":0,"errmsg":"ok","ticket":"TICKET","expires_in":7200}`,
		`{"errcode":40125,"errmsg":"invalid appsecret, rid: 1"}`,
		`{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest"}`,
		`{"errcode":-1,"errmsg":"system error"}`,
		`{"access_token":"","expires_in":7200}`,
		`{"access_token":"x","expires_in":0}`,
		`{"access_token":"x","expires_in":-5}`,
		`{"access_token":"x","expires_in":9223372036854775807}`,
		`{"access_token":"x","expires_in":1e3}`,
		`{"access_token":"x","expires_in":"7200"}`,
		`{"errcode":"40001"}`,
		`{"access_token":"x"`,
		`[]`,
		`null`,
		``,
		`<html><body>502 Bad Gateway</body></html>`,
		`{"errcode":40001,"errmsg":"bad secret SeCrEt/9f+b2=c0&DO-NOT-LOG"}`,
		`{"errcode":40001,"errmsg":"bad secret SeCrEt/9f+b2=c0\u0026DO-NOT-LOG"}`,
		`{"errcode":40014,"errmsg":"token ACCESS_TOKEN-73_q+w/e=r&DO-NOT-LOG"}`,
		`upstream said secret=SeCrEt%2F9f%2Bb2%3Dc0%26DO-NOT-LOG`,
		`SeCrEt/9f+b2=c0&DO-NOT-LOG`,
		`{"access_token":"SeCrEt/9f+b2=c0&DO-NOT-LOG","expires_in":"x"}`,
	}
	for i, b := range bodies {
		f.Add(uint8(i), uint16(0), []byte(b), "")
		f.Add(uint8(i), uint16(i+1), []byte(b), "")
	}
	f.Add(uint8(2), uint16(300), []byte(`{"errcode":40001,"errmsg":"my-secret-0123456789abcdef"}`), "my-secret-0123456789abcdef")
	f.Add(uint8(0), uint16(0), []byte(`{"errmsg":"0123456789abcdef0123456789abcdef","errcode":40125}`), "0123456789abcdef0123456789abcdef")

	f.Fuzz(func(t *testing.T, which uint8, status uint16, body []byte, secret string) {
		// status 0 means 200; otherwise any code from 200 to 599 (net/http
		// servers cannot send informational codes as final answers).
		code := http.StatusOK
		if status != 0 {
			code = 200 + int(status)%400
		}
		current.Store(&fuzzAnswer{status: code, body: body})

		var (
			api   string
			tok   wechat.Token
			err   error
			field string
		)
		ctx := context.Background()
		switch which % 3 {
		case 0:
			api, field = wechat.APIStableToken, "access_token"
			secret = fuzzSecret(secret, testSecret)
			tok, err = client.StableToken(ctx, testAppID, secret, which&4 != 0)
		case 1:
			api, field = wechat.APIToken, "access_token"
			secret = fuzzSecret(secret, testSecret)
			tok, err = client.ClassicToken(ctx, testAppID, secret)
		case 2:
			api, field = wechat.APIGetTicket, "ticket"
			secret = fuzzSecret(secret, testAccessToken)
			tok, err = client.Ticket(ctx, secret, "jsapi")
		}

		if err == nil {
			if tok.Value == "" || tok.ExpiresIn <= 0 {
				t.Fatalf("%s: success with value %q and expires_in %v for HTTP %d %q", api, tok.Value, tok.ExpiresIn, code, body)
			}
			if code < 200 || code > 299 {
				t.Fatalf("%s: success for HTTP %d %q", api, code, body)
			}
			var a map[string]any
			if json.Unmarshal(body, &a) != nil {
				t.Fatalf("%s: success for a body that is not a JSON object: %q", api, body)
			}
			// encoding/json matches field names case-insensitively.
			found := false
			for k, v := range a {
				if s, ok := v.(string); ok && strings.EqualFold(k, field) && s == tok.Value {
					found = true
				}
			}
			if !found {
				t.Fatalf("%s: value %q is not the answer's %s: %q", api, tok.Value, field, body)
			}
			return
		}
		if tok != (wechat.Token{}) {
			t.Fatalf("%s: error %v with a non-zero token %+v", api, err, tok)
		}
		if k := wechat.Classify(err); k < wechat.KindTransient || k > wechat.KindBug {
			t.Fatalf("%s: Classify(%v) = %v, not a Kind", api, err, k)
		}
		// What the error says beyond its fixed "wechat <api>: [errcode N: ]"
		// prefix must be free of the secret. "<redacted>" marks are cut out
		// so that their own characters cannot be taken for the secret's.
		text := err.Error()
		var we *wechat.Error
		if errors.As(err, &we) {
			if we.API != api {
				t.Fatalf("%s: error from API %q", api, we.API)
			}
			text = we.Message
		} else {
			prefix := "wechat " + api + ": "
			if !strings.HasPrefix(text, prefix) {
				t.Fatalf("%s: error %q lacks the prefix %q", api, text, prefix)
			}
			text = strings.TrimPrefix(text, prefix)
		}
		text = strings.ReplaceAll(text, "<redacted>", "\x00")
		for _, form := range secretForms(secret) {
			if strings.Contains(text, form) {
				t.Fatalf("%s: error reveals the secret %q (as %q): %v\nHTTP %d body %q", api, secret, form, err, code, body)
			}
		}
	})
}

// inProcess is a RoundTripper that answers with a handler, without a socket.
type inProcess struct{ h http.Handler }

func (p inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		defer r.Body.Close()
	}
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, r)
	res := rec.Result()
	res.Request = r
	return res, nil
}

// fuzzSecret returns s if it can stand for a secret in the leak check, def
// otherwise. A usable secret is valid UTF-8 (JSON would replace the rest),
// free of the characters of "<redacted>"'s brackets and NUL, and long enough
// not to match ordinary words of a message by chance.
func fuzzSecret(s, def string) string {
	if len(s) < 8 || !utf8.ValidString(s) || strings.ContainsAny(s, "<>\x00") {
		return def
	}
	return s
}

// secretForms are the ways a secret appears in a request: as is, query- and
// path-escaped, and JSON-escaped. Forms shorter than 8 bytes are left out.
func secretForms(s string) []string {
	j, _ := json.Marshal(s)
	forms := []string{s, url.QueryEscape(s), url.PathEscape(s), string(j[1 : len(j)-1])}
	out := forms[:0]
	for _, f := range forms {
		if len(f) >= 8 {
			out = append(out, f)
		}
	}
	return out
}
