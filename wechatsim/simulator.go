package wechatsim

import (
	"net/http"
	"sync/atomic"
	"time"
)

// Defaults for Config and for account quotas. They are WeChat's documented
// values, except DefaultGetTicketQuota, which WeChat does not publish.
const (
	// DefaultTokenTTL is the lifetime of every token and ticket ("currently 7200").
	DefaultTokenTTL = 7200 * time.Second
	// DefaultOverlap is how long a superseded token keeps working.
	DefaultOverlap = 300 * time.Second
	// DefaultForceMinInterval is the minimum spacing between two stable_token
	// force refreshes; a force sooner than that does not refresh.
	DefaultForceMinInterval = 30 * time.Second
	// DefaultForceDailyLimit is how many stable_token force refreshes an appid
	// gets per quota day (a China day unless Config.QuotaZone says otherwise).
	DefaultForceDailyLimit = 20
	// DefaultClassicSurvivors is how many superseded classic tokens (and
	// tickets of one type) an account keeps alive beside the current one.
	// WeChat promises only that "the old and the new" work during the
	// overlap, so one is the strictest reading that keeps that promise.
	DefaultClassicSurvivors = 1

	// DefaultTokenQuota is the daily limit of /cgi-bin/token calls per appid.
	DefaultTokenQuota = 2000
	// DefaultStableTokenQuota is the daily limit of /cgi-bin/stable_token calls per appid.
	DefaultStableTokenQuota = 500000
	// DefaultGetTicketQuota is the daily limit of /cgi-bin/ticket/getticket calls per appid.
	DefaultGetTicketQuota = 100000

	// ClearQuotaMonthlyLimit is how many quota resets (clear_quota and
	// clear_quota/v2 together) an account gets per calendar month of the
	// quota zone (China unless Config.QuotaZone says otherwise).
	ClearQuotaMonthlyLimit = 10
)

// Config holds the simulator's settings. Zero fields take the defaults above,
// so Config{} behaves like WeChat.
type Config struct {
	// TokenTTL is the lifetime of every access token and ticket. Tests that run
	// in real time use short lifetimes instead of a scaled clock, so expires_in
	// never lies. Use whole seconds: expires_in is reported in whole seconds.
	TokenTTL time.Duration
	// Overlap is how long a superseded token keeps working, and the width of
	// stable_token's last window in which a normal call rotates the token.
	// Negative means no overlap.
	Overlap time.Duration
	// Now is the simulator's clock; nil means time.Now. It must be safe for
	// concurrent use. Tests inject a fake clock instead of sleeping.
	Now func() time.Time
	// ForceMinInterval is the minimum spacing of stable_token force calls; a
	// force sooner than that after the previous force call (whether that one
	// refreshed or not) behaves like normal mode, and restarts the spacing.
	// Negative disables the rule.
	ForceMinInterval time.Duration
	// ForceDailyLimit is how many refreshing stable_token forces an appid gets
	// per quota day; the next one answers 45009. Negative means unlimited.
	ForceDailyLimit int
	// ForceGrace gives the stable tokens a force refresh replaces the overlap
	// before they die. False (the default) kills them at once: a force exists
	// to revoke a leaked token, and whether the replaced token lingers is not
	// something wxhub may count on.
	ForceGrace bool
	// ClassicSurvivors is how many superseded classic tokens an account keeps
	// alive beside its current one; issuing a token that would leave more
	// kills the oldest at once (40001). Tickets follow the same rule per type.
	// Zero or negative means DefaultClassicSurvivors: fewer than one would
	// break WeChat's promise that the old and the new token work together.
	ClassicSurvivors int
	// Component holds the settings of the third-party platform flow.
	Component ComponentConfig
	// QuotaZone is the time zone whose calendar days the daily quotas and the
	// force limit count in, and whose months clear_quota's allowance counts
	// in. Nil means China Standard Time (UTC+8). WeChat does not document when
	// its counters reset; midnight in China is wxhub's assumption.
	QuotaZone *time.Location
	// CountRefusedCalls makes calls answered with an errcode count against
	// the daily quota of their API. False (the default) counts only served
	// calls: WeChat does not say, and wxhub assumes refusals are free.
	CountRefusedCalls bool
	// MediaDir is the folder where uploaded media (media/upload) is kept, one file each, so
	// large uploads and downloads stream without being held in memory. Empty keeps media in
	// memory. The simulator never deletes the files: give it a folder that is cleaned up.
	MediaDir string
	// WeCom holds the settings of the WeCom endpoints under WeComPrefix.
	WeCom WeComConfig
}

// withDefaults fills zero fields and clamps the "disabled" negatives, so the
// handlers never have to special-case them.
func (c Config) withDefaults() Config {
	if c.TokenTTL <= 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	switch {
	case c.Overlap == 0:
		c.Overlap = DefaultOverlap
	case c.Overlap < 0:
		c.Overlap = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.ForceMinInterval == 0:
		c.ForceMinInterval = DefaultForceMinInterval
	case c.ForceMinInterval < 0:
		c.ForceMinInterval = 0
	}
	if c.ForceDailyLimit == 0 {
		c.ForceDailyLimit = DefaultForceDailyLimit
	}
	if c.ClassicSurvivors <= 0 {
		c.ClassicSurvivors = DefaultClassicSurvivors
	}
	c.Component = c.Component.withDefaults()
	if c.QuotaZone == nil {
		c.QuotaZone = chinaZone
	}
	c.WeCom = c.WeCom.withDefaults()
	return c
}

// Simulator is an in-process WeChat credential service. It is safe for
// concurrent use; create it with New.
type Simulator struct {
	cfg Config
	// world holds all mutable state. Reset swaps in a fresh one, so a request
	// that is still running against the old world can never leak tokens or
	// counters into the new one.
	world atomic.Pointer[world]
}

// New returns a simulator with no accounts and no faults. Zero fields of cfg
// take their defaults.
func New(cfg Config) *Simulator {
	s := &Simulator{cfg: cfg.withDefaults()}
	s.world.Store(newWorld())
	return s
}

// now reads the configured clock.
func (s *Simulator) now() time.Time { return s.cfg.Now() }

// Reset forgets every account, token, fault and counter, as POST /sim/reset
// does, and stops the ticket pushers of the forgotten components. Settings
// from Config are kept.
func (s *Simulator) Reset() { s.world.Swap(newWorld()).pushers.stop() }

// ServeHTTP serves WeChat's credential endpoints, WeCom's under WeComPrefix,
// and the simulator-only endpoints under /sim/. WeChat-level errors are answered with HTTP 200 and an
// errcode, as WeChat does; only simulator-only endpoints and unknown paths use
// HTTP error statuses.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case pathToken:
		s.handleToken(w, r)
	case pathStableToken:
		s.handleStableToken(w, r)
	case pathGetTicket:
		s.handleGetTicket(w, r)
	case pathDomainIP:
		s.handleDomainIP(w, r)
	case pathQuotaGet:
		s.handleQuotaGet(w, r)
	case pathClearQuota:
		s.handleClearQuota(w, r)
	case pathClearQuotaV2:
		s.handleClearQuotaV2(w, r)
	case pathMediaUpload:
		s.handleMediaUpload(w, r)
	case pathMediaGet:
		s.handleMediaGet(w, r)
	case pathComponentToken:
		s.handleComponentToken(w, r)
	case pathCreatePreAuthCode:
		s.handleCreatePreAuthCode(w, r)
	case pathQueryAuth:
		s.handleQueryAuth(w, r)
	case pathAuthorizerToken:
		s.handleAuthorizerToken(w, r)
	case pathGetAuthorizerInfo:
		s.handleGetAuthorizerInfo(w, r)
	case "/sim/component/ticket":
		s.handleSimComponentTicket(w, r)
	case "/sim/component/authorization":
		s.handleSimComponentAuthorization(w, r)
	case "/sim/accounts":
		s.handleSimAccounts(w, r)
	case "/sim/stats":
		s.handleSimStats(w, r)
	case "/sim/faults":
		s.handleSimFaults(w, r)
	case "/sim/reset":
		s.handleSimReset(w, r)
	case "/sim/verify-jssdk":
		s.handleSimVerifyJSSDK(w, r)
	default:
		if s.serveWeCom(w, r) {
			return
		}
		// WeChat's answer to an unknown path is not documented; a plain 404
		// makes a wrong URL in a client obvious instead of looking like a
		// credential problem.
		writeSimError(w, http.StatusNotFound, "wechatsim: no such endpoint "+r.URL.Path)
	}
}

// WeChat paths served by the simulator.
const (
	pathToken        = "/cgi-bin/token"
	pathStableToken  = "/cgi-bin/stable_token"
	pathGetTicket    = "/cgi-bin/ticket/getticket"
	pathDomainIP     = "/cgi-bin/get_api_domain_ip"
	pathQuotaGet     = "/cgi-bin/openapi/quota/get"
	pathClearQuota   = "/cgi-bin/clear_quota"
	pathClearQuotaV2 = "/cgi-bin/clear_quota/v2"
	pathMediaUpload  = "/cgi-bin/media/upload"
	pathMediaGet     = "/cgi-bin/media/get"
)
