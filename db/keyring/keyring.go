// Package keyring encrypts what wxhub stores in PostgreSQL (AppSecrets, refresh tokens,
// credential values) with AES-256-GCM, so a database dump or a DBA never sees a usable
// secret.
//
// The ring comes from WXHUB_KEYS: comma-separated `id:base64(32 bytes)` entries, the first
// one current. New ciphertexts use the current key; any key in the ring opens ciphertexts
// made under it, so rotation can re-encrypt rows online.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// EnvVar names the environment variable that holds the ring.
const EnvVar = "WXHUB_KEYS"

// ErrUnknownKey means a ciphertext names a key id that is not in the ring.
var ErrUnknownKey = errors.New("key id not in the key ring")

// ErrDecrypt means the ciphertext was altered, or was made for another row or field.
var ErrDecrypt = errors.New("ciphertext does not open with its key and associated data")

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Ring holds the keys; it is safe for concurrent use.
type Ring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// Parse reads a ring in WXHUB_KEYS format. Errors never echo key material.
func Parse(spec string) (*Ring, error) {
	r := &Ring{aeads: map[string]cipher.AEAD{}}
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		id, encoded, ok := strings.Cut(entry, ":")
		if !ok || !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("%s: entry %d: want id:base64-key with an id of letters, digits, _ or -", EnvVar, i+1)
		}
		if _, dup := r.aeads[id]; dup {
			return nil, fmt.Errorf("%s: key id %q appears twice", EnvVar, id)
		}
		key, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("%s: key %q: want 32 bytes in standard base64", EnvVar, id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("%s: key %q: %w", EnvVar, id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%s: key %q: %w", EnvVar, id, err)
		}
		r.aeads[id] = aead
		if i == 0 {
			r.current = id
		}
	}
	return r, nil
}

// Generate returns a new random ring spec with one key named id, for development setups.
func Generate(id string) (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return id + ":" + base64.StdEncoding.EncodeToString(key), nil
}

// CurrentID is the id of the key new ciphertexts are made with.
func (r *Ring) CurrentID() string { return r.current }

// Has reports whether the ring holds a key with this id.
func (r *Ring) Has(id string) bool {
	_, ok := r.aeads[id]
	return ok
}

// Seal encrypts plaintext under the current key. The associated data names the row and
// field the ciphertext belongs to, so a ciphertext copied elsewhere fails to open. The
// result is nonce ‖ ciphertext ‖ tag.
func (r *Ring) Seal(plaintext, associatedData []byte) (keyID string, ciphertext []byte, err error) {
	aead := r.aeads[r.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("seal: %w", err)
	}
	return r.current, aead.Seal(nonce, nonce, plaintext, associatedData), nil
}

// Open decrypts a ciphertext made by Seal under keyID with the same associated data.
func (r *Ring) Open(keyID string, ciphertext, associatedData []byte) ([]byte, error) {
	aead, ok := r.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
	}
	if len(ciphertext) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrDecrypt
	}
	nonce, sealed := ciphertext[:aead.NonceSize()], ciphertext[aead.NonceSize():]
	plaintext, err := aead.Open(nil, nonce, sealed, associatedData)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}
