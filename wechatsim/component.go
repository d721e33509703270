package wechatsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"wxhub/wechat/callback"
)

// Defaults of ComponentConfig. They are WeChat's documented values.
const (
	// DefaultTicketInterval is how often WeChat pushes a
	// component_verify_ticket ("every 10 minutes").
	DefaultTicketInterval = 10 * time.Minute
	// DefaultTicketTTL is how long a verify ticket is valid ("12 hours").
	DefaultTicketTTL = 12 * time.Hour
	// DefaultPreAuthCodeTTL is the lifetime of a pre_auth_code: 600 s in
	// WeChat's examples (some text says 1800; the shorter is the strict one).
	DefaultPreAuthCodeTTL = 600 * time.Second
	// DefaultAuthCodeTTL is the lifetime of an authorization code: WeChat's
	// example event has AuthorizationCodeExpiredTime = CreateTime + 3600.
	DefaultAuthCodeTTL = time.Hour
	// DefaultPushTimeout bounds one push: WeChat drops a callback that does
	// not answer within 5 seconds.
	DefaultPushTimeout = 5 * time.Second
)

// The third-party platform's error codes, from WeChat's global return code
// list (全局返回码说明, developers.weixin.qq.com/doc/oplatform/Return_codes/
// Return_code_descriptions_new.html) and the error tables of the component
// APIs' pages.
const (
	// CodeNotAuthorized: "component is not authorized by this account", the
	// answer for an authorizer that revoked the component (or never
	// authorized it), on api_authorizer_token and api_get_authorizer_info.
	CodeNotAuthorized = 61003
	// CodeTicketExpired: "component ticket is expired".
	CodeTicketExpired = 61005
	// CodeTicketInvalid: "component ticket is invalid".
	CodeTicketInvalid = 61006
	// CodeAuthCodeInvalid: "code is invalid", an authorization code that is
	// unknown or already used.
	CodeAuthCodeInvalid = 61009
	// CodeAuthCodeExpired: "code is expired".
	CodeAuthCodeExpired = 61010
	// CodeInvalidComponent: "invalid component", listed by
	// api_component_token's page; answered for an appid that is not a
	// component.
	CodeInvalidComponent = 61011
	// CodeNeedsComponentToken: "must use component token for component
	// api", an account's token presented as component_access_token.
	CodeNeedsComponentToken = 61014
	// CodeNeedsAccountToken: "must use biz account token for not component
	// api", a component_access_token presented to an account's API.
	CodeNeedsAccountToken = 61015
	// CodeRefreshTokenInvalid: "refresh_token is invalid", an authorizer
	// refresh token that is not the authorization's current one.
	CodeRefreshTokenInvalid = 61023
	// CodeUseComponentTokenAPI: "must use api(api_component_token) to get
	// token for component acct", the answer of token and stable_token for a
	// component's appid.
	CodeUseComponentTokenAPI = 61024
)

// ComponentConfig holds the settings of the third-party platform flow. Zero
// fields take the defaults above.
type ComponentConfig struct {
	// TicketInterval is how often each component with a callback URL gets a
	// new component_verify_ticket pushed, the first at once. It runs in real
	// time (tests use seconds); the tickets' validity follows Config.Now.
	// Negative turns automatic pushes off: tests push with PushVerifyTicket.
	TicketInterval time.Duration
	// TicketTTL is how long after its push api_component_token accepts a
	// ticket (61005 after that). Every pushed ticket stays valid for its
	// own TTL, the latest and the earlier ones.
	TicketTTL time.Duration
	// PreAuthCodeTTL is the lifetime of a pre_auth_code.
	PreAuthCodeTTL time.Duration
	// AuthCodeTTL is the lifetime of the authorization code an authorized
	// or updateauthorized event carries.
	AuthCodeTTL time.Duration
	// KeepRefreshToken makes api_authorizer_token answer with the refresh
	// token it was given. False (the default) rotates it: every call issues
	// a new refresh token and the previous one stops working at once
	// (61023), so a refresher that loses the answer, or does not persist
	// it, loses the merchant. WeChat tells callers to always store the
	// returned token; the rotation is the strictest reading of that.
	KeepRefreshToken bool
	// CallbackClient sends the pushes. Nil means a client with a
	// DefaultPushTimeout timeout.
	CallbackClient *http.Client
}

// withDefaults fills zero fields.
func (c ComponentConfig) withDefaults() ComponentConfig {
	if c.TicketInterval == 0 {
		c.TicketInterval = DefaultTicketInterval
	}
	if c.TicketTTL <= 0 {
		c.TicketTTL = DefaultTicketTTL
	}
	if c.PreAuthCodeTTL <= 0 {
		c.PreAuthCodeTTL = DefaultPreAuthCodeTTL
	}
	if c.AuthCodeTTL <= 0 {
		c.AuthCodeTTL = DefaultAuthCodeTTL
	}
	if c.CallbackClient == nil {
		c.CallbackClient = &http.Client{Timeout: DefaultPushTimeout}
	}
	return c
}

// componentState is what a component account holds beyond an account's
// state. It is guarded by the component account's mu. The authorizer tokens
// of an authorization belong to the authorizer's account (so that
// get_api_domain_ip attributes their uses to it) and their lives are guarded
// by that account's mu, which is taken after the component's.
type componentState struct {
	callbackToken string
	key           callback.Key
	hasKey        bool
	callbackURL   string
	pushing       bool // the ticket pusher runs

	tickets      []verifyTicket         // pushed tickets, oldest first
	tokens       []*tokenRecord         // live component tokens, oldest first; the last is current
	preAuthCodes map[string]time.Time   // pre_auth_code → expiry
	codes        map[string]*authCode   // authorization code → its grant
	auths        map[string]*authorizer // authorizer appid → its authorization
}

// verifyTicket is one pushed component_verify_ticket.
type verifyTicket struct {
	value    string
	pushedAt time.Time
}

// authCode is an authorization code pushed with an authorized or
// updateauthorized event, for api_query_auth.
type authCode struct {
	authorizer string
	expiresAt  time.Time
	used       bool
}

// authorizer is one account's authorization of a component.
type authorizer struct {
	acct         *account
	active       bool // false once revoked
	funcInfo     []int
	info         AuthorizerInfo
	refreshToken string         // current refresh token; empty until api_query_auth
	tokens       []*tokenRecord // live authorizer tokens, oldest first; the last is current
}

// componentSettings are the validated component fields of an Account.
type componentSettings struct {
	callbackToken string
	key           callback.Key
	hasKey        bool
	callbackURL   string
}

// parseComponentSettings validates the component fields of in. They are
// only accepted with kind component in the same request, and a callback URL
// only with the token and the key that pushes need.
func parseComponentSettings(in Account) (componentSettings, error) {
	var cs componentSettings
	if in.CallbackToken == "" && in.EncodingAESKey == "" && in.CallbackURL == "" {
		return cs, nil
	}
	if in.Kind != KindComponent {
		return cs, fmt.Errorf("%w: callback_token, encoding_aes_key and callback_url need kind %q", ErrInvalidAccount, KindComponent)
	}
	if in.EncodingAESKey != "" {
		k, err := callback.ParseKey(in.EncodingAESKey)
		if err != nil {
			return cs, fmt.Errorf("%w: encoding_aes_key: %w", ErrInvalidAccount, err)
		}
		cs.key, cs.hasKey = k, true
	}
	if in.CallbackURL != "" {
		u, err := url.Parse(in.CallbackURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cs, fmt.Errorf("%w: callback_url must be an absolute http(s) URL", ErrInvalidAccount)
		}
		if in.CallbackToken == "" || in.EncodingAESKey == "" {
			return cs, fmt.Errorf("%w: callback_url needs callback_token and encoding_aes_key", ErrInvalidAccount)
		}
	}
	cs.callbackToken = in.CallbackToken
	cs.callbackURL = in.CallbackURL
	return cs, nil
}

// applyComponentSettingsLocked gives a component account its state and the
// settings given, and starts its ticket pusher once it has a callback URL.
// Callers hold a.mu.
func (s *Simulator) applyComponentSettingsLocked(wd *world, a *account, in componentSettings) {
	if a.kind != KindComponent {
		return
	}
	if a.comp == nil {
		a.comp = &componentState{
			preAuthCodes: map[string]time.Time{},
			codes:        map[string]*authCode{},
			auths:        map[string]*authorizer{},
		}
	}
	cs := a.comp
	if in.callbackToken != "" {
		cs.callbackToken = in.callbackToken
	}
	if in.hasKey {
		cs.key, cs.hasKey = in.key, true
	}
	if in.callbackURL != "" {
		cs.callbackURL = in.callbackURL
	}
	if cs.callbackURL != "" && !cs.pushing && s.cfg.Component.TicketInterval > 0 {
		cs.pushing = wd.pushers.start(func(ctx context.Context) { s.pushTickets(ctx, wd, a) })
	}
}

// pushers runs the components' ticket pushers of one world. The zero value
// is ready; stop ends them for good.
type pushers struct {
	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	stopped bool
	wg      sync.WaitGroup
}

// start runs fn in a goroutine until stop, and reports whether it did (not
// after stop).
func (p *pushers) start(fn func(ctx context.Context)) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	if p.ctx == nil {
		p.ctx, p.cancel = context.WithCancel(context.Background())
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		fn(p.ctx)
	}()
	return true
}

// stop cancels the pushers, including pushes in flight, and waits for them.
func (p *pushers) stop() {
	p.mu.Lock()
	p.stopped = true
	cancel := p.cancel
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	p.wg.Wait()
}

// Close stops the ticket pushers and waits for pushes in flight to end. The
// simulator still answers requests; components configured afterwards get no
// automatic pushes until Reset. Tests that give a component a callback URL
// close the simulator before their receiver goes away.
func (s *Simulator) Close() { s.world.Load().pushers.stop() }

// pushTickets pushes a verify ticket to a's callback URL at once and then
// every TicketInterval, until ctx ends.
func (s *Simulator) pushTickets(ctx context.Context, wd *world, a *account) {
	t := time.NewTicker(s.cfg.Component.TicketInterval)
	defer t.Stop()
	for {
		// A failed push is counted; the next one comes at the next tick,
		// as WeChat's does.
		_, _ = s.pushVerifyTicket(ctx, wd, a)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Push is what the simulator pushed to a component's callback URL, as the
// simulator-only endpoints answer it: the event's fields and the outcome.
type Push struct {
	// AppID is the component's appid.
	AppID string `json:"appid"`
	// InfoType is component_verify_ticket, authorized, updateauthorized or
	// unauthorized.
	InfoType string `json:"info_type"`
	// CreateTime is the event's time, Unix seconds of the simulator clock.
	CreateTime int64 `json:"create_time"`
	// ComponentVerifyTicket is the pushed ticket.
	ComponentVerifyTicket string `json:"component_verify_ticket,omitempty"`
	// AuthorizerAppID is the account that authorized or revoked.
	AuthorizerAppID string `json:"authorizer_appid,omitempty"`
	// AuthorizationCode is for api_query_auth, valid until
	// AuthorizationCodeExpiredTime (Unix seconds).
	AuthorizationCode            string `json:"authorization_code,omitempty"`
	AuthorizationCodeExpiredTime int64  `json:"authorization_code_expired_time,omitempty"`
	// PreAuthCode is the pre_auth_code the authorization used.
	PreAuthCode string `json:"pre_auth_code,omitempty"`
	// Delivered says whether the callback URL answered HTTP 200 and
	// "success". It is false when the component has no callback URL; the
	// event happened all the same.
	Delivered bool `json:"delivered"`
	// Reply is the callback's answer (its first bytes), or why there was
	// none.
	Reply string `json:"reply"`
}

// event is the XML event of p.
func (p *Push) event() callback.Event {
	return callback.Event{
		AppID:                        p.AppID,
		CreateTime:                   p.CreateTime,
		InfoType:                     p.InfoType,
		ComponentVerifyTicket:        p.ComponentVerifyTicket,
		AuthorizerAppID:              p.AuthorizerAppID,
		AuthorizationCode:            p.AuthorizationCode,
		AuthorizationCodeExpiredTime: p.AuthorizationCodeExpiredTime,
		PreAuthCode:                  p.PreAuthCode,
	}
}

// pushTarget is where and how a push goes, copied out of a componentState so
// the push itself runs without the account's lock.
type pushTarget struct {
	url   string
	token string
	key   callback.Key
}

// targetLocked copies cs's push settings; ok is false without a callback
// URL. Callers hold the component account's mu.
func (cs *componentState) targetLocked() (pushTarget, bool) {
	if cs.callbackURL == "" || !cs.hasKey {
		return pushTarget{}, false
	}
	return pushTarget{url: cs.callbackURL, token: cs.callbackToken, key: cs.key}, true
}

// ErrUnknownComponent is wrapped by the errors of the simulator-only
// component operations for an appid that is not a component account.
var ErrUnknownComponent = errors.New("wechatsim: no such component")

// PushVerifyTicket issues a new component_verify_ticket for the component
// and pushes it to its callback URL now, as the pusher does every
// TicketInterval, and returns what it pushed (POST /sim/component/ticket).
// The ticket is valid from the moment it is issued, delivered or not; a
// component without a callback URL gets the ticket all the same.
func (s *Simulator) PushVerifyTicket(ctx context.Context, componentAppID string) (Push, error) {
	wd := s.world.Load()
	a := wd.account(componentAppID)
	if a == nil {
		return Push{}, fmt.Errorf("push verify ticket to %s: %w", componentAppID, ErrUnknownComponent)
	}
	return s.pushVerifyTicket(ctx, wd, a)
}

// pushVerifyTicket issues and pushes a verify ticket to component a.
func (s *Simulator) pushVerifyTicket(ctx context.Context, wd *world, a *account) (Push, error) {
	now := s.now()
	a.mu.Lock()
	if a.kind != KindComponent || a.comp == nil {
		a.mu.Unlock()
		return Push{}, fmt.Errorf("push verify ticket to %s: %w", a.appid, ErrUnknownComponent)
	}
	cs := a.comp
	ticket := "ticket@@@" + newSecretString(ticketBytes)
	// The ticket counts as issued before it is sent: a receiver may use it
	// before the push returns.
	cs.tickets = append(forgetTickets(cs.tickets, now, s.cfg.Component.TicketTTL), verifyTicket{value: ticket, pushedAt: now})
	target, ok := cs.targetLocked()
	a.mu.Unlock()

	p := Push{AppID: a.appid, InfoType: callback.InfoTypeVerifyTicket, CreateTime: now.Unix(), ComponentVerifyTicket: ticket}
	s.deliverPush(ctx, a, target, ok, &p)
	return p, nil
}

// forgetTickets drops tickets that expired more than forgetAfter ago; until
// then an expired ticket answers 61005 rather than 61006.
func forgetTickets(tickets []verifyTicket, now time.Time, ttl time.Duration) []verifyTicket {
	i := 0
	for i < len(tickets) && now.Sub(tickets[i].pushedAt) >= ttl+forgetAfter {
		i++
	}
	return append(tickets[:0], tickets[i:]...)
}

// ticketStatusLocked says what api_component_token answers for ticket: 0,
// CodeTicketExpired or CodeTicketInvalid. Callers hold the component
// account's mu.
func (cs *componentState) ticketStatusLocked(ticket string, now time.Time, ttl time.Duration) int {
	for i := len(cs.tickets) - 1; i >= 0; i-- {
		if t := cs.tickets[i]; secretMatches(t.value, ticket) {
			if now.Sub(t.pushedAt) < ttl {
				return 0
			}
			return CodeTicketExpired
		}
	}
	return CodeTicketInvalid
}

// pushReplyLimit bounds how much of a callback's reply is read and kept.
const pushReplyLimit = 256

// deliverPush sends p to target, unless there is none (ok false), and
// records the outcome in p and in a's counters.
func (s *Simulator) deliverPush(ctx context.Context, a *account, target pushTarget, ok bool, p *Push) {
	if !ok {
		p.Reply = "no callback URL"
	} else {
		p.Delivered, p.Reply = s.post(ctx, a.appid, target, p.event())
	}
	// A push cut off because the simulator is stopping (Close, Reset) is not the
	// receiver's failure.
	a.stats.pushed(p.InfoType, p.Delivered || ctx.Err() != nil)
}

// post encrypts ev for the component appid, POSTs it to target as WeChat
// does, and reports whether the callback answered "success".
func (s *Simulator) post(ctx context.Context, appid string, target pushTarget, ev callback.Event) (delivered bool, reply string) {
	enc, err := callback.Encrypt(target.key, appid, ev.Marshal(), rand.Reader)
	if err != nil {
		return false, "not sent: " + err.Error()
	}
	timestamp := strconv.FormatInt(ev.CreateTime, 10)
	nonce := newNonce()
	u, err := url.Parse(target.url)
	if err != nil {
		return false, "not sent: bad callback URL"
	}
	q := u.Query()
	q.Set("timestamp", timestamp)
	q.Set("nonce", nonce)
	q.Set("encrypt_type", "aes")
	q.Set("msg_signature", callback.Signature(target.token, timestamp, nonce, enc))
	u.RawQuery = q.Encode()
	body := callback.Envelope{AppID: appid, Encrypt: enc}.Marshal()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return false, "not sent: " + err.Error()
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := s.cfg.Component.CallbackClient.Do(req)
	if err != nil {
		return false, "no answer: " + err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, pushReplyLimit))
	if err != nil {
		return false, "answer cut short: " + err.Error()
	}
	// Drain a little more so the connection can be reused; a callback that
	// answers more than this is wrong anyway.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	reply = string(b)
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, reply)
	}
	// WeChat asks for the plain text "success"; the simulator takes it
	// literally.
	return reply == "success", reply
}

// newNonce is a push's nonce: decimal digits, like WeChat's.
func newNonce() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails; it crashes the program instead.
	return strconv.FormatUint(uint64(binary.BigEndian.Uint32(b[:])), 10)
}
