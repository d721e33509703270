package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"wxhub/server"
	"wxhub/wechatsim"
)

// Outcome is what one request of a simulated application server came to.
type Outcome string

// Outcomes of a request: a credential that worked, one WeChat rejected while wxhub still
// promised it, one WeChat rejected only after the expires_at wxhub gave (the use was slowed
// past it), a 503 from the API node, any other answer from it, a node that could not be
// reached (the application server then tries another one, as a load balancer would), and a
// credential that was never used (the campaign ended first, or WeChat could not be reached).
const (
	Accepted    Outcome = "accepted"
	Rejected    Outcome = "rejected"
	LateUse     Outcome = "rejected after its expires_at"
	Unavailable Outcome = "503 from wxhub"
	OtherStatus Outcome = "other answer from wxhub"
	Unreachable Outcome = "node unreachable"
	NotUsed     Outcome = "not used"
)

// Request is what an application server asked wxhub for.
type Request string

// The requests application servers make.
const (
	TokenRequest  Request = "access token"
	TicketRequest Request = "jsapi ticket"
	JSSDKRequest  Request = "JS-SDK config"
)

// Use is one request of an application server to wxhub and, when wxhub handed out a
// credential, its use at WeChat: a call with the token, or the verification of a JS-SDK
// signature made with the ticket.
type Use struct {
	AppID   string
	Request Request
	// Node is the index of the API node asked.
	Node int
	// Asked and Answered bound the request to wxhub; Status is its HTTP status (0: no
	// answer) and Odd describes an answer that was not what the API documents.
	Asked, Answered time.Time
	Status          int
	Odd             string
	// Generation and ExpiresAt are what wxhub said of the credential (no expiry for a
	// JS-SDK config, which must verify at once).
	Generation int64
	ExpiresAt  time.Time
	// Held marks a use made later, at a random moment before ExpiresAt, instead of at once.
	Held bool
	// Used and UseAnswered bound the use at WeChat; ErrCode is WeChat's answer (0 accepted)
	// and Reason the simulator's reason for refusing a JS-SDK signature.
	Used, UseAnswered time.Time
	ErrCode           int
	Reason            string
}

// Outcome classifies the use.
func (u Use) Outcome() Outcome {
	switch {
	case u.Status == 0:
		return Unreachable
	case u.Status == http.StatusServiceUnavailable:
		return Unavailable
	case u.Status != http.StatusOK:
		return OtherStatus
	case u.UseAnswered.IsZero():
		return NotUsed
	case u.ErrCode == 0:
		return Accepted
	case !u.ExpiresAt.IsZero() && !u.UseAnswered.Before(u.ExpiresAt):
		return LateUse
	}
	return Rejected
}

func (u Use) rejection() string {
	if u.Reason != "" {
		return "signature not valid: " + u.Reason
	}
	return fmt.Sprintf("errcode %d", u.ErrCode)
}

// Recorder collects what the application servers saw.
type Recorder struct {
	mu   sync.Mutex
	uses []Use
	// held tracks the uses scheduled for later, so the campaign can wait for them.
	held sync.WaitGroup
}

func (r *Recorder) add(u Use) {
	r.mu.Lock()
	r.uses = append(r.uses, u)
	r.mu.Unlock()
}

// Uses returns every use recorded so far.
func (r *Recorder) Uses() []Use {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Use(nil), r.uses...)
}

// WaitHeld waits until the held uses have been made, or dropped because the application
// servers' context ended.
func (r *Recorder) WaitHeld() { r.held.Wait() }

// holdShare is the share of credentials an application server keeps for later, and
// lastMoment how long before expires_at a quarter of those are used: clients that trust the
// expires_at wxhub gives until its last moment.
const (
	holdShare  = 0.25
	lastMoment = 100 * time.Millisecond
)

// RunAppServers runs n simulated application servers until ctx ends. Each takes a random
// account's token, or for accounts with a jsapi ticket sometimes the ticket or a signed
// JS-SDK config, from a random API node, and uses it on WeChat (the simulator) at once or,
// for a share, later, up to just before the expires_at wxhub gave. A token WeChat rejects is
// reported through invalidate and fetched again, as the integration guide tells app servers
// to do.
func (c *Cluster) RunAppServers(ctx context.Context, n int, pause time.Duration, rec *Recorder) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				a := c.Accounts[rand.IntN(len(c.Accounts))]
				switch {
				case len(a.Tickets) == 0 || rand.IntN(2) == 0:
					c.tokenRequest(ctx, a.AppID, rec, true)
				case rand.IntN(2) == 0:
					c.ticketRequest(ctx, a.AppID, rec)
				default:
					c.jssdkRequest(ctx, a.AppID, rec)
				}
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}()
	}
	return &wg
}

// credentialAnswer is the API's answer for a token or a ticket.
type credentialAnswer struct {
	AccessToken string    `json:"access_token"`
	Ticket      string    `json:"ticket"`
	Generation  int64     `json:"generation"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// ask sends one request to a random node, trying the others when a node cannot be reached
// (each failed node is recorded), and returns the use so far with the answer's body. ok is
// false when the answer is not a 200 (recorded already) or ctx ended.
func (c *Cluster) ask(ctx context.Context, appid string, req Request, method, path string, body any, rec *Recorder) (u Use, answer []byte, ok bool) {
	first := rand.IntN(len(c.NodeURLs))
	for k := range len(c.NodeURLs) {
		u = Use{AppID: appid, Request: req, Node: (first + k) % len(c.NodeURLs), Asked: time.Now()}
		status, b, err := c.call(ctx, u.Node, method, path, body)
		if ctx.Err() != nil {
			return u, nil, false
		}
		u.Answered, u.Status = time.Now(), status
		switch {
		case err != nil:
			u.Status = 0
			rec.add(u)
			continue
		case status == http.StatusServiceUnavailable:
			if !isProblem(b) {
				u.Odd = fmt.Sprintf("%s: 503 without a problem document: %.200s", nodeName(u.Node), b)
			}
			rec.add(u)
			return u, nil, false
		case status != http.StatusOK:
			u.Odd = fmt.Sprintf("%s %s %s for %s: %d %.300s", u.Answered.Format("15:04:05.000"), nodeName(u.Node), req, appid, status, b)
			rec.add(u)
			return u, nil, false
		}
		return u, b, true
	}
	return u, nil, false
}

// decode reads a credential answer; an undecodable one is recorded as an odd answer.
func decode(u *Use, b []byte, rec *Recorder) (credentialAnswer, bool) {
	var ans credentialAnswer
	if err := json.Unmarshal(b, &ans); err != nil || ans.ExpiresAt.IsZero() || ans.AccessToken+ans.Ticket == "" {
		u.Status, u.Odd = -1, fmt.Sprintf("%s: undecodable %s answer: %.200s", nodeName(u.Node), u.Request, b)
		rec.add(*u)
		return ans, false
	}
	u.Generation, u.ExpiresAt = ans.Generation, ans.ExpiresAt
	return ans, true
}

// useNowOrLater makes the use at once and records it, or for a share of the credentials
// leaves it to useLater; it reports whether the use was made now, and returns it.
func (c *Cluster) useNowOrLater(ctx context.Context, u Use, rec *Recorder, use func(*Use)) (Use, bool) {
	if rand.Float64() < holdShare {
		c.useLater(ctx, u, rec, use)
		return u, false
	}
	use(&u)
	rec.add(u)
	return u, true
}

// useLater runs use at a random moment before u.ExpiresAt (for a quarter of the held uses,
// just before it) and records the result, unless ctx ends first.
func (c *Cluster) useLater(ctx context.Context, u Use, rec *Recorder, use func(*Use)) {
	wait := time.Until(u.ExpiresAt) - lastMoment
	if wait <= 0 {
		use(&u)
		rec.add(u)
		return
	}
	if rand.IntN(4) != 0 {
		wait = rand.N(wait)
	}
	u.Held = true
	rec.held.Add(1)
	go func() {
		defer rec.held.Done()
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		use(&u)
		rec.add(u)
	}()
}

// tokenRequest takes appid's access token and uses it, at once or later; a token rejected
// at once is reported and fetched again once.
func (c *Cluster) tokenRequest(ctx context.Context, appid string, rec *Recorder, retry bool) {
	u, b, ok := c.ask(ctx, appid, TokenRequest, http.MethodGet, "/v1/accounts/"+appid+"/access-token", nil, rec)
	if !ok {
		return
	}
	ans, ok := decode(&u, b, rec)
	if !ok {
		return
	}
	use := func(u *Use) {
		u.Used = time.Now()
		code, err := c.SimAPI.Use(ctx, ans.AccessToken)
		if err == nil {
			u.UseAnswered, u.ErrCode = time.Now(), code
		}
	}
	u, now := c.useNowOrLater(ctx, u, rec, use)
	if !now || u.UseAnswered.IsZero() || u.ErrCode == 0 {
		return
	}
	_, _, _ = c.call(ctx, u.Node, http.MethodPost, "/v1/accounts/"+appid+"/access-token/invalidate",
		map[string]any{"access_token": ans.AccessToken, "errcode": u.ErrCode})
	if retry {
		c.tokenRequest(ctx, appid, rec, false)
	}
}

// jssdkPage is the page application servers sign JS-SDK configs for.
const jssdkPage = "https://e2e.example.com/page?from=campaign#top"

// ticketRequest takes appid's jsapi ticket and signs a page with it, at once or later, and
// has the simulator verify the signature.
func (c *Cluster) ticketRequest(ctx context.Context, appid string, rec *Recorder) {
	u, b, ok := c.ask(ctx, appid, TicketRequest, http.MethodGet, "/v1/accounts/"+appid+"/tickets/jsapi", nil, rec)
	if !ok {
		return
	}
	ans, ok := decode(&u, b, rec)
	if !ok {
		return
	}
	use := func(u *Use) {
		nonce := make([]byte, 8)
		for i := range nonce {
			nonce[i] = byte(rand.IntN(256))
		}
		ts := time.Now().Unix()
		check := wechatsim.JSSDKCheck{AppID: appid, URL: jssdkPage, NonceStr: hex.EncodeToString(nonce), Timestamp: ts}
		check.Signature = server.JSSDKSignature(ans.Ticket, check.NonceStr, ts, jssdkPage)
		c.verify(ctx, u, check)
	}
	c.useNowOrLater(ctx, u, rec, use)
}

// jssdkRequest asks wxhub to sign a page and has the simulator verify the signature at once.
func (c *Cluster) jssdkRequest(ctx context.Context, appid string, rec *Recorder) {
	u, b, ok := c.ask(ctx, appid, JSSDKRequest, http.MethodPost, "/v1/accounts/"+appid+"/jssdk-config", map[string]any{"url": jssdkPage}, rec)
	if !ok {
		return
	}
	var cfg struct {
		AppID     string `json:"appId"`
		Timestamp int64  `json:"timestamp"`
		NonceStr  string `json:"nonceStr"`
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Signature == "" {
		u.Status, u.Odd = -1, fmt.Sprintf("%s: undecodable JS-SDK config: %.200s", nodeName(u.Node), b)
		rec.add(u)
		return
	}
	c.verify(ctx, &u, wechatsim.JSSDKCheck{AppID: cfg.AppID, URL: jssdkPage, NonceStr: cfg.NonceStr, Timestamp: cfg.Timestamp, Signature: cfg.Signature})
	rec.add(u)
}

// verify has the simulator check a JS-SDK signature and records its answer in u.
func (c *Cluster) verify(ctx context.Context, u *Use, check wechatsim.JSSDKCheck) {
	u.Used = time.Now()
	valid, reason, err := c.SimAPI.VerifyJSSDK(ctx, check)
	if err != nil {
		return
	}
	u.UseAnswered = time.Now()
	if !valid {
		u.ErrCode, u.Reason = -1, reason
	}
}

// call sends one request to node i with the admin key and returns the status and body.
func (c *Cluster) call(ctx context.Context, node int, method, path string, in any) (int, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.NodeURLs[node]+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.AdminKey)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func isProblem(body []byte) bool {
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	return json.Unmarshal(body, &p) == nil && p.Status == http.StatusServiceUnavailable && p.Type != ""
}
