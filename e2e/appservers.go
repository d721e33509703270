package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Outcome is what one request of a simulated application server came to.
type Outcome string

// Outcomes of a request: a token that worked, a token WeChat rejected, a 503 from the API
// node, any other answer from it, and a node that could not be reached (the application
// server then tries another one, as a load balancer would).
const (
	Accepted    Outcome = "token accepted"
	Rejected    Outcome = "token rejected"
	Unavailable Outcome = "503 from wxhub"
	OtherStatus Outcome = "other answer from wxhub"
	Unreachable Outcome = "node unreachable"
	// LateUse is a token WeChat refused because it reached WeChat after the expires_at wxhub
	// gave with it: the latency faults slow the use as well.
	LateUse Outcome = "token used after its expires_at"
)

// Rejection is one token WeChat refused.
type Rejection struct {
	At         time.Time
	AppID      string
	Node       string
	Generation int64
	ErrCode    int
}

// Recorder collects what the application servers saw, each request stamped with its time so
// it can be attributed to the fault in progress.
type Recorder struct {
	mu         sync.Mutex
	events     []event
	rejections []Rejection
	odd        []string // samples of unexpected answers
}

type event struct {
	at      time.Time
	outcome Outcome
}

func (r *Recorder) add(at time.Time, o Outcome) {
	r.mu.Lock()
	r.events = append(r.events, event{at, o})
	r.mu.Unlock()
}

func (r *Recorder) reject(x Rejection) {
	r.mu.Lock()
	r.events = append(r.events, event{x.At, Rejected})
	r.rejections = append(r.rejections, x)
	r.mu.Unlock()
}

func (r *Recorder) oddAnswer(s string) {
	r.mu.Lock()
	if len(r.odd) < 20 {
		r.odd = append(r.odd, s)
	}
	r.mu.Unlock()
}

// Count returns how many requests came to o, within [from, to) when to is non-zero.
func (r *Recorder) Count(o Outcome, from, to time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.outcome == o && !e.at.Before(from) && (to.IsZero() || e.at.Before(to)) {
			n++
		}
	}
	return n
}

// CountOutside returns how many requests since from came to o outside the windows.
func (r *Recorder) CountOutside(o Outcome, from time.Time, ws []window) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.outcome == o && !e.at.Before(from) && !within(ws, e.at) {
			n++
		}
	}
	return n
}

// Rejections returns every rejection so far.
func (r *Recorder) Rejections() []Rejection {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Rejection(nil), r.rejections...)
}

// OddAnswers returns samples of the unexpected answers.
func (r *Recorder) OddAnswers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.odd...)
}

// RunAppServers runs n simulated application servers until ctx ends. Each takes a random
// account's token from a random API node, uses it at once on WeChat (the simulator's
// get_api_domain_ip), and when WeChat rejects it, reports it through invalidate and tries
// again, as the integration guide tells app servers to do.
func (c *Cluster) RunAppServers(ctx context.Context, n int, pause time.Duration, rec *Recorder) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				a := c.Accounts[rand.IntN(len(c.Accounts))]
				c.appRequest(ctx, a.AppID, rec, true)
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}()
	}
	return &wg
}

type tokenAnswer struct {
	AccessToken string    `json:"access_token"`
	Generation  int64     `json:"generation"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// appRequest does one get-and-use round for appid, retrying once after a rejection.
func (c *Cluster) appRequest(ctx context.Context, appid string, rec *Recorder, retry bool) {
	first := rand.IntN(len(c.NodeURLs))
	for k := range len(c.NodeURLs) {
		node := (first + k) % len(c.NodeURLs)
		status, body, err := c.get(ctx, c.NodeURLs[node]+"/v1/accounts/"+appid+"/access-token")
		if ctx.Err() != nil {
			return
		}
		at := time.Now()
		switch {
		case err != nil:
			rec.add(at, Unreachable)
			continue
		case status == http.StatusServiceUnavailable:
			rec.add(at, Unavailable)
			if !isProblem(body) {
				rec.oddAnswer(fmt.Sprintf("%s: 503 without a problem document: %.200s", c.Nodes[node].Name, body))
			}
			return
		case status != http.StatusOK:
			rec.add(at, OtherStatus)
			rec.oddAnswer(fmt.Sprintf("%s %s: %d %.300s", at.Format("15:04:05.000"), c.Nodes[node].Name, status, body))
			return
		}
		var tok tokenAnswer
		if err := json.Unmarshal(body, &tok); err != nil {
			rec.add(at, OtherStatus)
			rec.oddAnswer(fmt.Sprintf("%s: undecodable token answer: %v", c.Nodes[node].Name, err))
			return
		}
		code, err := c.SimAPI.Use(ctx, tok.AccessToken)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			rec.oddAnswer(fmt.Sprintf("using a token failed: %v", err))
			return
		}
		switch now := time.Now(); {
		case code == 0:
			rec.add(now, Accepted)
			return
		case !now.Before(tok.ExpiresAt):
			rec.add(now, LateUse)
		default:
			rec.reject(Rejection{At: now, AppID: appid, Node: c.Nodes[node].Name, Generation: tok.Generation, ErrCode: code})
		}
		_, _ = c.API(ctx, node, http.MethodPost, "/v1/accounts/"+appid+"/access-token/invalidate",
			map[string]any{"access_token": tok.AccessToken, "errcode": code}, nil)
		if retry {
			c.appRequest(ctx, appid, rec, false)
		}
		return
	}
}

func (c *Cluster) get(ctx context.Context, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.AdminKey)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func isProblem(body []byte) bool {
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	return json.Unmarshal(body, &p) == nil && p.Status == http.StatusServiceUnavailable && p.Type != ""
}
