package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// proxyCall is what the proxy's transport needs to know of one forwarded request.
type proxyCall struct {
	appid string
	param string // the query parameter that carries the token
	token string // the token injected, wxhub's current one when the call began
	// body is the whole request body when it is small enough to send twice; replayable says
	// whether the request can be sent again (no body, or body holds it all).
	body       []byte
	replayable bool
}

type proxyCallKey struct{}

// peekLimit is the largest answer the proxy reads ahead to find WeChat's errcode: WeChat's
// JSON answers are small, and media (which may be large) is never JSON.
const peekLimit = 64 << 10

// newUpstreamTransport is the proxy's client to WeChat: bounded connect, TLS handshake and
// wait for response headers, so a stuck WeChat does not hold requests forever, while bodies
// (media) may take as long as they stream. The proxy asks WeChat for uncompressed answers
// (see newProxy) and does not decompress anything itself.
func newUpstreamTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   64,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
	}
}

// newProxy builds the reverse proxy that forwards to WeChat. It streams both bodies; its
// transport retries a call WeChat rejected for its token once, after wxhub refreshed it.
func (g *Gateway) newProxy(base http.RoundTripper) *httputil.ReverseProxy {
	log := g.s.log.With("component", "gateway")
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			call := pr.In.Context().Value(proxyCallKey{}).(*proxyCall)
			pr.SetURL(g.upstream)
			pr.Out.URL.RawQuery = withToken(pr.In.URL.RawQuery, call.param, call.token)
			// An uncompressed answer lets the transport read WeChat's errcode; the caller gets
			// the same bytes, only not gzipped.
			pr.Out.Header.Del("Accept-Encoding")
		},
		Transport: &retryTransport{g: g, base: base},
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// An error wrapped in *url.Error (as a transport built on http.Client returns it)
			// names the URL, which carries the token: log only the cause.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			if r.Context().Err() == nil {
				log.Warn("gateway: WeChat unreachable", "path", r.URL.Path, "err", err)
			}
			writeWeChat(w, wxErr(wxBusy, "WeChat did not answer"))
		},
	}
}

// withToken returns rawQuery with every param parameter replaced by one carrying token, the
// other parameters left byte for byte as the caller sent them.
func withToken(rawQuery, param, token string) string {
	parts := []string{param + "=" + url.QueryEscape(token)}
	for p := range strings.SplitSeq(rawQuery, "&") {
		key, _, _ := strings.Cut(p, "=")
		if p == "" || key == param {
			continue
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "&")
}

// serveProxy forwards any other WeChat API call to the upstream, with the account's current
// token in place of the caller's, which only tells the gateway whose call it is (see caller).
func (g *Gateway) serveProxy(w http.ResponseWriter, r *http.Request) error {
	ctx, h, err := g.caller(r)
	if err != nil {
		return err
	}
	return g.forward(ctx, w, r, h, accessTokenParam)
}

// serveComponentProxy forwards a third-party platform's call other than the token
// endpoints the gateway answers (api_create_preauthcode, api_get_authorizer_info, ...), with
// the component's current token in place of the caller's.
func (g *Gateway) serveComponentProxy(w http.ResponseWriter, r *http.Request) error {
	ctx, h, err := g.componentCaller(r)
	if err != nil {
		return err
	}
	return g.forward(ctx, w, r, h, componentTokenParam)
}

// forward sends the caller's request to WeChat with the current token of h's account in the
// query parameter param.
func (g *Gateway) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, h handedToken, param string) error {
	cred, err := g.s.credential(ctx, h.appid, "access_token", 0)
	if err != nil {
		return g.wxFromAPI(err, "")
	}
	call := &proxyCall{appid: h.appid, param: param, token: cred.Value, replayable: true}
	if r.Body != nil && r.Body != http.NoBody {
		if err := g.spool(r, call); err != nil {
			return err
		}
	}
	// The forwarded call outlives no caller: it ends when the caller hangs up.
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, proxyCallKey{}, call)))
	return nil
}

// spool reads a request body of up to retryMax bytes into memory, so the call can be sent
// again after a refresh; a larger body (or one of unknown length that turns out larger)
// streams through once, what was read put back in front of the rest.
func (g *Gateway) spool(r *http.Request, call *proxyCall) error {
	if r.ContentLength > g.retryMax {
		call.replayable = false
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, g.retryMax+1))
	if err != nil {
		return wxErr(wxDataFormat, "the request body could not be read")
	}
	if int64(len(buf)) > g.retryMax {
		call.replayable = false
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil
	}
	call.body = buf
	r.Body = io.NopCloser(bytes.NewReader(buf))
	return nil
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}

// retryTransport forwards a call, and when WeChat rejects the injected token (40001, 40014,
// 42001) does what the REST API's invalidate does for that token (compare and refresh,
// waiting a bounded time for the new value) and sends the call once more with the new token.
// Only calls whose body it holds in full are retried; the others get WeChat's answer as it
// came.
type retryTransport struct {
	g    *Gateway
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	call, _ := req.Context().Value(proxyCallKey{}).(*proxyCall)
	res, err := t.base.RoundTrip(req)
	if err != nil || call == nil || !call.replayable {
		return res, err
	}
	if !deadTokenCodes[peekErrCode(res)] {
		return res, nil
	}
	next, err := t.g.s.invalidate(req.Context(), call.appid, call.token)
	if err != nil || next.Value == call.token {
		// No new token within the wait: the caller gets WeChat's rejection, as it would
		// from WeChat, and its SDK's own retry comes back here.
		return res, nil
	}
	_ = res.Body.Close()
	t.g.metrics.retries.Inc()
	retry := req.Clone(req.Context())
	retry.URL.RawQuery = withToken(req.URL.RawQuery, call.param, next.Value)
	retry.Body = http.NoBody
	if call.body != nil {
		retry.Body = io.NopCloser(bytes.NewReader(call.body))
	}
	return t.base.RoundTrip(retry)
}

// peekErrCode reads ahead in an answer that may be WeChat's JSON (not compressed, small) for
// its errcode, and puts what it read back in front of the rest of the body. It returns 0
// when the answer has no errcode it could see.
func peekErrCode(res *http.Response) int {
	ct := res.Header.Get("Content-Type")
	if !strings.Contains(ct, "json") && !strings.HasPrefix(ct, "text/plain") || res.Header.Get("Content-Encoding") != "" ||
		res.ContentLength > peekLimit {
		return 0
	}
	buf, err := io.ReadAll(io.LimitReader(res.Body, peekLimit+1))
	res.Body = readCloser{io.MultiReader(bytes.NewReader(buf), res.Body), res.Body}
	if err != nil || len(buf) > peekLimit {
		return 0
	}
	var e struct {
		ErrCode int `json:"errcode"`
	}
	if json.Unmarshal(buf, &e) != nil {
		return 0
	}
	return e.ErrCode
}
