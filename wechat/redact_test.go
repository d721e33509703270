package wechat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/wechat"
)

// echo writes back everything the request carried that could hold a
// secret: the URL as sent and the body. Proxies' error pages and debugging
// endpoints do exactly this.
func echo(r *http.Request) string {
	b, _ := io.ReadAll(r.Body)
	return r.URL.RequestURI() + " " + r.URL.Query().Encode() + " " + string(b)
}

// secretIn returns the secret the request carries, wherever it is.
func secretIn(r *http.Request) string {
	if s := r.URL.Query().Get("secret") + r.URL.Query().Get("corpsecret") + r.URL.Query().Get("access_token"); s != "" {
		return s
	}
	var body struct{ Secret string }
	_ = json.NewDecoder(r.Body).Decode(&body)
	return body.Secret
}

// stalling starts a server that answers only when the client gives up (or
// the test ends), so that timeouts and cancellation are what end the call.
func stalling(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		// net/http notices a client hanging up only once the body has been
		// read, so read it or r.Context() never ends.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	// Registered after serve's Close, so it runs first: Close waits for
	// handlers.
	t.Cleanup(func() { close(release) })
	return srv
}

// closedServerURL is the address of a server that is no longer listening.
func closedServerURL(t *testing.T) string {
	srv := serve(t, answer(http.StatusOK, "", ""))
	srv.Close()
	return srv.URL
}

func TestFailuresNeverRevealSecrets(t *testing.T) {
	tests := []struct {
		name string
		// client returns a client whose call will fail in the scenario's way.
		client func(t *testing.T) *wechat.Client
		// ctx bounds the call; nil means context.Background.
		ctx func(t *testing.T) context.Context
		// check asserts what the error must still tell the caller.
		check func(t *testing.T, err error)
		kind  func(api string) wechat.Kind
	}{
		{
			name:   "connection refused",
			client: func(t *testing.T) *wechat.Client { return wechat.New(closedServerURL(t), nil) },
			check: func(t *testing.T, err error) {
				require.ErrorIs(t, err, syscall.ECONNREFUSED)
				var opErr *net.OpError
				require.ErrorAs(t, err, &opErr)
				require.Regexp(t, `^wechat \w+: (Get|Post) <redacted>: dial tcp [^ ]+: connect: connection refused$`, err.Error())
			},
		},
		{
			name: "client timeout",
			client: func(t *testing.T) *wechat.Client {
				return wechat.New(stalling(t).URL, &http.Client{Timeout: 50 * time.Millisecond})
			},
			check: func(t *testing.T, err error) {
				var netErr net.Error
				require.ErrorAs(t, err, &netErr)
				require.True(t, netErr.Timeout())
				require.Contains(t, err.Error(), "<redacted>")
			},
		},
		{
			name:   "context deadline",
			client: func(t *testing.T) *wechat.Client { return wechat.New(stalling(t).URL, nil) },
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			check: func(t *testing.T, err error) {
				require.ErrorIs(t, err, context.DeadlineExceeded)
				require.Regexp(t, `^wechat \w+: (Get|Post) <redacted>: context deadline exceeded$`, err.Error())
			},
		},
		{
			name: "502 page echoing the request",
			client: func(t *testing.T) *wechat.Client {
				return wechat.New(serve(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(http.StatusBadGateway)
					fmt.Fprintf(w, "<html><body>upstream failed for %s</body></html>", echo(r))
				}).URL, nil)
			},
			check: func(t *testing.T, err error) {
				require.Regexp(t, `^wechat \w+: HTTP 502 Bad Gateway$`, err.Error())
			},
		},
		{
			name: "short 503 echoing the request",
			client: func(t *testing.T) *wechat.Client {
				return wechat.New(serve(t, func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusServiceUnavailable)
					_, _ = io.WriteString(w, "busy "+secretIn(r))
				}).URL, nil)
			},
			check: func(t *testing.T, err error) {
				// Short enough to quote, so it is quoted, with the secret cut out.
				require.Regexp(t, `^wechat \w+: HTTP 503 Service Unavailable: "busy <redacted>"$`, err.Error())
			},
		},
		{
			name: "malformed JSON echoing the request",
			client: func(t *testing.T) *wechat.Client {
				return wechat.New(serve(t, func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.WriteString(w, `{"access_token":`+echo(r))
				}).URL, nil)
			},
			check: func(t *testing.T, err error) {
				require.Contains(t, err.Error(), "malformed answer")
			},
		},
		{
			name: "errmsg echoing the request",
			client: func(t *testing.T) *wechat.Client {
				return wechat.New(serve(t, func(w http.ResponseWriter, r *http.Request) {
					msg, _ := json.Marshal("system error for " + echo(r))
					fmt.Fprintf(w, `{"errcode":-1,"errmsg":%s}`, msg)
				}).URL, nil)
			},
			check: func(t *testing.T, err error) {
				var we *wechat.Error
				require.ErrorAs(t, err, &we)
				require.Equal(t, -1, we.Code)
				require.Contains(t, we.Message, "system error for")
			},
		},
		{
			name: "redirect loop carrying the request",
			client: func(t *testing.T) *wechat.Client {
				return wechat.New(serve(t, func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, r.URL.RequestURI(), http.StatusFound)
				}).URL, nil)
			},
			check: func(t *testing.T, err error) {
				require.Contains(t, err.Error(), "stopped after 10 redirects")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, ac := range apiCases {
				t.Run(ac.api, func(t *testing.T) {
					ctx := context.Background()
					if tt.ctx != nil {
						ctx = tt.ctx(t)
					}
					_, err := ac.call(ctx, tt.client(t))
					require.Error(t, err)
					requireNoSecret(t, err, ac.secret)
					require.True(t, strings.HasPrefix(err.Error(), "wechat "+ac.api+": "), err.Error())
					require.Equal(t, wechat.KindTransient, wechat.Classify(err))
					tt.check(t, err)
				})
			}
		})
	}
}

func TestCancellationReturnsPromptly(t *testing.T) {
	for _, ac := range apiCases {
		t.Run(ac.api, func(t *testing.T) {
			// No client timeout shorter than the default 10 s: only the
			// context can end the call early.
			c := wechat.New(stalling(t).URL, nil)
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)

			start := time.Now()
			_, err := ac.call(ctx, c)
			require.Less(t, time.Since(start), 2*time.Second)
			require.ErrorIs(t, err, context.Canceled)
			requireNoSecret(t, err, ac.secret)
			require.Equal(t, wechat.KindTransient, wechat.Classify(err))
		})
	}
}

func TestCancelledContextSendsNothing(t *testing.T) {
	for _, ac := range apiCases {
		t.Run(ac.api, func(t *testing.T) {
			var calls atomic.Int32
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
			ctx, cancel := context.WithCancel(context.Background())
			cancel()

			_, err := ac.call(ctx, wechat.New(srv.URL, nil))
			require.ErrorIs(t, err, context.Canceled)
			requireNoSecret(t, err, ac.secret)
			srv.Close() // waits for handlers, so the count is final
			require.Zero(t, calls.Load(), "a call whose context is already done must not reach WeChat (it could issue a token nobody stores)")
		})
	}
}

// requireNoSecret asserts that neither err's text nor any error in its
// chain that a caller could print reveals secret, in any encoding.
func requireNoSecret(t *testing.T, err error, secret string) {
	t.Helper()
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret)}
	for e := err; e != nil; e = errors.Unwrap(e) {
		for _, form := range forms {
			require.NotContains(t, e.Error(), form)
		}
	}
	var ue *url.Error
	require.False(t, errors.As(err, &ue), "a *url.Error in the chain would hand the request URL to anyone who unwraps it")
}
