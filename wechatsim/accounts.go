package wechatsim

import (
	"errors"
	"fmt"
	"sort"
)

// Account kinds, spelled as wxhub spells them. The simulator stores the kind
// and reports it. A component gets the /cgi-bin/component/ endpoints and is
// refused token and stable_token (61024), as WeChat does; the other kinds get
// the official-account endpoints, and a wecom_app also WeCom's under
// WeComPrefix.
const (
	KindOfficialAccount = "official_account"
	KindMiniProgram     = "mini_program"
	KindWeComApp        = "wecom_app"
	KindComponent       = "component"
	KindAuthorizer      = "authorizer"
)

var validKinds = map[string]bool{
	KindOfficialAccount: true,
	KindMiniProgram:     true,
	KindWeComApp:        true,
	KindComponent:       true,
	KindAuthorizer:      true,
}

// Account is a simulated WeChat app, as posted to /sim/accounts. Quotas maps
// an API name (APIToken, APIStableToken, APIGetTicket) to its daily limit;
// missing or zero entries take the defaults on creation and keep their
// current value on update. The simulator never returns Secret.
type Account struct {
	AppID  string `json:"appid"`
	Secret string `json:"secret,omitempty"`
	Kind   string `json:"kind,omitempty"`
	// CorpID and AgentID identify a WeCom app (kind wecom_app, where both are
	// required); Secret is then the app's corpsecret. AppID stays the key the
	// simulator's own endpoints know the app by.
	CorpID  string `json:"corpid,omitempty"`
	AgentID int64  `json:"agentid,omitempty"`
	// CallbackToken, EncodingAESKey and CallbackURL are a component's
	// authorization-event settings (kind component, given in the same
	// request). A callback URL needs the other two; the simulator then
	// pushes verify tickets and events there. Like Secret, the token and
	// the key are never returned.
	CallbackToken  string         `json:"callback_token,omitempty"`
	EncodingAESKey string         `json:"encoding_aes_key,omitempty"`
	CallbackURL    string         `json:"callback_url,omitempty"`
	Quotas         map[string]int `json:"quotas,omitempty"`
}

// ErrInvalidAccount is wrapped by AddAccount's errors for a malformed account.
var ErrInvalidAccount = errors.New("wechatsim: invalid account")

// AddAccount creates the account or, if the appid exists, updates its secret,
// and its kind and quotas where given. Tokens already issued are kept, so a
// test can make a secret wrong and right again without losing state. It does
// the same as POST /sim/accounts.
func (s *Simulator) AddAccount(a Account) error {
	_, _, err := s.upsertAccount(a)
	return err
}

// upsertAccount validates and applies a, and returns the stored account
// (without its secret) and whether it was created.
func (s *Simulator) upsertAccount(in Account) (Account, bool, error) {
	if in.AppID == "" {
		return Account{}, false, fmt.Errorf("%w: appid is required", ErrInvalidAccount)
	}
	if in.Kind != "" && !validKinds[in.Kind] {
		return Account{}, false, fmt.Errorf("%w: unknown kind %q", ErrInvalidAccount, in.Kind)
	}
	settings, err := parseComponentSettings(in)
	if err != nil {
		return Account{}, false, err
	}
	var quotas [numQuotaAPIs]int
	for name, limit := range in.Quotas {
		x, ok := quotaAPIByName(name)
		if !ok {
			return Account{}, false, fmt.Errorf("%w: no quota named %q (want %s, %s or %s)",
				ErrInvalidAccount, name, APIToken, APIStableToken, APIGetTicket)
		}
		if limit < 0 {
			return Account{}, false, fmt.Errorf("%w: quota %s is negative", ErrInvalidAccount, name)
		}
		quotas[x] = limit
	}
	if err := checkWeComIdentity(in); err != nil {
		return Account{}, false, err
	}

	wd := s.world.Load()
	fresh := &account{appid: in.AppID, kind: KindOfficialAccount, quotas: defaultQuotas, zone: s.cfg.QuotaZone}
	v, loaded := wd.accounts.LoadOrStore(in.AppID, fresh)
	a := v.(*account)

	a.mu.Lock()
	defer a.mu.Unlock()
	if err := s.joinCorpLocked(wd, a, in); err != nil {
		if !loaded {
			wd.accounts.Delete(in.AppID)
		}
		return Account{}, false, err
	}
	a.secret = in.Secret
	if in.Kind != "" {
		a.kind = in.Kind
	}
	for i, limit := range quotas {
		if limit > 0 {
			a.quotas[i] = limit
		}
	}
	s.applyComponentSettingsLocked(wd, a, settings)
	return a.infoLocked(), !loaded, nil
}

var defaultQuotas = [numQuotaAPIs]int{
	apiToken:       DefaultTokenQuota,
	apiStableToken: DefaultStableTokenQuota,
	apiGetTicket:   DefaultGetTicketQuota,
}

// quotaAPIByName maps a quota name to its API; only APIs with a daily quota
// are accepted.
func quotaAPIByName(name string) (api, bool) {
	for x := api(0); x < api(numQuotaAPIs); x++ {
		if apiNames[x] == name {
			return x, true
		}
	}
	return 0, false
}

// infoLocked describes the account without its secret. Callers hold a.mu.
func (a *account) infoLocked() Account {
	q := make(map[string]int, numQuotaAPIs)
	for x := api(0); x < api(numQuotaAPIs); x++ {
		q[x.String()] = a.quotas[x]
	}
	out := Account{AppID: a.appid, Kind: a.kind, Quotas: q}
	if a.wecom != nil {
		out.CorpID, out.AgentID = a.wecom.corp.id, a.wecom.agentID
	}
	return out
}

// Accounts lists every account, without secrets, ordered by appid.
func (s *Simulator) Accounts() []Account {
	var out []Account
	s.world.Load().accounts.Range(func(_, v any) bool {
		a := v.(*account)
		a.mu.Lock()
		out = append(out, a.infoLocked())
		a.mu.Unlock()
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].AppID < out[j].AppID })
	return out
}
