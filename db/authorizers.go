package db

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"wxhub/db/dbsqlc"
)

// ErrNotAuthorizer means an appid belongs to an account that is not an authorizer of the
// component at hand: another kind of account, or another component's authorizer.
var ErrNotAuthorizer = fmt.Errorf("%w: the appid belongs to an account that is not this component's authorizer", ErrConflict)

// AuthorizerContext is an authorizer's context as WeChat reports it: what it granted the
// component (func_info, a JSON array) and, when read, its authorizer_info (a JSON object:
// nickname, account type, verification, principal name).
type AuthorizerContext struct {
	FuncInfo   json.RawMessage
	WeChatInfo json.RawMessage
}

// authorizationDoc is the authorization_info column's document.
func (c AuthorizerContext) authorizationDoc() ([]byte, error) {
	funcInfo := c.FuncInfo
	if len(funcInfo) == 0 {
		funcInfo = json.RawMessage("[]")
	}
	return json.Marshal(map[string]json.RawMessage{"func_info": funcInfo})
}

// wechatDoc is the wechat_info column's document and when it was read, or an empty object
// and nil when WeChat was not asked.
func (c AuthorizerContext) wechatDoc() ([]byte, *time.Time) {
	if len(c.WeChatInfo) == 0 {
		return []byte("{}"), nil
	}
	now := time.Now()
	return c.WeChatInfo, &now
}

// Grant is an authorization WeChat confirmed (api_query_auth): the authorizer's appid,
// its refresh token, the access token WeChat issued with it, and its context. Code is the
// authorization code exchanged for it, recorded so that the code asked for again is answered
// from this grant (AuthorizedByCode).
type Grant struct {
	AppID        string
	RefreshToken string
	Token        Write
	Context      AuthorizerContext
	Code         string
}

// Authorize records an authorization WeChat confirmed: it creates the authorizer's account
// in the component's tenant, or for one known before stores its new refresh token and
// context and makes it active again (unless an operator disabled it), and keeps the access
// token WeChat answered as the current one (AuthorizerTokenStore). The other credentials of
// an account authorized again are due at once: what a revoked authorization had is dead. A
// push, when given, is recorded in the same transaction (ErrReplayed when it was seen
// before). ErrNotAuthorizer when the appid belongs to another kind of account or another
// component.
func (s *Store) Authorize(ctx context.Context, comp ComponentEndpoint, push *Push, g Grant) (Account, bool, error) {
	authorization, err := g.Context.authorizationDoc()
	if err != nil {
		return Account{}, false, fmt.Errorf("authorize %s: %w", g.AppID, err)
	}
	wechatInfo, readAt := g.Context.wechatDoc()
	keyID, ciphertext, err := s.ring.Seal([]byte(g.RefreshToken), secretAD(g.AppID))
	if err != nil {
		return Account{}, false, fmt.Errorf("authorize %s: %w", g.AppID, err)
	}
	var row dbsqlc.AuthorizerUpsertRow
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if push != nil {
			if err := recordPush(ctx, q, comp, *push); err != nil {
				return err
			}
		}
		row, err = q.AuthorizerUpsert(ctx, dbsqlc.AuthorizerUpsertParams{
			TenantID: comp.TenantID, Appid: g.AppID, ComponentAccountID: &comp.AccountID,
			SecretCiphertext: ciphertext, SecretKeyID: keyID,
			AuthorizationInfo: authorization, WechatInfo: wechatInfo, WechatInfoAt: readAt,
		})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrNotAuthorizer
		case err != nil:
			return conflict(err)
		case row.Created:
			if _, err := q.CredentialInsert(ctx, dbsqlc.CredentialInsertParams{
				TenantID: row.TenantID, AccountID: row.ID, Kind: "access_token"}); err != nil {
				return err
			}
		case row.Status == "active":
			if _, err := q.AccountSetEnabled(ctx, dbsqlc.AccountSetEnabledParams{ID: row.ID, Enabled: true}); err != nil {
				return err
			}
			if err := q.AccountNotify(ctx, row.ID); err != nil {
				return err
			}
		}
		if err := recordCode(ctx, q, comp, row.TenantID, row.ID, g.Code); err != nil {
			return err
		}
		return s.storeGrantedToken(ctx, q, row.ID, g)
	})
	if err != nil {
		return Account{}, false, fmt.Errorf("authorize %s for component %s: %w", g.AppID, comp.AppID, err)
	}
	a, err := toAccount(dbsqlc.Account{
		ID: row.ID, TenantID: row.TenantID, Appid: row.Appid, Kind: row.Kind, Status: row.Status,
		ComponentAccountID: row.ComponentAccountID, TokenMode: row.TokenMode, Tickets: row.Tickets,
		DailyLimits: row.DailyLimits, BaseInfo: row.BaseInfo, AuthorizationInfo: row.AuthorizationInfo,
		Settings: row.Settings, SettingsVersion: row.SettingsVersion, StatusReason: row.StatusReason,
		CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt, WechatInfo: row.WechatInfo, WechatInfoAt: row.WechatInfoAt,
	})
	return a, row.Created, err
}

// storeGrantedToken keeps the access token of a grant as the authorizer's current value.
func (s *Store) storeGrantedToken(ctx context.Context, q *dbsqlc.Queries, accountID int64, g Grant) error {
	keyID, ciphertext, err := s.ring.Seal([]byte(g.Token.Value), valueAD(accountID, "access_token"))
	if err != nil {
		return err
	}
	_, err = q.AuthorizerTokenStore(ctx, dbsqlc.AuthorizerTokenStoreParams{
		AccountID: accountID, ValueCiphertext: ciphertext, ValueKeyID: keyID, ValueFingerprint: Fingerprint(g.Token.Value),
		ExpiresAt: &g.Token.ExpiresAt, RefreshInSeconds: g.Token.RefreshIn.Seconds(),
		PreviousValidSeconds: g.Token.PreviousValidFor.Seconds(),
	})
	return err
}

// recordCode remembers an authorization code of comp for the authorizer accountID; an empty
// code records nothing.
func recordCode(ctx context.Context, q *dbsqlc.Queries, comp ComponentEndpoint, tenantID, accountID int64, code string) error {
	if code == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(code))
	return q.AuthorizationCodeRecord(ctx, dbsqlc.AuthorizationCodeRecordParams{
		CodeSha256: sum[:], TenantID: tenantID, AccountID: accountID, ComponentAccountID: comp.AccountID})
}

// WithAuthorizationCode runs fn holding a cluster-wide lock on an authorization code, so that
// the exchange of a code (for its event, or for the platform's redirect page) is recorded
// before anyone else looks the code up. fn's error is returned as it is.
func (s *Store) WithAuthorizationCode(ctx context.Context, code string, fn func() error) error {
	var fnErr error
	sum := sha256.Sum256([]byte(code))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.q.WithTx(tx).AuthorizationCodeLock(ctx, sum[:]); err != nil {
			return fmt.Errorf("lock an authorization code: %w", err)
		}
		fnErr = fn()
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// UpdateAuthorizerContext stores what a live authorizer granted and its authorizer_info, as
// WeChat reported them after an updateauthorized event, and records the push and the event's
// authorization code (which was not exchanged: the redirect page asking for it is answered
// from this account) in the same transaction. Its tokens and refresh token are left alone. It
// reports whether the context changed; a change is announced to API nodes.
func (s *Store) UpdateAuthorizerContext(ctx context.Context, comp ComponentEndpoint, push *Push, a Account, code string, ac AuthorizerContext) (bool, error) {
	var changed bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if push != nil {
			if err := recordPush(ctx, q, comp, *push); err != nil {
				return err
			}
		}
		if err := recordCode(ctx, q, comp, a.TenantID, a.ID, code); err != nil {
			return err
		}
		var err error
		changed, err = storeAuthorizerContext(ctx, q, a.ID, ac)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("authorization of %s: %w", a.AppID, err)
	}
	return changed, nil
}

// StoreAuthorizerContext keeps an authorizer's context as WeChat reported it (the daily
// read), and reports whether it changed.
func (s *Store) StoreAuthorizerContext(ctx context.Context, accountID int64, ac AuthorizerContext) (bool, error) {
	changed, err := storeAuthorizerContext(ctx, s.q, accountID, ac)
	if err != nil {
		return false, fmt.Errorf("context of authorizer %d: %w", accountID, err)
	}
	return changed, nil
}

func storeAuthorizerContext(ctx context.Context, q *dbsqlc.Queries, accountID int64, ac AuthorizerContext) (bool, error) {
	authorization, err := ac.authorizationDoc()
	if err != nil {
		return false, err
	}
	wechatInfo, _ := ac.wechatDoc()
	changed, err := q.AuthorizerContextStore(ctx, dbsqlc.AuthorizerContextStoreParams{
		AccountID: accountID, WechatInfo: wechatInfo, AuthorizationInfo: authorization})
	if err != nil {
		return false, notFound(err, fmt.Sprintf("authorizer %d", accountID))
	}
	return changed, nil
}

// RevokeAuthorization records an unauthorized event: the authorizer's account becomes
// unauthorized, its credentials stop being refreshed and are no longer served, and the push
// is recorded in the same transaction. It returns the account's id, or 0 when the appid is
// not the component's authorizer (an unknown one is acknowledged and changes nothing).
func (s *Store) RevokeAuthorization(ctx context.Context, comp ComponentEndpoint, push *Push, appid string, at time.Time) (int64, error) {
	var accountID int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if push != nil {
			if err := recordPush(ctx, q, comp, *push); err != nil {
				return err
			}
		}
		id, err := q.AuthorizerRevoke(ctx, dbsqlc.AuthorizerRevokeParams{
			Appid: appid, ComponentAccountID: &comp.AccountID,
			Reason: fmt.Sprintf("the account withdrew its authorization of %s at %s", comp.AppID, at.UTC().Format(time.RFC3339)),
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		accountID = id
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("revoke %s for component %s: %w", appid, comp.AppID, err)
	}
	return accountID, nil
}

// AuthorizedByCode returns the authorizer an authorization code of comp is for, when wxhub
// exchanged or received that code in the last hour (ErrNotFound otherwise).
func (s *Store) AuthorizedByCode(ctx context.Context, comp ComponentEndpoint, code string) (Account, error) {
	sum := sha256.Sum256([]byte(code))
	row, err := s.q.AuthorizationCodeAccount(ctx, dbsqlc.AuthorizationCodeAccountParams{CodeSha256: sum[:], ComponentAccountID: comp.AccountID})
	if err != nil {
		return Account{}, notFound(err, "an authorization code of "+comp.AppID)
	}
	return toAccount(row.Account)
}

// PruneAuthorizationCodes forgets the codes recorded more than an hour ago, which WeChat
// refuses as expired anyway.
func (s *Store) PruneAuthorizationCodes(ctx context.Context) (int64, error) {
	n, err := s.q.AuthorizationCodesPrune(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune authorization codes: %w", err)
	}
	return n, nil
}

// AuthorizerDue is an authorizer whose context is due to be read from WeChat again.
type AuthorizerDue struct {
	AccountID          int64
	TenantID           int64
	AppID              string
	ComponentAccountID int64
	ComponentAppID     string
}

// AuthorizersContextDue lists up to max active authorizers whose context was last read
// before cutoff, oldest first.
func (s *Store) AuthorizersContextDue(ctx context.Context, cutoff time.Time, max int) ([]AuthorizerDue, error) {
	rows, err := s.q.AuthorizerContextDue(ctx, dbsqlc.AuthorizerContextDueParams{Cutoff: &cutoff, Max: int32(max)})
	if err != nil {
		return nil, fmt.Errorf("authorizers due for their context: %w", err)
	}
	out := make([]AuthorizerDue, len(rows))
	for i, r := range rows {
		out[i] = AuthorizerDue{AccountID: r.ID, TenantID: r.TenantID, AppID: r.Appid, ComponentAccountID: r.ComponentAccountID, ComponentAppID: r.ComponentAppid}
	}
	return out, nil
}
