package wechatsim

import (
	"crypto/rand"
	"encoding/base64"
	"hash/maphash"
	"sync"
	"time"
)

// api identifies one WeChat endpoint for counting and quotas. The first
// numQuotaAPIs values are the ones with a daily quota.
type api int

const (
	apiToken api = iota
	apiStableToken
	apiGetTicket
	apiDomainIP
	apiComponentToken
	apiCreatePreAuthCode
	apiQueryAuth
	apiAuthorizerToken
	apiGetAuthorizerInfo
	apiQuotaGet
	apiClearQuota
	apiMediaUpload
	apiMediaGet
	apiWeComToken
	apiWeComJSAPITicket
	apiWeComAgentTicket
	apiWeComDomainIP
	numAPIs

	numQuotaAPIs = int(apiGetTicket) + 1
)

// API names as they appear in Stats, in Account.Quotas and in quota answers.
// They are part of the simulator's contract with tests in other packages.
const (
	APIToken          = "token"
	APIStableToken    = "stable_token"
	APIGetTicket      = "getticket"
	APIGetAPIDomainIP = "get_api_domain_ip"
	APIQuotaGet       = "quota_get"
	APIClearQuota     = "clear_quota"
	APIMediaUpload    = "media_upload"
	APIMediaGet       = "media_get"
	// WeCom's APIs, served under WeComPrefix.
	APIWeComToken       = "wecom_gettoken"
	APIWeComJSAPITicket = "wecom_get_jsapi_ticket"
	APIWeComAgentTicket = "wecom_agent_ticket"
	APIWeComDomainIP    = "wecom_get_api_domain_ip"

	// The third-party platform's APIs under /cgi-bin/component/.
	APIComponentToken    = "api_component_token"
	APICreatePreAuthCode = "api_create_preauthcode"
	APIQueryAuth         = "api_query_auth"
	APIAuthorizerToken   = "api_authorizer_token"
	APIGetAuthorizerInfo = "api_get_authorizer_info"
)

var apiNames = [numAPIs]string{
	apiToken:       APIToken,
	apiStableToken: APIStableToken,
	apiGetTicket:   APIGetTicket,
	apiDomainIP:    APIGetAPIDomainIP,

	apiComponentToken:    APIComponentToken,
	apiCreatePreAuthCode: APICreatePreAuthCode,
	apiQueryAuth:         APIQueryAuth,
	apiAuthorizerToken:   APIAuthorizerToken,
	apiGetAuthorizerInfo: APIGetAuthorizerInfo,

	apiQuotaGet:    APIQuotaGet,
	apiClearQuota:  APIClearQuota,
	apiMediaUpload: APIMediaUpload,
	apiMediaGet:    APIMediaGet,

	apiWeComToken:       APIWeComToken,
	apiWeComJSAPITicket: APIWeComJSAPITicket,
	apiWeComAgentTicket: APIWeComAgentTicket,
	apiWeComDomainIP:    APIWeComDomainIP,
}

func (a api) String() string { return apiNames[a] }

// tokenKind tells classic tokens from stable tokens. They live in separate
// state because WeChat keeps them fully isolated.
type tokenKind int

const (
	kindClassic tokenKind = iota
	kindComponent
	kindAuthorizer
	kindStable
	kindWeCom
	numTokenKinds
)

// Token kinds as reported in Stats.TokensIssuedByKind.
const (
	TokenKindClassic = "classic"
	TokenKindStable  = "stable"
	TokenKindWeCom   = "wecom"
	// TokenKindComponent is the component_access_token, TokenKindAuthorizer
	// an authorizer_access_token (counted for the authorizer's appid).
	TokenKindComponent  = "component"
	TokenKindAuthorizer = "authorizer"
)

var tokenKindNames = [numTokenKinds]string{
	kindClassic: TokenKindClassic, kindStable: TokenKindStable, kindWeCom: TokenKindWeCom,
	kindComponent: TokenKindComponent, kindAuthorizer: TokenKindAuthorizer,
}

// life is when an issued credential, access token or ticket, stops working.
// Its fields are guarded by the owning account's mu.
type life struct {
	expiresAt time.Time // natural expiry: issue time + TokenTTL

	// deadline starts at expiresAt and only ever moves earlier, when a newer
	// credential supersedes this one.
	deadline   time.Time
	superseded bool
}

func newLife(now time.Time, ttl time.Duration) life {
	exp := now.Add(ttl)
	return life{expiresAt: exp, deadline: exp}
}

// live reports whether the credential works at instant now.
func (l *life) live(now time.Time) bool { return now.Before(l.deadline) }

// status answers what WeChat would say about the credential at instant now:
// 0 while it works; 40001 once it died because a newer one superseded it;
// 42001 once it reached its natural expiry without having been superseded.
func (l *life) status(now time.Time) int {
	switch {
	case l.live(now):
		return 0
	case l.superseded:
		return CodeInvalidCredential
	default:
		return CodeTokenExpired
	}
}

// supersede schedules the credential's death at min(its deadline,
// now+overlap); with no overlap it dies at once. A credential that is already
// dead is left alone, so one that expired naturally keeps answering 42001
// rather than turning into 40001.
func (l *life) supersede(now time.Time, overlap time.Duration) {
	if !l.live(now) {
		return
	}
	if d := now.Add(overlap); d.Before(l.deadline) {
		l.deadline = d
	}
	l.superseded = true
}

// mortal is a credential with a life: *tokenRecord or *ticketRecord.
type mortal interface {
	live(now time.Time) bool
	supersede(now time.Time, overlap time.Duration)
}

// retire makes room for a new credential in chain, the live credentials of
// one kind, oldest first, whose last is the current one. The current one is
// superseded; if that leaves more than survivors superseded credentials
// alive, the oldest die at once. It returns the survivors, to which the
// caller appends the new credential. Callers hold the account's mu.
func retire[T mortal](chain []T, now time.Time, overlap time.Duration, survivors int) []T {
	if n := len(chain); n > 0 {
		chain[n-1].supersede(now, overlap)
	}
	chain = liveOnly(chain, now)
	for i := range len(chain) - survivors {
		chain[i].supersede(now, 0)
	}
	return liveOnly(chain, now)
}

// liveOnly filters chain in place to the credentials still working at now.
func liveOnly[T mortal](chain []T, now time.Time) []T {
	out := chain[:0]
	for _, c := range chain {
		if c.live(now) {
			out = append(out, c)
		}
	}
	clear(chain[len(out):])
	return out
}

// tokenRecord is one issued access token.
type tokenRecord struct {
	value    string
	kind     tokenKind
	acct     *account
	issuedAt time.Time
	life
}

// forgetAfter is how long after its death a token is still recognized. After
// that it is dropped from the index and answers 40001 like any unknown token;
// without it a long benchmark with short lifetimes would grow without bound.
const forgetAfter = 24 * time.Hour

// account is the state of one appid. mu guards everything except appid and
// stats, which has its own lock so reading counters never waits for a
// token operation.
type account struct {
	appid string

	mu     sync.Mutex
	secret string
	kind   string
	quotas [numQuotaAPIs]int

	zone *time.Location // Config.QuotaZone: where quota days and months begin

	day         int // quota day that used and forcesToday belong to
	used        [numQuotaAPIs]int
	forcesToday int
	lastForce   time.Time // last force call answered with a token; zero if none

	month  int // quota month that clears belongs to
	clears int

	comp *componentState // a component's state; nil for other kinds

	classic []*tokenRecord // live classic tokens, oldest first; the last is current
	stable  []*tokenRecord // stable tokens not superseded, oldest first; the last is current
	history []*tokenRecord // every indexed token, oldest first, for forgetting

	tickets       [numTicketTypes][]*ticketRecord // live tickets per type, oldest first; the last is current
	ticketHistory []*ticketRecord                 // every remembered ticket, oldest first
	// everTicket tells "never issued" from "forgotten" when a signature
	// matches no remembered ticket.
	everTicket [numTicketTypes]bool

	wecom *wecomApp // a WeCom app's state; nil for other kinds

	stats counters
}

// rollDay resets the daily counters when the calendar day in the quota zone
// changed since they were last touched. Callers hold a.mu.
func (a *account) rollDay(now time.Time) {
	if d := calendarDay(now, a.zone); d != a.day {
		a.day = d
		a.used = [numQuotaAPIs]int{}
		a.forcesToday = 0
	}
}

// rollMonth resets the monthly clear_quota counter on a new month in the
// quota zone. Callers hold a.mu.
func (a *account) rollMonth(now time.Time) {
	if m := calendarMonth(now, a.zone); m != a.month {
		a.month = m
		a.clears = 0
	}
}

// overQuota reports whether one more successful call of x would exceed the
// daily limit. Callers hold a.mu and have called rollDay.
func (a *account) overQuota(x api) bool { return a.used[x] >= a.quotas[x] }

// chinaZone is China Standard Time, the default quota zone. A fixed zone,
// not time.LoadLocation, so the simulator works without tzdata.
var chinaZone = time.FixedZone("CST", 8*60*60)

// calendarDay numbers calendar days in zone.
func calendarDay(t time.Time, zone *time.Location) int {
	y, m, d := t.In(zone).Date()
	return y*10000 + int(m)*100 + d
}

// calendarMonth numbers calendar months in zone.
func calendarMonth(t time.Time, zone *time.Location) int {
	y, m, _ := t.In(zone).Date()
	return y*100 + int(m)
}

// issueLocked creates a token of the given kind for a, indexes it and counts
// it. Superseding older tokens is the caller's business because the rules
// differ per kind. Callers hold a.mu.
func (s *Simulator) issueLocked(wd *world, a *account, kind tokenKind, now time.Time) *tokenRecord {
	t := &tokenRecord{
		value:    newSecretString(tokenBytes),
		kind:     kind,
		acct:     a,
		issuedAt: now,
		life:     newLife(now, s.cfg.TokenTTL),
	}
	wd.tokens.put(t)
	a.history = append(a.history, t)
	a.forgetOld(wd, now)
	a.stats.tokenIssued(kind, now)
	return t
}

// forgetOld drops tokens and tickets that died more than forgetAfter ago. It
// only looks at the heads of the histories: credentials share one lifetime,
// so the oldest issued are roughly the first to go, and one that died early
// merely waits for those issued before it. Callers hold a.mu.
func (a *account) forgetOld(wd *world, now time.Time) {
	for len(a.history) > 0 && now.Sub(a.history[0].deadline) >= forgetAfter {
		wd.tokens.remove(a.history[0].value)
		a.history[0] = nil
		a.history = a.history[1:]
	}
	for len(a.ticketHistory) > 0 && now.Sub(a.ticketHistory[0].deadline) >= forgetAfter {
		a.ticketHistory[0] = nil
		a.ticketHistory = a.ticketHistory[1:]
	}
}

// Random string lengths. 108 random bytes give 144 URL-safe characters, in the
// range of real access tokens; tickets are shorter, like WeChat's.
const (
	tokenBytes  = 108
	ticketBytes = 64
)

// newSecretString returns n bytes from crypto/rand as unpadded URL-safe
// base64, so tokens are unguessable and need no escaping in a query string.
func newSecretString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails; it crashes the program instead.
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenIndexShards spreads the token index over independent locks. Every use
// of a token goes through the index, so one lock would serialize all accounts.
const tokenIndexShards = 64

// tokenIndex maps a token string to its record, across all accounts.
type tokenIndex struct {
	seed   maphash.Seed
	shards [tokenIndexShards]tokenShard
}

type tokenShard struct {
	mu sync.RWMutex
	m  map[string]*tokenRecord
}

func (ix *tokenIndex) init() {
	ix.seed = maphash.MakeSeed()
	for i := range ix.shards {
		ix.shards[i].m = make(map[string]*tokenRecord)
	}
}

func (ix *tokenIndex) shard(token string) *tokenShard {
	return &ix.shards[maphash.String(ix.seed, token)%tokenIndexShards]
}

func (ix *tokenIndex) get(token string) *tokenRecord {
	sh := ix.shard(token)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.m[token]
}

func (ix *tokenIndex) put(t *tokenRecord) {
	sh := ix.shard(t.value)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.m[t.value] = t
}

func (ix *tokenIndex) remove(token string) {
	sh := ix.shard(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	delete(sh.m, token)
}

// world is all mutable simulator state; see Simulator.world.
type world struct {
	accounts sync.Map // appid → *account; read-mostly, so no global lock on the hot path
	tokens   tokenIndex
	pushers  pushers // the components' ticket pushers, stopped with the world
	faults   faultTable
	media    sync.Map // media_id → *mediaRecord
	corps    sync.Map // WeCom corpid → *corp
	// orphan counts calls that cannot be attributed to a known appid: unknown
	// or missing appids, unknown or missing tokens.
	orphan counters
}

func newWorld() *world {
	wd := &world{}
	wd.tokens.init()
	wd.faults.init()
	return wd
}

// account returns the state of appid, or nil if there is no such account.
func (wd *world) account(appid string) *account {
	if appid == "" {
		return nil
	}
	v, ok := wd.accounts.Load(appid)
	if !ok {
		return nil
	}
	return v.(*account)
}
