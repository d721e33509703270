package db

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"wxhub/db/dbsqlc"
)

// GatewayToken is a token a gateway node handed out: whose it is and until when.
type GatewayToken struct {
	AccountID  int64
	TenantID   int64
	AppID      string
	Kind       string // the account's kind
	CorpID     string // a WeCom app's corp
	ValidUntil time.Time
}

// RecordGatewayToken remembers a token the gateway hands out for accountID, so that every
// node recognises it until validUntil. Only the token's SHA-256 is stored.
func (s *Store) RecordGatewayToken(ctx context.Context, token string, tenantID, accountID int64, validUntil time.Time) error {
	sum := sha256.Sum256([]byte(token))
	err := s.q.GatewayTokenRecord(ctx, dbsqlc.GatewayTokenRecordParams{
		TokenSha256: sum[:], TenantID: tenantID, AccountID: accountID, ValidUntil: validUntil})
	if err != nil {
		return fmt.Errorf("record a gateway token of account %d: %w", accountID, err)
	}
	return nil
}

// FindGatewayToken returns whose a token a gateway handed out is; ErrNotFound if no node
// recorded it (or it was pruned).
func (s *Store) FindGatewayToken(ctx context.Context, token string) (GatewayToken, error) {
	sum := sha256.Sum256([]byte(token))
	row, err := s.q.GatewayTokenGet(ctx, sum[:])
	if err != nil {
		return GatewayToken{}, notFound(err, "a gateway token")
	}
	return GatewayToken{AccountID: row.ID, TenantID: row.TenantID, AppID: row.Appid, Kind: row.Kind,
		CorpID: row.CorpID, ValidUntil: row.ValidUntil}, nil
}

// PruneGatewayTokens forgets the tokens that have expired.
func (s *Store) PruneGatewayTokens(ctx context.Context) (int64, error) {
	n, err := s.q.GatewayTokensPrune(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune gateway tokens: %w", err)
	}
	return n, nil
}
