package wechat_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/wechat"
)

func TestStableTokenSendsDocumentedRequest(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(map[bool]string{false: "normal mode", true: "force mode"}[force], func(t *testing.T) {
			h, seen := recorder(t, "application/json", `{"access_token":"AT-stable","expires_in":6500}`)
			c := wechat.New(serve(t, h).URL, nil)

			tok, err := c.StableToken(context.Background(), testAppID, testSecret, force)
			require.NoError(t, err)
			require.Equal(t, wechat.Token{Value: "AT-stable", ExpiresIn: 6500 * time.Second}, tok)

			r := <-seen
			require.Equal(t, http.MethodPost, r.method)
			require.Equal(t, "/cgi-bin/stable_token", r.path)
			require.Empty(t, r.query, "the secret belongs in the body, not the URL")
			require.Equal(t, "application/json", r.contentType)
			var body map[string]any
			require.NoError(t, json.Unmarshal(r.body, &body))
			// force_refresh must be sent even when false: the field is part of
			// the documented request, and its absence must not be left to
			// WeChat's default.
			require.Equal(t, map[string]any{
				"grant_type":    "client_credential",
				"appid":         testAppID,
				"secret":        testSecret,
				"force_refresh": force,
			}, body)
		})
	}
}

func TestClassicTokenSendsDocumentedRequest(t *testing.T) {
	h, seen := recorder(t, "application/json", `{"access_token":"AT-classic","expires_in":7200}`)
	c := wechat.New(serve(t, h).URL, nil)

	tok, err := c.ClassicToken(context.Background(), testAppID, testSecret)
	require.NoError(t, err)
	require.Equal(t, wechat.Token{Value: "AT-classic", ExpiresIn: 7200 * time.Second}, tok)

	r := <-seen
	require.Equal(t, http.MethodGet, r.method)
	require.Equal(t, "/cgi-bin/token", r.path)
	require.Equal(t, url.Values{
		"grant_type": {"client_credential"},
		"appid":      {testAppID},
		"secret":     {testSecret},
	}, r.query)
	require.Empty(t, r.body)
}

func TestTicketSendsDocumentedRequest(t *testing.T) {
	for _, ticketType := range []string{"jsapi", "wx_card"} {
		t.Run(ticketType, func(t *testing.T) {
			h, seen := recorder(t, "application/json", `{"errcode":0,"errmsg":"ok","ticket":"T-`+ticketType+`","expires_in":7200}`)
			c := wechat.New(serve(t, h).URL, nil)

			tok, err := c.Ticket(context.Background(), testAccessToken, ticketType)
			require.NoError(t, err)
			require.Equal(t, wechat.Token{Value: "T-" + ticketType, ExpiresIn: 7200 * time.Second}, tok)

			r := <-seen
			require.Equal(t, http.MethodGet, r.method)
			require.Equal(t, "/cgi-bin/ticket/getticket", r.path)
			require.Equal(t, url.Values{
				"access_token": {testAccessToken},
				"type":         {ticketType},
			}, r.query)
			require.Empty(t, r.body)
		})
	}
}

func TestBaseURLMayCarryAPathPrefix(t *testing.T) {
	for _, suffix := range []string{"/wechat", "/wechat/"} {
		t.Run(suffix, func(t *testing.T) {
			h, seen := recorder(t, "application/json", `{"access_token":"AT","expires_in":7200}`)
			c := wechat.New(serve(t, h).URL+suffix, nil)

			_, err := c.ClassicToken(context.Background(), testAppID, testSecret)
			require.NoError(t, err)
			require.Equal(t, "/wechat/cgi-bin/token", (<-seen).path)
		})
	}
}

func TestAnswersAreParsedWhateverTheContentType(t *testing.T) {
	long := strings.Repeat("x", 512) // WeChat says to store at least 512 characters
	tests := []struct {
		name        string
		api         string
		contentType string
		body        string
		want        wechat.Token
	}{
		{"stable token without errcode", wechat.APIStableToken, "application/json; encoding=utf-8",
			`{"access_token":"AT1","expires_in":7200}`, wechat.Token{"AT1", 7200 * time.Second}},
		{"stable token labelled text/plain", wechat.APIStableToken, "text/plain",
			`{"access_token":"AT1","expires_in":7200}`, wechat.Token{"AT1", 7200 * time.Second}},
		{"stable token's remaining lifetime", wechat.APIStableToken, "application/json",
			`{"access_token":"AT1","expires_in":300}`, wechat.Token{"AT1", 300 * time.Second}},
		{"stable token without content type", wechat.APIStableToken, "",
			`{"access_token":"AT1","expires_in":7200}`, wechat.Token{"AT1", 7200 * time.Second}},
		{"classic token with a one-minute lifetime", wechat.APIToken, "application/json",
			`{"access_token":"AT2","expires_in":60}`, wechat.Token{"AT2", time.Minute}},
		{"classic token with errcode 0", wechat.APIToken, "text/plain",
			`{"errcode":0,"errmsg":"ok","access_token":"AT2","expires_in":7200}`, wechat.Token{"AT2", 7200 * time.Second}},
		{"classic token of 512 characters", wechat.APIToken, "application/json",
			`{"access_token":"` + long + `","expires_in":7200}`, wechat.Token{long, 7200 * time.Second}},
		{"classic token with fields we don't know", wechat.APIToken, "application/json",
			`{"access_token":"AT2","expires_in":7199,"scope":"x","extra":{"a":[1,2]}}`, wechat.Token{"AT2", 7199 * time.Second}},
		{"ticket", wechat.APIGetTicket, "application/json",
			`{"errcode":0,"errmsg":"ok","ticket":"T1","expires_in":7200}`, wechat.Token{"T1", 7200 * time.Second}},
		{"ticket labelled text/plain with whitespace", wechat.APIGetTicket, "text/plain; charset=utf-8",
			"\n{\"errcode\":0,\"errmsg\":\"ok\",\"ticket\":\"T1\",\"expires_in\":90}\n", wechat.Token{"T1", 90 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := wechat.New(serve(t, answer(http.StatusOK, tt.contentType, tt.body)).URL, nil)
			tok, err := callAPI(t, tt.api)(context.Background(), c)
			require.NoError(t, err)
			require.Equal(t, tt.want, tok)
		})
	}
}

func TestMalformedAnswersAreTransient(t *testing.T) {
	tests := []struct {
		name string
		api  string
		body string
		want string // in the error text
	}{
		{"empty access_token", wechat.APIStableToken, `{"access_token":"","expires_in":7200}`, "malformed answer: no access_token"},
		{"missing access_token", wechat.APIToken, `{"expires_in":7200}`, "malformed answer: no access_token"},
		{"access_token where a ticket belongs", wechat.APIGetTicket, `{"errcode":0,"access_token":"T","expires_in":7200}`, "malformed answer: no ticket"},
		{"errcode 0 without a ticket", wechat.APIGetTicket, `{"errcode":0,"errmsg":"ok"}`, "malformed answer: no ticket"},
		{"zero expires_in", wechat.APIToken, `{"access_token":"AT","expires_in":0}`, "malformed answer: expires_in 0"},
		{"negative expires_in", wechat.APIStableToken, `{"access_token":"AT","expires_in":-5}`, "malformed answer: expires_in -5"},
		{"missing expires_in", wechat.APIGetTicket, `{"errcode":0,"ticket":"T"}`, "malformed answer: expires_in 0"},
		{"expires_in beyond a Duration", wechat.APIToken, `{"access_token":"AT","expires_in":9223372036854775807}`, "malformed answer: expires_in"},
		{"expires_in as a string", wechat.APIToken, `{"access_token":"AT","expires_in":"7200"}`, "malformed answer"},
		{"not JSON", wechat.APIToken, `ok`, "malformed answer"},
		{"HTML with status 200", wechat.APIStableToken, `<html><body>Welcome</body></html>`, "malformed answer"},
		{"truncated JSON", wechat.APIGetTicket, `{"errcode":0,"ticket":"T","expi`, "malformed answer"},
		{"empty body", wechat.APIToken, ``, "malformed answer"},
		{"JSON array", wechat.APIToken, `[]`, "malformed answer"},
		{"larger than 64 KiB", wechat.APIToken, `{"access_token":"AT","expires_in":7200}` + strings.Repeat(" ", 64<<10), "malformed answer: longer than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := wechat.New(serve(t, answer(http.StatusOK, "application/json", tt.body)).URL, nil)
			tok, err := callAPI(t, tt.api)(context.Background(), c)
			require.Error(t, err)
			require.Zero(t, tok)
			require.Contains(t, err.Error(), "wechat "+tt.api+": "+tt.want)
			require.Equal(t, wechat.KindTransient, wechat.Classify(err))
			var we *wechat.Error
			require.False(t, errors.As(err, &we), "a malformed answer is not WeChat's error answer")
		})
	}
}

func TestHTTPErrorStatusesAreTransient(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        string // the whole error text after "wechat <api>: "
	}{
		{"502 with an HTML page", http.StatusBadGateway, "text/html",
			"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", `HTTP 502 Bad Gateway`},
		{"500 without a body", http.StatusInternalServerError, "", "", `HTTP 500 Internal Server Error`},
		{"503 with a short reason", http.StatusServiceUnavailable, "text/plain", "upstream overloaded\n", `HTTP 503 Service Unavailable: "upstream overloaded"`},
		{"404", http.StatusNotFound, "text/plain", "404 page not found", `HTTP 404 Not Found: "404 page not found"`},
		{"429", http.StatusTooManyRequests, "", "", `HTTP 429 Too Many Requests`},
		{"long body is not quoted", http.StatusBadGateway, "text/plain", strings.Repeat("stack frame\n", 40), `HTTP 502 Bad Gateway`},
		// A non-2xx status means something between us and WeChat failed, even
		// if the body looks like WeChat's: don't act on a code we can't trust.
		{"500 with a WeChat error body", http.StatusInternalServerError, "application/json", `{"errcode":40125,"errmsg":"invalid appsecret"}`,
			`HTTP 500 Internal Server Error: "{\"errcode\":40125,\"errmsg\":\"invalid appsecret\"}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, ac := range apiCases {
				t.Run(ac.api, func(t *testing.T) {
					c := wechat.New(serve(t, answer(tt.status, tt.contentType, tt.body)).URL, nil)
					_, err := ac.call(context.Background(), c)
					require.EqualError(t, err, "wechat "+ac.api+": "+tt.want)
					require.Equal(t, wechat.KindTransient, wechat.Classify(err))
				})
			}
		})
	}
}

func TestUnusableBaseURLIsABug(t *testing.T) {
	for _, base := range []string{"", "api.weixin.qq.com", "ftp://api.weixin.qq.com", "https://api.weixin.qq.com/?x=1", "http://[::1", "https://"} {
		t.Run(base, func(t *testing.T) {
			c := wechat.New(base, nil)
			for _, ac := range apiCases {
				_, err := ac.call(context.Background(), c)
				require.Error(t, err)
				require.True(t, strings.HasPrefix(err.Error(), "wechat "+ac.api+": invalid base URL"), err.Error())
				require.Equal(t, wechat.KindBug, wechat.Classify(err))
			}
		})
	}
}

func TestClientIsSafeForConcurrentUse(t *testing.T) {
	c := wechat.New(serve(t, answer(http.StatusOK, "application/json", `{"errcode":0,"access_token":"AT","ticket":"T","expires_in":7200}`)).URL, nil)
	var wg sync.WaitGroup
	errs := make(chan error, len(apiCases)*16)
	for range 16 {
		for _, ac := range apiCases {
			wg.Go(func() {
				_, err := ac.call(context.Background(), c)
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// callAPI returns the canned call for api.
func callAPI(t *testing.T, api string) func(context.Context, *wechat.Client) (wechat.Token, error) {
	t.Helper()
	for _, ac := range apiCases {
		if ac.api == api {
			return ac.call
		}
	}
	t.Fatalf("no canned call for API %q", api)
	return nil
}

func TestACallIsNeverSentTwice(t *testing.T) {
	// The server answers the first request, then on the same connection reads the second and
	// closes it without an answer, as WeChat's side of a lost connection would look: the
	// token was issued, the answer is gone.
	var mu sync.Mutex
	seen := 0
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen++
		n := seen
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"AT-1","expires_in":7200}`))
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		require.NoError(t, err)
		_ = conn.Close()
	}))
	c := wechat.New(srv.URL, nil)
	_, err := c.ClassicToken(context.Background(), testAppID, testSecret)
	require.NoError(t, err)
	_, err = c.Ticket(context.Background(), "AT-1", "jsapi")
	require.Error(t, err, "the lost answer is an error for the caller to handle")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 2, seen, "the request whose answer was lost was not sent again on a new connection")
}

func TestWeComCallsSendDocumentedRequests(t *testing.T) {
	tests := []struct {
		name      string
		call      func(c *wechat.Client) (wechat.Token, error)
		answer    string
		wantPath  string
		wantQuery url.Values
		want      wechat.Token
	}{
		{
			name: "gettoken",
			call: func(c *wechat.Client) (wechat.Token, error) {
				return c.WeComToken(context.Background(), testCorpID, testSecret)
			},
			answer:    `{"errcode":0,"errmsg":"ok","access_token":"AT-wecom","expires_in":7200}`,
			wantPath:  "/cgi-bin/gettoken",
			wantQuery: url.Values{"corpid": {testCorpID}, "corpsecret": {testSecret}},
			want:      wechat.Token{Value: "AT-wecom", ExpiresIn: 7200 * time.Second},
		},
		{
			name: "corp jsapi ticket",
			call: func(c *wechat.Client) (wechat.Token, error) {
				return c.WeComJSAPITicket(context.Background(), testAccessToken)
			},
			answer:    `{"errcode":0,"errmsg":"ok","ticket":"T-corp","expires_in":7200}`,
			wantPath:  "/cgi-bin/get_jsapi_ticket",
			wantQuery: url.Values{"access_token": {testAccessToken}},
			want:      wechat.Token{Value: "T-corp", ExpiresIn: 7200 * time.Second},
		},
		{
			name: "agent_config ticket",
			call: func(c *wechat.Client) (wechat.Token, error) {
				return c.WeComAgentTicket(context.Background(), testAccessToken)
			},
			answer:    `{"errcode":0,"errmsg":"ok","ticket":"T-agent","expires_in":7000}`,
			wantPath:  "/cgi-bin/ticket/get",
			wantQuery: url.Values{"access_token": {testAccessToken}, "type": {"agent_config"}},
			want:      wechat.Token{Value: "T-agent", ExpiresIn: 7000 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, seen := recorder(t, "application/json", tt.answer)
			tok, err := tt.call(wechat.New(serve(t, h).URL, nil))
			require.NoError(t, err)
			require.Equal(t, tt.want, tok)
			r := <-seen
			require.Equal(t, http.MethodGet, r.method)
			require.Equal(t, tt.wantPath, r.path)
			require.Equal(t, tt.wantQuery, r.query)
			require.Empty(t, r.body)
		})
	}
}
