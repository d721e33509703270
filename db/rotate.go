package db

import (
	"context"
	"fmt"
	"strings"

	"wxhub/db/dbsqlc"
)

// CheckKeyRing fails, naming the ids, when stored ciphertexts use keys the ring lacks:
// starting without them would fail every read of those rows later, one by one.
func (s *Store) CheckKeyRing(ctx context.Context) error {
	ids, err := s.q.KeyIDsInUse(ctx)
	if err != nil {
		return fmt.Errorf("check key ring: %w", err)
	}
	var missing []string
	for _, id := range ids {
		if !s.ring.Has(id) {
			missing = append(missing, fmt.Sprintf("%q", id))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("stored secrets or tokens are encrypted with key id %s, which WXHUB_KEYS does not hold; add the key(s) back to the ring", strings.Join(missing, ", "))
	}
	return nil
}

// RotationProgress reports how far a rotation got.
type RotationProgress struct {
	Secrets, Credentials int // rows re-encrypted so far (secrets: AppSecrets and components' callback settings)
	Skipped              int // rows changed concurrently (a newer write is under the current key already)
}

// RotateKeys re-encrypts every stored secret and credential value under the ring's current
// key, batch by batch and online: each row is replaced only if it did not change since it
// was read, and reads keep working throughout because the old key stays in the ring.
func (s *Store) RotateKeys(ctx context.Context, batch int, progress func(RotationProgress)) (RotationProgress, error) {
	var p RotationProgress
	current := s.ring.CurrentID()
	var after int64
	for {
		rows, err := s.q.AccountSecretsNotUnderKey(ctx, dbsqlc.AccountSecretsNotUnderKeyParams{CurrentKeyID: current, AfterID: after, Max: int32(batch)})
		if err != nil {
			return p, fmt.Errorf("rotate secrets: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			after = r.ID
			keyID, ct, err := s.reseal(r.SecretKeyID, r.SecretCiphertext, secretAD(r.Appid))
			if err != nil {
				return p, fmt.Errorf("rotate secret of account %s: %w", r.Appid, err)
			}
			n, err := s.q.AccountSecretReencrypt(ctx, dbsqlc.AccountSecretReencryptParams{
				ID: r.ID, NewCiphertext: ct, NewKeyID: *keyID, OldKeyID: *r.SecretKeyID, OldCiphertext: r.SecretCiphertext,
			})
			if err != nil {
				return p, fmt.Errorf("rotate secret of account %s: %w", r.Appid, err)
			}
			if n == 0 {
				p.Skipped++
			} else {
				p.Secrets++
			}
		}
		progress(p)
	}
	for after = 0; ; {
		rows, err := s.q.ComponentCallbacksNotUnderKey(ctx, dbsqlc.ComponentCallbacksNotUnderKeyParams{CurrentKeyID: current, AfterID: after, Max: int32(batch)})
		if err != nil {
			return p, fmt.Errorf("rotate callback settings: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			after = r.AccountID
			keyID, ct, err := s.reseal(&r.ConfigKeyID, r.ConfigCiphertext, callbackAD(r.AccountID))
			if err != nil {
				return p, fmt.Errorf("rotate callback settings of account %d: %w", r.AccountID, err)
			}
			n, err := s.q.ComponentCallbackReencrypt(ctx, dbsqlc.ComponentCallbackReencryptParams{
				AccountID: r.AccountID, NewCiphertext: ct, NewKeyID: *keyID, OldKeyID: r.ConfigKeyID, OldCiphertext: r.ConfigCiphertext,
			})
			if err != nil {
				return p, fmt.Errorf("rotate callback settings of account %d: %w", r.AccountID, err)
			}
			if n == 0 {
				p.Skipped++
			} else {
				p.Secrets++
			}
		}
		progress(p)
	}
	var afterAccount int64
	var afterKind string
	for {
		rows, err := s.q.CredentialsNotUnderKey(ctx, dbsqlc.CredentialsNotUnderKeyParams{
			CurrentKeyID: current, AfterAccountID: afterAccount, AfterKind: afterKind, Max: int32(batch)})
		if err != nil {
			return p, fmt.Errorf("rotate credentials: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			afterAccount, afterKind = r.AccountID, r.Kind
			ad := valueAD(r.AccountID, r.Kind)
			in := dbsqlc.CredentialReencryptParams{AccountID: r.AccountID, Kind: r.Kind,
				OldValueCiphertext: r.ValueCiphertext, OldPreviousCiphertext: r.PreviousCiphertext,
				NewValueCiphertext: r.ValueCiphertext, NewValueKeyID: r.ValueKeyID,
				NewPreviousCiphertext: r.PreviousCiphertext, NewPreviousKeyID: r.PreviousKeyID}
			if in.NewValueKeyID, in.NewValueCiphertext, err = s.reseal(r.ValueKeyID, r.ValueCiphertext, ad); err != nil {
				return p, fmt.Errorf("rotate %s of account %d: %w", r.Kind, r.AccountID, err)
			}
			if in.NewPreviousKeyID, in.NewPreviousCiphertext, err = s.reseal(r.PreviousKeyID, r.PreviousCiphertext, ad); err != nil {
				return p, fmt.Errorf("rotate previous %s of account %d: %w", r.Kind, r.AccountID, err)
			}
			n, err := s.q.CredentialReencrypt(ctx, in)
			if err != nil {
				return p, fmt.Errorf("rotate %s of account %d: %w", r.Kind, r.AccountID, err)
			}
			if n == 0 {
				p.Skipped++
			} else {
				p.Credentials++
			}
		}
		progress(p)
	}
	return p, nil
}

// reseal re-encrypts a ciphertext under the current key; nil stays nil.
func (s *Store) reseal(keyID *string, ciphertext, ad []byte) (*string, []byte, error) {
	if ciphertext == nil {
		return nil, nil, nil
	}
	plain, err := s.open(keyID, ciphertext, ad)
	if err != nil {
		return nil, nil, err
	}
	id, ct, err := s.ring.Seal([]byte(plain), ad)
	return &id, ct, err
}
