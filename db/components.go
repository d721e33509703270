package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"wxhub/db/dbsqlc"
)

// VerifyTicketLifetime is how long a component_verify_ticket stays usable after WeChat made
// it; WeChat pushes a new one every ten minutes.
const VerifyTicketLifetime = 12 * time.Hour

// CallbackConfig is what a component's callback pushes are checked and decrypted with: the
// callback token (the signature's secret) and the EncodingAESKey, with the previous key kept
// while WeChat may still use it after a change.
type CallbackConfig struct {
	Token          string `json:"token"`
	AESKey         string `json:"aes_key"`
	PreviousAESKey string `json:"previous_aes_key,omitempty"`
}

// callbackAD binds a component's sealed callback configuration to its account.
func callbackAD(accountID int64) []byte {
	return fmt.Appendf(nil, "wxhub/component_callbacks/%d", accountID)
}

// ComponentEndpoint is a component as its callback endpoint sees it.
type ComponentEndpoint struct {
	AccountID int64
	TenantID  int64
	AppID     string
	Status    string
	Callback  CallbackConfig
}

// GetComponentEndpoint finds a component account and opens its callback configuration.
func (s *Store) GetComponentEndpoint(ctx context.Context, appid string) (ComponentEndpoint, error) {
	row, err := s.q.ComponentCallbackGet(ctx, appid)
	if err != nil {
		return ComponentEndpoint{}, notFound(err, "component "+appid)
	}
	c := ComponentEndpoint{AccountID: row.ID, TenantID: row.TenantID, AppID: row.Appid, Status: row.Status}
	plain, err := s.open(&row.ConfigKeyID, row.ConfigCiphertext, callbackAD(row.ID))
	if err != nil {
		return ComponentEndpoint{}, fmt.Errorf("callback configuration of component %s: %w", appid, err)
	}
	if err := json.Unmarshal([]byte(plain), &c.Callback); err != nil {
		return ComponentEndpoint{}, fmt.Errorf("callback configuration of component %s: %w", appid, err)
	}
	return c, nil
}

// sealCallback encrypts a component's callback configuration for its account row.
func (s *Store) sealCallback(accountID int64, cfg CallbackConfig) (keyID string, ciphertext []byte, err error) {
	doc, err := json.Marshal(cfg)
	if err != nil {
		return "", nil, err
	}
	return s.ring.Seal(doc, callbackAD(accountID))
}

// ErrReplayed means a push with the same timestamp and nonce was accepted before.
var ErrReplayed = errors.New("push already received (same timestamp and nonce)")

// Push identifies a signed push from WeChat: a second push with the same pair is a replay.
type Push struct {
	Timestamp int64
	Nonce     string
}

// recordPush remembers a verified push, or returns ErrReplayed when it was seen before.
func recordPush(ctx context.Context, q *dbsqlc.Queries, c ComponentEndpoint, p Push) error {
	n, err := q.CallbackNonceRecord(ctx, dbsqlc.CallbackNonceRecordParams{
		TenantID: c.TenantID, AccountID: c.AccountID, Timestamp: p.Timestamp, Nonce: p.Nonce,
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrReplayed
	}
	return nil
}

// AcceptPush records a verified push that needs nothing else stored (an event wxhub does
// not act on); ErrReplayed when it was accepted before.
func (s *Store) AcceptPush(ctx context.Context, c ComponentEndpoint, p Push) error {
	if err := recordPush(ctx, s.q, c, p); err != nil {
		return fmt.Errorf("push to component %s: %w", c.AppID, err)
	}
	return nil
}

// PruneCallbackNonces forgets the pushes older than window, which are refused on their
// timestamp anyway.
func (s *Store) PruneCallbackNonces(ctx context.Context, window time.Duration) (int64, error) {
	n, err := s.q.CallbackNoncesPrune(ctx, window.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune push nonces: %w", err)
	}
	return n, nil
}

// StoreVerifyTicket keeps the component_verify_ticket WeChat made at createdAt, unless a
// newer one is stored already, and records the push in the same transaction: a replay is
// refused (ErrReplayed), and a push that failed to store can be sent again. It reports
// whether the ticket was stored.
func (s *Store) StoreVerifyTicket(ctx context.Context, c ComponentEndpoint, p Push, ticket string, createdAt time.Time) (bool, error) {
	keyID, ciphertext, err := s.ring.Seal([]byte(ticket), valueAD(c.AccountID, "verify_ticket"))
	if err != nil {
		return false, fmt.Errorf("store verify ticket of component %s: %w", c.AppID, err)
	}
	expiresAt := createdAt.Add(VerifyTicketLifetime)
	var generation int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := recordPush(ctx, q, c, p); err != nil {
			return err
		}
		generation, err = q.VerifyTicketStore(ctx, dbsqlc.VerifyTicketStoreParams{
			AccountID: c.AccountID, ValueCiphertext: ciphertext, ValueKeyID: keyID,
			ValueFingerprint: Fingerprint(ticket), ExpiresAt: &expiresAt,
		})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store verify ticket of component %s: %w", c.AppID, err)
	}
	return generation > 0, nil
}
