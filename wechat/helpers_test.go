package wechat_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"wxhub/wechat"
)

// The secrets contain characters that change under query and JSON encoding,
// so the redaction tests also catch an echo of the encoded form.
const (
	testAppID       = "wx1234567890abcdef"
	testCorpID      = "ww1234567890abcdef"
	testSecret      = "SeCrEt/9f+b2=c0&DO-NOT-LOG"
	testAccessToken = "ACCESS_TOKEN-73_q+w/e=r&DO-NOT-LOG"
)

// apiCase is one credential call with canned arguments, so that behaviour
// every API shares is tested against all of them.
type apiCase struct {
	api string
	// secret is what the call must never reveal: the AppSecret or, for
	// getticket, the access token.
	secret string
	call   func(ctx context.Context, c *wechat.Client) (wechat.Token, error)
}

var apiCases = []apiCase{
	{
		api:    wechat.APIStableToken,
		secret: testSecret,
		call: func(ctx context.Context, c *wechat.Client) (wechat.Token, error) {
			return c.StableToken(ctx, testAppID, testSecret, false)
		},
	},
	{
		api:    wechat.APIToken,
		secret: testSecret,
		call: func(ctx context.Context, c *wechat.Client) (wechat.Token, error) {
			return c.ClassicToken(ctx, testAppID, testSecret)
		},
	},
	{
		api:    wechat.APIGetTicket,
		secret: testAccessToken,
		call: func(ctx context.Context, c *wechat.Client) (wechat.Token, error) {
			return c.Ticket(ctx, testAccessToken, "jsapi")
		},
	},
	{
		api:    wechat.APIWeComToken,
		secret: testSecret,
		call: func(ctx context.Context, c *wechat.Client) (wechat.Token, error) {
			return c.WeComToken(ctx, testCorpID, testSecret)
		},
	},
	{
		api:    wechat.APIWeComJSAPITicket,
		secret: testAccessToken,
		call: func(ctx context.Context, c *wechat.Client) (wechat.Token, error) {
			return c.WeComJSAPITicket(ctx, testAccessToken)
		},
	},
	{
		api:    wechat.APIWeComAgentTicket,
		secret: testAccessToken,
		call: func(ctx context.Context, c *wechat.Client) (wechat.Token, error) {
			return c.WeComAgentTicket(ctx, testAccessToken)
		},
	},
}

// serve starts a server running h, closed when the test ends.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// answer is a handler that writes a canned answer, as WeChat (or a proxy in
// front of it) would.
func answer(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// seenRequest is what a test server received.
type seenRequest struct {
	method      string
	path        string
	query       url.Values
	contentType string
	body        []byte
}

// recorder is a handler that records each request on a channel (the race
// detector doesn't count a socket as synchronisation) and then writes a
// canned answer.
func recorder(t *testing.T, contentType, body string) (http.HandlerFunc, <-chan seenRequest) {
	t.Helper()
	seen := make(chan seenRequest, 1)
	reply := answer(http.StatusOK, contentType, body)
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // a short body shows up in the assertions
		seen <- seenRequest{
			method:      r.Method,
			path:        r.URL.Path,
			query:       r.URL.Query(),
			contentType: r.Header.Get("Content-Type"),
			body:        b,
		}
		reply(w, r)
	}, seen
}
