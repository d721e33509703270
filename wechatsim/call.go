package wechatsim

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"
)

// call carries one WeChat request through the steps every endpoint shares:
// attribution to an appid (for counters and faults), latency, method check,
// fault injection and answering.
type call struct {
	s      *Simulator
	wd     *world
	w      http.ResponseWriter
	r      *http.Request
	api    api
	acct   *account // nil when the request names no known appid
	faults *Faults  // faults in force for the request's appid, nil for none
}

func (s *Simulator) begin(w http.ResponseWriter, r *http.Request, x api) *call {
	return &call{s: s, wd: s.world.Load(), w: w, r: r, api: x}
}

// attribute ties the call to appid (possibly unknown or empty), counts it and
// applies injected latency. Every handler calls it exactly once, before
// answering, so every request is counted exactly once.
func (c *call) attribute(appid string) {
	c.acct = c.wd.account(appid)
	c.faults = c.wd.faults.forApp(appid)
	c.counters().call(c.api)
	if c.faults != nil && c.faults.Latency > 0 {
		sleepCtx(c.r.Context(), c.faults.Latency)
	}
}

// counters are the call's account counters, or the unattributed ones.
func (c *call) counters() *counters {
	if c.acct != nil {
		return &c.acct.stats
	}
	return &c.wd.orphan
}

// fail answers a WeChat error and counts it; under Config.CountRefusedCalls
// it also counts against the account's daily quota of the call's API.
// Callers do not hold the account's mu.
func (c *call) fail(code int) {
	c.counters().failed(c.api, code)
	now := c.s.now()
	if a := c.acct; a != nil && c.s.cfg.CountRefusedCalls && int(c.api) < numQuotaAPIs {
		a.mu.Lock()
		a.rollDay(now)
		a.used[c.api]++
		a.mu.Unlock()
	}
	writeJSON(c.w, http.StatusOK, errorBody(code, c.r, now))
}

// succeed answers a WeChat success body.
func (c *call) succeed(body any) { writeJSON(c.w, http.StatusOK, body) }

// deliver answers the success of a credential-issuing call, unless the
// reset-after-issue fault loses the answer: the credential stays issued and
// the connection is closed without a word, as when a network fails between
// WeChat and the caller. Callers do not hold the account's mu.
func (c *call) deliver(body any) {
	if c.faults != nil && chance(c.faults.ResetAfterIssueRate) {
		c.counters().answerLost()
		dropConnection(c.w)
		return
	}
	c.succeed(body)
}

// requireMethod answers 43001/43002 as WeChat does for a wrong method.
func (c *call) requireMethod(method string) bool {
	if c.r.Method == method {
		return true
	}
	if method == http.MethodPost {
		c.fail(CodeRequirePOST)
	} else {
		c.fail(CodeRequireGET)
	}
	return false
}

// injectFaults applies the faults of a credential-issuing call that refuse
// it (see Faults for the order) and reports whether it answered (or dropped)
// the call. The quota fault is checked later, with the real quota, so it
// keeps the same precedence as a real 45009.
func (c *call) injectFaults() bool {
	f := c.faults
	switch {
	case f == nil:
		return false
	case chance(f.DropRate):
		c.counters().drop()
		dropConnection(c.w)
	case chance(f.BusyRate):
		c.fail(CodeBusy)
	case f.HTTPStatus != 0:
		writeHTTPError(c.w, f.HTTPStatus)
	case f.HTMLError:
		writeHTMLError(c.w)
	case f.ErrCode != 0:
		c.fail(f.ErrCode)
	case f.IPNotWhitelisted:
		c.fail(CodeIPNotWhitelisted)
	default:
		return false
	}
	return true
}

// quotaExhausted reports the quota fault.
func (c *call) quotaExhausted() bool { return c.faults != nil && c.faults.QuotaExhausted }

// useToken checks the access_token query parameter of a call that needs one,
// the way WeChat would at this instant, and counts the use. It attributes the
// call to the token's appid. With faults, the credential faults are injected
// before the token is checked (getticket issues a credential). It answers the
// call itself unless it returns ok.
func (c *call) useToken(method string, faults bool) (rec *tokenRecord, ok bool) {
	tok := c.r.URL.Query().Get("access_token")
	if tok != "" {
		// WeChat does not know WeCom's tokens: they are served under WeComPrefix.
		if rec = c.wd.tokens.get(tok); rec != nil && rec.kind == kindWeCom {
			rec = nil
		}
	}
	appid := ""
	if rec != nil {
		appid = rec.acct.appid
	}
	c.attribute(appid)
	if !c.requireMethod(method) {
		return nil, false
	}
	switch {
	case tok == "":
		c.counters().use(CodeMissingAccessToken)
		c.fail(CodeMissingAccessToken)
		return nil, false
	case rec == nil:
		// Unknown, forged or long-forgotten tokens: WeChat says 40001.
		c.counters().use(CodeInvalidCredential)
		c.fail(CodeInvalidCredential)
		return nil, false
	case rec.kind == kindComponent:
		// A component_access_token is only for the component APIs.
		c.counters().use(CodeNeedsAccountToken)
		c.fail(CodeNeedsAccountToken)
		return nil, false
	}
	if faults && c.injectFaults() {
		return nil, false
	}
	a := rec.acct
	a.mu.Lock()
	code := rec.status(c.s.now())
	a.mu.Unlock()
	a.stats.use(code)
	if code != 0 {
		c.fail(code)
		return nil, false
	}
	return rec, true
}

// secretMatches compares in constant time; cheap, and it keeps the simulator
// from modelling a timing side channel WeChat does not have.
func secretMatches(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// seconds is expires_in for a remaining lifetime, rounded down as a client
// that subtracts elapsed time would expect.
func seconds(d time.Duration) int { return int(d / time.Second) }

// maxBody bounds request bodies; WeChat's credential bodies are tiny.
const maxBody = 1 << 20

var errEmptyBody = errors.New("empty body")

// readBody reads a bounded request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b), nil
}

// decodeJSONBody reads a JSON object body into v.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return errEmptyBody
	}
	return json.Unmarshal(b, v)
}

// formOrJSON reads parameters from the query string and from a body that is
// either a JSON object or URL-encoded, so clients may send either.
func formOrJSON(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	vals := r.URL.Query()
	b, err := readBody(w, r)
	if err != nil || len(b) == 0 {
		return vals, err
	}
	if b[0] == '{' {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return vals, err
		}
		for k, v := range m {
			if s, ok := v.(string); ok {
				vals.Set(k, s)
			}
		}
		return vals, nil
	}
	body, err := url.ParseQuery(string(b))
	if err != nil {
		return vals, err
	}
	for k, v := range body {
		vals[k] = v
	}
	return vals, nil
}
