package wechat

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// API names, used as Error.API, for quota counting and as metrics labels.
// They are WeChat's own names for the endpoints so that a number in wxhub's
// upstream_calls table can be compared with WeChat's quota tools directly.
const (
	// APIStableToken is POST /cgi-bin/stable_token.
	APIStableToken = "stable_token"
	// APIToken is the classic GET /cgi-bin/token.
	APIToken = "token"
	// APIGetTicket is GET /cgi-bin/ticket/getticket.
	APIGetTicket = "getticket"
	// APIWeComToken is WeCom's GET /cgi-bin/gettoken.
	APIWeComToken = "wecom_gettoken"
	// APIWeComJSAPITicket is WeCom's GET /cgi-bin/get_jsapi_ticket, the corp's ticket.
	APIWeComJSAPITicket = "wecom_get_jsapi_ticket"
	// APIWeComAgentTicket is WeCom's GET /cgi-bin/ticket/get?type=agent_config, an app's ticket.
	APIWeComAgentTicket = "wecom_agent_ticket"
)

// defaultTimeout bounds a call when the caller supplies no http.Client: a
// refresh worker holds a claim on the credential while it waits, so a hung
// upstream must not hold it for ever even if the caller's context has no
// deadline.
const defaultTimeout = 10 * time.Second

// maxAnswerBytes caps how much of an answer is read. WeChat's credential
// answers are well under 1 KiB (a token is at most 512 characters); the cap
// keeps a misbehaving proxy or a huge error page from costing memory.
const maxAnswerBytes = 64 << 10

// maxSnippetBytes is the longest non-2xx body quoted in an error. Longer
// bodies are HTML error pages or stack traces: noise in a log line, and the
// more text we quote the more likely it echoes the request.
const maxSnippetBytes = 128

// maxExpiresIn is the largest expires_in (seconds) that fits a time.Duration.
// A larger value can only be a corrupted answer.
const maxExpiresIn = math.MaxInt64 / int64(time.Second)

// Client calls WeChat's credential APIs at a base URL
// (https://api.weixin.qq.com in production, the simulator's address in
// tests). It holds no credentials itself, so one Client serves every account,
// and it is safe for concurrent use.
type Client struct {
	base    *url.URL
	baseErr error
	http    *http.Client
}

// New returns a Client for baseURL, which may carry a path prefix (a
// simulator mounted under /wechat, say). A nil httpClient means a client with
// a 10 s timeout; callers that pass their own should set a timeout too.
//
// New does not fail: an unusable baseURL is a deployment mistake, reported
// by every call as an error that Classify calls KindBug, so that it surfaces
// where wxhub already reports refresh failures.
func New(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: defaultTimeout}
	}
	c := &Client{http: httpClient}
	c.base, c.baseErr = parseBaseURL(baseURL)
	return c
}

// parseBaseURL accepts http(s)://host[/path] and nothing else: a query or
// fragment on the base would silently be dropped or mangled by every call.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("base URL %q: want http(s)://host[/path]", u.Redacted())
	}
	return u, nil
}

// Token is a credential WeChat issued and how long it lives from the moment
// WeChat answered. ExpiresIn is WeChat's expires_in, never a constant:
// WeChat says 7200 s "currently", stable_token answers the remaining lifetime
// of the current token, and the simulator issues one-minute tokens.
type Token struct {
	// Value is the access token or ticket, as WeChat sent it.
	Value string
	// ExpiresIn is the lifetime WeChat announced, counted from its answer.
	ExpiresIn time.Duration
}

// StableToken fetches an access token from POST /cgi-bin/stable_token. In
// normal mode (forceRefresh false) WeChat returns the current token while it
// is valid, so a retry after a crash gets the same token back instead of
// killing it; that is why wxhub prefers this endpoint. forceRefresh issues a
// new token and starts the old one's five-minute countdown: only for a
// leaked token, at most 20 times a day.
func (c *Client) StableToken(ctx context.Context, appid, secret string, forceRefresh bool) (Token, error) {
	body := struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}{"client_credential", appid, secret, forceRefresh}
	return c.call(ctx, request{
		api:     APIStableToken,
		method:  http.MethodPost,
		path:    "cgi-bin/stable_token",
		body:    body,
		secrets: []string{secret},
		field:   "access_token",
	})
}

// ClassicToken fetches an access token from GET /cgi-bin/token. Every call
// issues a new token and the previous one dies five minutes later, so the
// caller must store the result before anyone else can use the old one.
func (c *Client) ClassicToken(ctx context.Context, appid, secret string) (Token, error) {
	return c.call(ctx, request{
		api:    APIToken,
		method: http.MethodGet,
		path:   "cgi-bin/token",
		query: url.Values{
			"grant_type": {"client_credential"},
			"appid":      {appid},
			"secret":     {secret},
		},
		secrets: []string{secret},
		field:   "access_token",
	})
}

// Ticket fetches a ticket of ticketType ("jsapi" or "wx_card") from
// GET /cgi-bin/ticket/getticket with a valid access token. Tickets are
// scarce, so wxhub caches them centrally like tokens.
func (c *Client) Ticket(ctx context.Context, accessToken, ticketType string) (Token, error) {
	return c.call(ctx, request{
		api:    APIGetTicket,
		method: http.MethodGet,
		path:   "cgi-bin/ticket/getticket",
		query: url.Values{
			"access_token": {accessToken},
			"type":         {ticketType},
		},
		secrets: []string{accessToken},
		field:   "ticket",
	})
}

// request describes one credential call.
type request struct {
	api     string
	method  string
	path    string
	query   url.Values
	body    any      // JSON-encoded when non-nil
	secrets []string // values that must never appear in an error
	field   string   // the answer field holding the credential
}

// answer is the union of the credential answers' fields. The token
// endpoints answer success without an errcode field and getticket answers
// errcode 0, so an absent errcode and 0 both mean success (exchange checks it).
type answer struct {
	AccessToken string `json:"access_token"`
	Ticket      string `json:"ticket"`
	ExpiresIn   int64  `json:"expires_in"`
	// ComponentAccessToken is a third-party platform's token (api_component_token).
	ComponentAccessToken string `json:"component_access_token"`
	// PreAuthCode is a platform's pre-authorization code (api_create_preauthcode).
	PreAuthCode string `json:"pre_auth_code"`
}

// call performs rq and turns every outcome into a Token or an error that is
// safe to log and that Classify understands.
func (c *Client) call(ctx context.Context, rq request) (Token, error) {
	var a answer
	red, err := c.exchange(ctx, rq, &a)
	if err != nil {
		return Token{}, err
	}
	value := a.AccessToken
	switch rq.field {
	case "ticket":
		value = a.Ticket
	case "component_access_token":
		value = a.ComponentAccessToken
	case "pre_auth_code":
		value = a.PreAuthCode
	}
	return checkToken(rq, red, value, a.ExpiresIn)
}

// checkToken makes the Token of an answer, or the failure saying what the answer lacks.
func checkToken(rq request, red redactor, value string, expiresIn int64) (Token, error) {
	switch {
	case value == "":
		return Token{}, newFailure(rq.api, KindTransient, "malformed answer: no "+rq.field, nil, red)
	case expiresIn <= 0 || expiresIn > maxExpiresIn:
		return Token{}, newFailure(rq.api, KindTransient, fmt.Sprintf("malformed answer: expires_in %d", expiresIn), nil, red)
	}
	return Token{Value: value, ExpiresIn: time.Duration(expiresIn) * time.Second}, nil
}

// exchange performs rq and decodes a success answer into out. Every other outcome is an
// error: WeChat's errcode as an *Error, anything else as a failure with its Kind. It
// returns the call's redactor, for errors its caller makes about the answer.
func (c *Client) exchange(ctx context.Context, rq request, out any) (redactor, error) {
	red := newRedactor(rq.secrets...)
	if c.baseErr != nil {
		// The base URL holds no secret of this call: nothing to redact.
		return red, newFailure(rq.api, KindBug, "invalid base URL", c.baseErr, nil)
	}
	u := c.base.JoinPath(rq.path)
	u.RawQuery = rq.query.Encode()

	var body io.Reader
	if rq.body != nil {
		b, err := json.Marshal(rq.body)
		if err != nil {
			return red, newFailure(rq.api, KindBug, "encode request", err, red)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, u.String(), body)
	if err != nil {
		return red, newFailure(rq.api, KindBug, "build request", err, red)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	} else {
		// Every credential call issues a value, so it must never be sent twice: net/http
		// resends a GET on its own when a reused connection breaks before the answer, and
		// the second classic token would kill the stored one at once. It never resends a
		// request whose body cannot be replayed; an empty one still goes without a body.
		req.Body = io.NopCloser(strings.NewReader(""))
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return red, newFailure(rq.api, KindTransient, "", err, red)
	}
	defer resp.Body.Close()
	// Reading to EOF (within the cap) lets the connection be reused.
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return red, newFailure(rq.api, KindTransient, "read answer", err, red)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := "HTTP " + resp.Status
		if s := snippet(data, red); s != "" {
			msg += fmt.Sprintf(": %q", s)
		}
		return red, newFailure(rq.api, KindTransient, msg, nil, red)
	}
	if len(data) > maxAnswerBytes {
		return red, newFailure(rq.api, KindTransient, fmt.Sprintf("malformed answer: longer than %d bytes", maxAnswerBytes), nil, red)
	}
	// WeChat sometimes labels JSON text/plain, so the Content-Type is ignored.
	var status struct {
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if err := json.Unmarshal(data, &status); err != nil {
		return red, newFailure(rq.api, KindTransient, "malformed answer", err, red)
	}
	if status.ErrCode != 0 {
		return red, &Error{API: rq.api, Code: status.ErrCode, Message: red.apply(status.ErrMsg)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return red, newFailure(rq.api, KindTransient, "malformed answer", err, red)
	}
	return red, nil
}

// snippet returns a non-2xx body worth quoting in an error: short, one line
// of printable text, no markup and no URL (a proxy's error page may echo the
// request URL, secret and all). Anything else is dropped: the status code is
// what the worker and the operator need.
func snippet(data []byte, red redactor) string {
	s := strings.TrimSpace(string(data))
	if s == "" || len(s) > maxSnippetBytes || !utf8.ValidString(s) ||
		strings.ContainsAny(s, "<>?") || strings.Contains(s, "://") {
		return ""
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return ""
		}
	}
	return red.apply(s)
}

// failure is every error of a call that is not an answer from WeChat:
// transport errors, timeouts, cancellation, non-2xx statuses, malformed
// answers and our own mistakes. It carries its Kind so that Classify need
// not guess, and its text is redacted when it is made.
type failure struct {
	api   string
	kind  Kind
	text  string // redacted, without the "wechat <api>: " prefix
	cause error
}

// newFailure builds a failure. A *url.Error cause is replaced by what it
// wraps, because its text (and anything a caller prints after errors.As)
// holds the request URL; its Op stays in the text as "Get <redacted>" so a
// log line still says what was being done. The cause's own text is scrubbed
// of the call's secrets as a second line of defence.
func newFailure(api string, kind Kind, msg string, cause error, red redactor) *failure {
	var ue *url.Error
	if errors.As(cause, &ue) {
		op := ue.Op + " <redacted>"
		if msg == "" {
			msg = op
		} else {
			msg += ": " + op
		}
		cause = ue.Err
	}
	text := red.apply(msg)
	if cause != nil {
		if text != "" {
			text += ": "
		}
		text += red.apply(cause.Error())
	}
	return &failure{api: api, kind: kind, text: text, cause: cause}
}

// Error returns the redacted description, e.g.
// "wechat token: Get <redacted>: dial tcp 127.0.0.1:1: connect: connection refused".
func (f *failure) Error() string { return "wechat " + f.api + ": " + f.text }

// Unwrap keeps the cause reachable, so errors.Is(err,
// context.DeadlineExceeded) and errors.As(err, &netErr) work.
func (f *failure) Unwrap() error { return f.cause }

// redactor replaces secret values in text bound for an error string.
type redactor []string

// newRedactor covers each secret as written and in the encodings it takes in
// a query string or a JSON body, since that is how an echo would quote it.
func newRedactor(secrets ...string) redactor {
	var r redactor
	for _, s := range secrets {
		if s == "" {
			continue
		}
		r = append(r, s, url.QueryEscape(s), url.PathEscape(s))
		if j, err := json.Marshal(s); err == nil {
			r = append(r, string(j[1:len(j)-1]))
		}
	}
	// Longest first, so that replacing one form can't break the match of a
	// longer form that contains it.
	slices.SortFunc(r, func(a, b string) int {
		if c := cmp.Compare(len(b), len(a)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(r)
}

// apply returns s with every secret replaced by "<redacted>".
func (r redactor) apply(s string) string {
	for _, secret := range r {
		s = strings.ReplaceAll(s, secret, "<redacted>")
	}
	return s
}
