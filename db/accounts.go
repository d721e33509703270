package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"wxhub/db/dbsqlc"
)

// Tenant owns accounts.
type Tenant struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// CreateTenant adds a tenant; ErrConflict if the name is taken.
func (s *Store) CreateTenant(ctx context.Context, name string) (Tenant, error) {
	t, err := s.q.TenantCreate(ctx, name)
	if isUniqueViolation(err) {
		return Tenant{}, fmt.Errorf("create tenant %s: %w", name, ErrConflict)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("create tenant %s: %w", name, err)
	}
	return Tenant{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt}, nil
}

// Ticket types an account can keep fresh, and the credential kind each is stored as.
var ticketKinds = map[string]string{
	"jsapi":        "jsapi_ticket",
	"wx_card":      "wx_card_ticket",
	"agent_config": "agent_config_ticket",
}

// NewAccount is what creating an account takes. Secret is the AppSecret (corpsecret,
// component_appsecret); it is encrypted before it reaches the database.
type NewAccount struct {
	Tenant      string
	AppID       string
	Kind        string
	Secret      string
	TokenMode   string         // "stable" (default) or "classic"
	Tickets     []string       // "jsapi", "wx_card", "agent_config"
	DailyLimits map[string]int // per-API overrides of WeChat's daily limits
	// CorpID and AgentID identify a WeCom app (kind wecom_app, where both are required).
	CorpID  string
	AgentID int64
	// Callback is a component's callback token and EncodingAESKeys; required for a
	// component, refused for any other kind.
	Callback *CallbackConfig
}

// Account is an account as wxhub's services see it: never the secret.
type Account struct {
	ID           int64
	TenantID     int64
	AppID        string
	Kind         string
	Status       string
	StatusReason string
	TokenMode    string
	Tickets      []string
	DailyLimits  map[string]int
	BaseInfo     json.RawMessage // a JSON object owned by the app servers
	Settings     Settings
	CreatedAt    time.Time
	CorpID       string // a WeCom app's corp, "" for other kinds
	AgentID      int64  // a WeCom app's agent id, 0 for other kinds
	// ComponentAccountID is, for an authorizer, the id of the component it authorized.
	ComponentAccountID int64
	// AuthorizationInfo is, for an authorizer, what it granted ({"func_info": [...]} as
	// WeChat sent it); WeChatInfo its authorizer_info as WeChat last reported it, read at
	// WeChatInfoAt.
	AuthorizationInfo json.RawMessage
	WeChatInfo        json.RawMessage
	WeChatInfoAt      *time.Time
}

// ErrCorpTicketKept is the conflict of a WeCom app asked to keep its corp's jsapi ticket
// while another app of the corp keeps it: the ticket is the corp's, and two keepers would
// kill each other's.
var ErrCorpTicketKept = fmt.Errorf("%w: another app of this corp keeps the corp's jsapi ticket", ErrConflict)

// conflict maps a unique violation to ErrCorpTicketKept or ErrConflict, and returns other
// errors unchanged.
func conflict(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case !isUniqueViolation(err):
		return err
	case errors.As(err, &pgErr) && pgErr.ConstraintName == "accounts_corp_jsapi_keeper":
		return ErrCorpTicketKept
	default:
		return ErrConflict
	}
}

// CreateAccount adds an account and the empty credential rows it needs, in one transaction:
// the access token becomes due at once, and each ticket once the first token exists.
func (s *Store) CreateAccount(ctx context.Context, in NewAccount) (Account, error) {
	if in.TokenMode == "" {
		in.TokenMode = "stable"
	}
	if in.Tickets == nil {
		in.Tickets = []string{}
	}
	if in.DailyLimits == nil {
		in.DailyLimits = map[string]int{}
	}
	if (in.Kind == "component") != (in.Callback != nil) {
		return Account{}, fmt.Errorf("create account %s: a component needs its callback token and EncodingAESKey, and only a component has them", in.AppID)
	}
	limits, err := json.Marshal(in.DailyLimits)
	if err != nil {
		return Account{}, fmt.Errorf("create account %s: %w", in.AppID, err)
	}
	keyID, ciphertext, err := s.ring.Seal([]byte(in.Secret), secretAD(in.AppID))
	if err != nil {
		return Account{}, fmt.Errorf("create account %s: %w", in.AppID, err)
	}
	p := dbsqlc.AccountCreateParams{
		Appid: in.AppID, Kind: in.Kind, SecretCiphertext: ciphertext, SecretKeyID: &keyID,
		TokenMode: in.TokenMode, Tickets: in.Tickets, DailyLimits: limits,
	}
	if in.CorpID != "" {
		p.CorpID, p.AgentID = &in.CorpID, &in.AgentID
	}
	var row dbsqlc.Account
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		tenant, err := q.TenantGetByName(ctx, in.Tenant)
		if err != nil {
			return notFound(err, "tenant "+in.Tenant)
		}
		p.TenantID = tenant.ID
		row, err = q.AccountCreate(ctx, p)
		if isUniqueViolation(err) {
			return conflict(err)
		}
		if err != nil {
			return err
		}
		// A component's token is fetched with the verify ticket WeChat pushes, so it waits
		// for the first one.
		due := map[string]bool{"access_token": in.Kind != "component"}
		kinds := []string{"access_token"}
		for _, t := range in.Tickets {
			kinds = append(kinds, ticketKinds[t])
		}
		if in.Kind == "component" {
			kinds = append(kinds, "verify_ticket")
			keyID, sealed, err := s.sealCallback(row.ID, *in.Callback)
			if err != nil {
				return err
			}
			if err := q.ComponentCallbackInsert(ctx, dbsqlc.ComponentCallbackInsertParams{
				TenantID: tenant.ID, AccountID: row.ID, ConfigCiphertext: sealed, ConfigKeyID: keyID,
			}); err != nil {
				return err
			}
		}
		for _, kind := range kinds {
			if _, err := q.CredentialInsert(ctx, dbsqlc.CredentialInsertParams{TenantID: tenant.ID, AccountID: row.ID, Kind: kind, Due: due[kind]}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Account{}, fmt.Errorf("create account %s: %w", in.AppID, err)
	}
	return toAccount(row)
}

func toAccount(row dbsqlc.Account) (Account, error) {
	a := Account{
		ID: row.ID, TenantID: row.TenantID, AppID: row.Appid, Kind: row.Kind,
		Status: row.Status, StatusReason: row.StatusReason, TokenMode: row.TokenMode,
		Tickets: row.Tickets, BaseInfo: row.BaseInfo, CreatedAt: row.CreatedAt,
		Settings: Settings{Document: row.Settings, Version: row.SettingsVersion},
		CorpID:   deref(row.CorpID),
	}
	if row.AgentID != nil {
		a.AgentID = *row.AgentID
	}
	if row.ComponentAccountID != nil {
		a.ComponentAccountID = *row.ComponentAccountID
	}
	a.AuthorizationInfo, a.WeChatInfo, a.WeChatInfoAt = row.AuthorizationInfo, row.WechatInfo, row.WechatInfoAt
	if err := json.Unmarshal(row.DailyLimits, &a.DailyLimits); err != nil {
		return Account{}, fmt.Errorf("account %s: daily limits: %w", row.Appid, err)
	}
	return a, nil
}

// GetAccount returns the account with this appid.
func (s *Store) GetAccount(ctx context.Context, appid string) (Account, error) {
	row, err := s.q.AccountGetByAppID(ctx, appid)
	if err != nil {
		return Account{}, notFound(err, "account "+appid)
	}
	return toAccount(row)
}

// Credential is the current value of one credential, decrypted.
type Credential struct {
	Value      string
	ExpiresAt  time.Time
	Generation int64
	RefreshAt  *time.Time // nil: not scheduled
	// ReplaceNotBefore is the earliest time a replacement may be fetched, and
	// OrphanHoldUntil, when set, the end of the hold after a fetch whose answer was lost.
	ReplaceNotBefore, OrphanHoldUntil *time.Time
	Attempts                          int
	LastErrCode                       int // 0 when the last attempt succeeded
	LastErrMsg                        string
}

// GetCredential returns the stored value of an account's credential of this kind
// (access_token, jsapi_ticket, ...). ErrNotFound if the account has no such credential or
// none was fetched yet.
func (s *Store) GetCredential(ctx context.Context, accountID int64, kind string) (Credential, error) {
	row, err := s.q.CredentialGet(ctx, dbsqlc.CredentialGetParams{AccountID: accountID, Kind: kind})
	if err != nil {
		return Credential{}, notFound(err, fmt.Sprintf("credential %s of account %d", kind, accountID))
	}
	c := Credential{Generation: row.Generation, RefreshAt: row.RefreshAt, Attempts: int(row.Attempts),
		ReplaceNotBefore: row.ReplaceNotBefore, OrphanHoldUntil: row.OrphanHoldUntil}
	if row.LastErrorCode != nil {
		c.LastErrCode = int(*row.LastErrorCode)
	}
	if row.LastErrorMessage != nil {
		c.LastErrMsg = *row.LastErrorMessage
	}
	if row.ValueCiphertext == nil {
		return c, fmt.Errorf("credential %s of account %d: no value yet: %w", kind, accountID, ErrNotFound)
	}
	c.ExpiresAt = *row.ExpiresAt
	c.Value, err = s.open(row.ValueKeyID, row.ValueCiphertext, valueAD(accountID, kind))
	if err != nil {
		return c, fmt.Errorf("credential %s of account %d: %w", kind, accountID, err)
	}
	return c, nil
}

// ListTenants returns every tenant by name.
func (s *Store) ListTenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.q.TenantList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	out := make([]Tenant, 0, len(rows))
	for _, t := range rows {
		out = append(out, Tenant{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt})
	}
	return out, nil
}

// AccountFilter selects accounts to list; zero fields select everything.
type AccountFilter struct {
	TenantID *int64
	Kind     string
	Status   string
	AfterID  int64 // the cursor: the last id of the previous page
	Limit    int
}

// ListAccounts returns a page of accounts in id order.
func (s *Store) ListAccounts(ctx context.Context, f AccountFilter) ([]Account, error) {
	p := dbsqlc.AccountListParams{AfterID: f.AfterID, TenantID: f.TenantID, Max: int32(f.Limit)}
	if f.Kind != "" {
		p.Kind = &f.Kind
	}
	if f.Status != "" {
		p.Status = &f.Status
	}
	rows, err := s.q.AccountList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out := make([]Account, 0, len(rows))
	for _, r := range rows {
		a, err := toAccount(r)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// AccountChange is a partial update of an account; nil fields stay as they are.
type AccountChange struct {
	Secret      *string
	TokenMode   *string
	DailyLimits map[string]int
	BaseInfo    json.RawMessage // replaces the base info document when not nil
	// Tickets, when not nil, is the new set of tickets kept fresh: new ones are fetched
	// (at once when the account has a valid access token), dropped ones deleted.
	Tickets *[]string
	// Tenant, when not nil, names the tenant the account moves to.
	Tenant *string
}

// UpdateAccount applies a change. A new secret makes the credentials due at once, so a
// failing account recovers without waiting for its slow retry.
func (s *Store) UpdateAccount(ctx context.Context, a Account, ch AccountChange) (Account, error) {
	p := dbsqlc.AccountUpdateParams{ID: a.ID, TokenMode: ch.TokenMode, BaseInfo: ch.BaseInfo}
	if ch.Secret != nil {
		keyID, ciphertext, err := s.ring.Seal([]byte(*ch.Secret), secretAD(a.AppID))
		if err != nil {
			return Account{}, fmt.Errorf("update account %s: %w", a.AppID, err)
		}
		p.SecretCiphertext, p.SecretKeyID = ciphertext, &keyID
	}
	if ch.DailyLimits != nil {
		limits, err := json.Marshal(ch.DailyLimits)
		if err != nil {
			return Account{}, fmt.Errorf("update account %s: %w", a.AppID, err)
		}
		p.DailyLimits = limits
	}
	var row dbsqlc.Account
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.CredentialLockAccount(ctx, a.ID); err != nil {
			return err
		}
		var err error
		if row, err = q.AccountUpdate(ctx, p); err != nil {
			return notFound(err, "account "+a.AppID)
		}
		if ch.Secret != nil && (row.Status == "active" || row.Status == "failing") {
			enabled, err := q.AccountSetEnabled(ctx, dbsqlc.AccountSetEnabledParams{ID: a.ID, Enabled: true})
			if err != nil {
				return err
			}
			row = dbsqlc.Account(enabled)
		}
		if ch.Tenant != nil {
			tenant, err := q.TenantGetByName(ctx, *ch.Tenant)
			if err != nil {
				return notFound(err, "tenant "+*ch.Tenant)
			}
			if row, err = q.AccountMoveTenant(ctx, dbsqlc.AccountMoveTenantParams{ID: a.ID, TenantID: tenant.ID}); err != nil {
				return fmt.Errorf("move to tenant %s: %w", *ch.Tenant, err)
			}
		}
		if ch.Tickets != nil {
			if row, err = setTickets(ctx, q, row, *ch.Tickets); err != nil {
				return conflict(err)
			}
		}
		return q.AccountNotify(ctx, a.ID)
	})
	if err != nil {
		return Account{}, fmt.Errorf("update account %s: %w", a.AppID, err)
	}
	return toAccount(row)
}

// setTickets makes the account keep exactly these tickets fresh: their credentials are
// created (and fetched at once if the account has a valid access token) or deleted.
func setTickets(ctx context.Context, q *dbsqlc.Queries, row dbsqlc.Account, tickets []string) (dbsqlc.Account, error) {
	want := map[string]bool{}
	for _, t := range tickets {
		want[ticketKinds[t]] = true
	}
	var dropped []string
	for _, t := range row.Tickets {
		if !want[ticketKinds[t]] {
			dropped = append(dropped, ticketKinds[t])
		}
	}
	if _, err := q.CredentialDeleteKinds(ctx, dbsqlc.CredentialDeleteKindsParams{AccountID: row.ID, Kinds: dropped}); err != nil {
		return row, err
	}
	for kind := range want {
		// A ticket the account keeps already has its row: the insert does nothing and
		// returns none.
		_, err := q.CredentialInsert(ctx, dbsqlc.CredentialInsertParams{TenantID: row.TenantID, AccountID: row.ID, Kind: kind})
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return row, err
		}
	}
	if err := q.CredentialWakeNewTickets(ctx, row.ID); err != nil {
		return row, err
	}
	kept := slices.Compact(slices.Sorted(slices.Values(tickets)))
	if kept == nil {
		kept = []string{}
	}
	return q.AccountSetTickets(ctx, dbsqlc.AccountSetTicketsParams{ID: row.ID, Tickets: kept})
}

// SetAccountEnabled disables an account (its credentials stop being refreshed) or enables it
// (its credentials are due at once), and tells API nodes.
func (s *Store) SetAccountEnabled(ctx context.Context, a Account, enabled bool) (Account, error) {
	var row dbsqlc.Account
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.CredentialLockAccount(ctx, a.ID); err != nil {
			return err
		}
		changed, err := q.AccountSetEnabled(ctx, dbsqlc.AccountSetEnabledParams{ID: a.ID, Enabled: enabled})
		if err != nil {
			return notFound(err, "account "+a.AppID)
		}
		row = dbsqlc.Account(changed)
		return q.AccountNotify(ctx, a.ID)
	})
	if err != nil {
		return Account{}, fmt.Errorf("set account %s enabled=%t: %w", a.AppID, enabled, err)
	}
	return toAccount(row)
}

// DeleteAccount removes an account with its credentials and quota ledger.
func (s *Store) DeleteAccount(ctx context.Context, a Account) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.CredentialLockAccount(ctx, a.ID); err != nil {
			return err
		}
		n, err := q.AccountDelete(ctx, a.ID)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return q.AccountNotify(ctx, a.ID)
	})
	if err != nil {
		return fmt.Errorf("delete account %s: %w", a.AppID, err)
	}
	return nil
}

// ErrStaleVersion means the settings changed since the caller read them.
var ErrStaleVersion = errors.New("settings version is not the current one")

// Settings is an account's personalized settings document with its version.
type Settings struct {
	Document json.RawMessage
	Version  int64
}

// PutSettings replaces an account's settings if expectedVersion is still current.
func (s *Store) PutSettings(ctx context.Context, a Account, doc json.RawMessage, expectedVersion int64) (Settings, error) {
	row, err := s.q.AccountSettingsUpdate(ctx, dbsqlc.AccountSettingsUpdateParams{ID: a.ID, Settings: doc, ExpectedVersion: expectedVersion})
	if errors.Is(err, pgx.ErrNoRows) {
		return Settings{}, fmt.Errorf("settings of %s: %w", a.AppID, ErrStaleVersion)
	}
	if err != nil {
		return Settings{}, fmt.Errorf("settings of %s: %w", a.AppID, err)
	}
	return Settings{Document: row.Settings, Version: row.SettingsVersion}, nil
}

// CredentialState is what an operator sees of one credential: freshness and errors, never
// the value.
type CredentialState struct {
	Kind        string
	Generation  int64
	ExpiresAt   *time.Time
	RefreshAt   *time.Time
	Refreshed   *time.Time
	Fingerprint string
	Attempts    int
	LastErrCode *int32
	LastErrMsg  *string
}

// AccountDetail is an account with the state of its credentials and today's upstream calls.
type AccountDetail struct {
	Account
	Credentials   []CredentialState
	UpstreamCalls map[string]int // per API, on the current quota day
}

// GetAccountDetail returns an account with its credentials' state and today's calls.
func (s *Store) GetAccountDetail(ctx context.Context, a Account) (AccountDetail, error) {
	d := AccountDetail{Account: a, UpstreamCalls: map[string]int{}}
	creds, err := s.q.CredentialListByAccount(ctx, a.ID)
	if err != nil {
		return d, fmt.Errorf("account %s: %w", a.AppID, err)
	}
	for _, c := range creds {
		st := CredentialState{Kind: c.Kind, Generation: c.Generation, ExpiresAt: c.ExpiresAt, RefreshAt: c.RefreshAt,
			Refreshed: c.LastRefreshedAt, Attempts: int(c.Attempts), LastErrCode: c.LastErrorCode, LastErrMsg: c.LastErrorMessage}
		if c.ValueFingerprint != nil {
			st.Fingerprint = *c.ValueFingerprint
		}
		d.Credentials = append(d.Credentials, st)
	}
	calls, err := s.q.UpstreamCallsToday(ctx, dbsqlc.UpstreamCallsTodayParams{AccountID: a.ID})
	if err != nil {
		return d, fmt.Errorf("account %s: %w", a.AppID, err)
	}
	for _, c := range calls {
		d.UpstreamCalls[c.Api] = int(c.Calls)
	}
	return d, nil
}

// CachedCredential is a credential as API nodes cache it.
type CachedCredential struct {
	AccountID     int64
	TenantID      int64
	AppID         string
	Kind          string
	AccountStatus string
	Generation    int64
	Value         string // "" before the first fetch
	ExpiresAt     time.Time
	// Rotates is true when every fetch of this credential kills the previous value after the
	// overlap (classic tokens, tickets), so the value dies early once refreshed.
	Rotates bool
	// ReplaceNotBefore is the earliest time wxhub may ask WeChat for the value's
	// replacement: a rotating value works at least until the overlap after it.
	ReplaceNotBefore *time.Time
	// RefreshRequested is true while a refresh an app server asked for has not ended with a
	// new value or WeChat's confirmation of the current one.
	RefreshRequested bool
	// StatusReason says why the account is not active (WeChat's errcode and message for a
	// failing one).
	StatusReason string
	// LastErrorCode is WeChat's errcode of the last failed refresh (or a negative wxhub
	// code), 0 after a success; RefreshAt is the next attempt, nil when none is scheduled.
	LastErrorCode int
	RefreshAt     *time.Time
	// Refreshing is true while a worker holds a claim on the credential.
	Refreshing bool
	// FetchMayHaveStarted is true when a claim was made that has not ended (its worker may be
	// fetching, or have vanished mid-fetch) or a fetch's answer was lost: WeChat may have
	// issued a replacement wxhub has not stored. ReadAt is the database's time at the read.
	FetchMayHaveStarted bool
	ReadAt              time.Time
}

// Promise is how long a client may rely on the value as read: PromisedUntil, except that a
// rotating value whose replacement is overdue, with no fetch that may have begun, works
// until the overlap after the read, since every fetch of its replacement comes after it.
func (c CachedCredential) Promise(overlap time.Duration) time.Time {
	replaceNotBefore := c.ReplaceNotBefore
	if replaceNotBefore != nil && !c.FetchMayHaveStarted && c.ReadAt.After(*replaceNotBefore) {
		replaceNotBefore = &c.ReadAt
	}
	return PromisedUntil(c.ExpiresAt, replaceNotBefore, c.Rotates, overlap)
}

// QuotaSpent reports whether the credential waits for the next quota day (or, for WeCom's
// tickets, hour): WeChat answered 45009 or wxhub's own guard stopped the calls, and no
// attempt comes before now.
func (c CachedCredential) QuotaSpent(now time.Time) bool {
	switch c.LastErrorCode {
	case 45009, CodeQuotaGuard, CodeHourlyGuard:
		return c.RefreshAt != nil && c.RefreshAt.After(now)
	}
	return false
}

// PromisedUntil is how long a client may rely on a value: its expiry, and for a value whose
// every fetch kills the previous one after the overlap (rotates), no later than the overlap
// after the earliest time wxhub may fetch its replacement. wxhub never fetches earlier, so
// the value works at least that long.
func PromisedUntil(expiresAt time.Time, replaceNotBefore *time.Time, rotates bool, overlap time.Duration) time.Time {
	if rotates && replaceNotBefore != nil {
		if end := replaceNotBefore.Add(overlap); end.Before(expiresAt) {
			return end
		}
	}
	return expiresAt
}

// Rotates tells whether every fetch of a credential issues a new value that kills the
// previous one after the overlap: all but the access token of an official account or mini
// program fetched with stable_token, which returns the current token while it lives.
func Rotates(accountKind, kind, tokenMode string) bool {
	stable := (accountKind == "official_account" || accountKind == "mini_program") && kind == "access_token" && tokenMode == "stable"
	return !stable
}

// LoadCredential reads one credential by appid and kind for an API node's cache.
func (s *Store) LoadCredential(ctx context.Context, appid, kind string) (CachedCredential, error) {
	row, err := s.q.CredentialGetByAppID(ctx, dbsqlc.CredentialGetByAppIDParams{Appid: appid, Kind: kind})
	if err != nil {
		return CachedCredential{}, notFound(err, kind+" of "+appid)
	}
	c := CachedCredential{AccountID: row.AccountID, TenantID: row.TenantID, AppID: row.Appid, Kind: row.Kind,
		AccountStatus: row.AccountStatus, Generation: row.Generation, ReplaceNotBefore: row.ReplaceNotBefore,
		RefreshRequested: row.RefreshRequested, StatusReason: row.StatusReason, RefreshAt: row.RefreshAt,
		Refreshing: row.Refreshing, FetchMayHaveStarted: row.FetchMayHaveStarted, ReadAt: row.ReadAt,
		Rotates: Rotates(row.AccountKind, row.Kind, row.TokenMode)}
	if row.LastErrorCode != nil {
		c.LastErrorCode = int(*row.LastErrorCode)
	}
	if row.ExpiresAt != nil {
		c.ExpiresAt = *row.ExpiresAt
	}
	if c.Value, err = s.open(row.ValueKeyID, row.ValueCiphertext, valueAD(row.AccountID, row.Kind)); err != nil {
		return CachedCredential{}, fmt.Errorf("%s of %s: %w", kind, appid, err)
	}
	return c, nil
}

// AccountSecret is an account with its secret in plain text.
type AccountSecret struct {
	AppID    string
	Kind     string
	Secret   string
	TenantID int64
	CorpID   string   // a WeCom app's corp, "" for other kinds
	AgentID  int64    // a WeCom app's agent id, 0 for other kinds
	Tickets  []string // the tickets kept fresh
	Status   string
	// ComponentAccountID is, for an authorizer, the id of the component it authorized.
	ComponentAccountID int64
}

// accountSecret decrypts the secret of an account row.
func (s *Store) accountSecret(row dbsqlc.Account) (AccountSecret, error) {
	secret, err := s.open(row.SecretKeyID, row.SecretCiphertext, secretAD(row.Appid))
	if err != nil {
		return AccountSecret{}, fmt.Errorf("secret of account %s: %w", row.Appid, err)
	}
	a := AccountSecret{AppID: row.Appid, Kind: row.Kind, Secret: secret, TenantID: row.TenantID,
		CorpID: deref(row.CorpID), Tickets: row.Tickets, Status: row.Status}
	if row.ComponentAccountID != nil {
		a.ComponentAccountID = *row.ComponentAccountID
	}
	if row.AgentID != nil {
		a.AgentID = *row.AgentID
	}
	return a, nil
}

// WeComAppSecrets returns the WeCom apps of a corp with their secrets decrypted, for the
// gateway, which knows a WeCom caller by corp id and corpsecret only. ErrNotFound if the
// corp has no app.
func (s *Store) WeComAppSecrets(ctx context.Context, corpID string) ([]AccountSecret, error) {
	rows, err := s.q.AccountListByCorp(ctx, &corpID)
	if err != nil {
		return nil, fmt.Errorf("apps of corp %s: %w", corpID, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("apps of corp %s: %w", corpID, ErrNotFound)
	}
	out := make([]AccountSecret, 0, len(rows))
	for _, r := range rows {
		a, err := s.accountSecret(r)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// GetAccountSecret returns one account with its secret decrypted, for the WeChat-compatible
// gateway, which authenticates callers by the account's own AppSecret. An authorizer's secret
// is its refresh token, which the gateway's api_authorizer_token answers. ErrNotFound if there
// is no such account or it has no secret.
func (s *Store) GetAccountSecret(ctx context.Context, appid string) (AccountSecret, error) {
	row, err := s.q.AccountGetByAppID(ctx, appid)
	if err != nil {
		return AccountSecret{}, notFound(err, "account "+appid)
	}
	if row.SecretCiphertext == nil {
		return AccountSecret{}, fmt.Errorf("secret of account %s: none stored: %w", appid, ErrNotFound)
	}
	return s.accountSecret(row)
}

// AccountSecrets lists every account that has a secret, with the secret decrypted, for
// `wxhub dev`, whose simulator must know the secrets wxhub holds. Nothing else reads secrets
// back out of wxhub.
func (s *Store) AccountSecrets(ctx context.Context) ([]AccountSecret, error) {
	var out []AccountSecret
	for after := int64(0); ; {
		rows, err := s.q.AccountList(ctx, dbsqlc.AccountListParams{AfterID: after, Max: 1000})
		if err != nil {
			return nil, fmt.Errorf("list account secrets: %w", err)
		}
		if len(rows) == 0 {
			return out, nil
		}
		for _, r := range rows {
			after = r.ID
			if r.SecretCiphertext == nil {
				continue
			}
			a, err := s.accountSecret(r)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
}

// ExpireAllForNewSimulator makes every stored value expired and due now: see
// CredentialExpireAll. It reports how many credentials it changed.
func (s *Store) ExpireAllForNewSimulator(ctx context.Context) (int64, error) {
	n, err := s.q.CredentialExpireAll(ctx)
	if err != nil {
		return 0, fmt.Errorf("expire stored values: %w", err)
	}
	return n, nil
}
