package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	CreatedAt    time.Time
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
	limits, err := json.Marshal(in.DailyLimits)
	if err != nil {
		return Account{}, fmt.Errorf("create account %s: %w", in.AppID, err)
	}
	keyID, ciphertext, err := s.ring.Seal([]byte(in.Secret), secretAD(in.AppID))
	if err != nil {
		return Account{}, fmt.Errorf("create account %s: %w", in.AppID, err)
	}
	var row dbsqlc.Account
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		tenant, err := q.TenantGetByName(ctx, in.Tenant)
		if err != nil {
			return notFound(err, "tenant "+in.Tenant)
		}
		row, err = q.AccountCreate(ctx, dbsqlc.AccountCreateParams{
			TenantID: tenant.ID, Appid: in.AppID, Kind: in.Kind,
			SecretCiphertext: ciphertext, SecretKeyID: &keyID,
			TokenMode: in.TokenMode, Tickets: in.Tickets, DailyLimits: limits,
		})
		if isUniqueViolation(err) {
			return ErrConflict
		}
		if err != nil {
			return err
		}
		kinds := []string{"access_token"}
		for _, t := range in.Tickets {
			kinds = append(kinds, ticketKinds[t])
		}
		for _, kind := range kinds {
			if _, err := q.CredentialInsert(ctx, dbsqlc.CredentialInsertParams{TenantID: tenant.ID, AccountID: row.ID, Kind: kind}); err != nil {
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
		Tickets: row.Tickets, CreatedAt: row.CreatedAt,
	}
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
	Value       string
	ExpiresAt   time.Time
	Generation  int64
	RefreshAt   *time.Time // nil: not scheduled
	Attempts    int
	LastErrCode int // 0 when the last attempt succeeded
	LastErrMsg  string
}

// GetCredential returns the stored value of an account's credential of this kind
// (access_token, jsapi_ticket, ...). ErrNotFound if the account has no such credential or
// none was fetched yet.
func (s *Store) GetCredential(ctx context.Context, accountID int64, kind string) (Credential, error) {
	row, err := s.q.CredentialGet(ctx, dbsqlc.CredentialGetParams{AccountID: accountID, Kind: kind})
	if err != nil {
		return Credential{}, notFound(err, fmt.Sprintf("credential %s of account %d", kind, accountID))
	}
	c := Credential{Generation: row.Generation, RefreshAt: row.RefreshAt, Attempts: int(row.Attempts)}
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
