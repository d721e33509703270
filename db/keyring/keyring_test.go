package keyring_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"wxhub/db/keyring"
)

const (
	keyA = "a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	keyB = "b:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE="
)

func TestSealOpensOnlyWithSameKeyAndAssociatedData(t *testing.T) {
	t.Parallel()
	ring, err := keyring.Parse(keyA)
	require.NoError(t, err)
	id, ct, err := ring.Seal([]byte("app-secret"), []byte("accounts/wx1/secret"))
	require.NoError(t, err)
	require.Equal(t, "a", id)
	require.NotContains(t, string(ct), "app-secret")

	pt, err := ring.Open(id, ct, []byte("accounts/wx1/secret"))
	require.NoError(t, err)
	require.Equal(t, "app-secret", string(pt))

	_, err = ring.Open(id, ct, []byte("accounts/wx2/secret"))
	require.ErrorIs(t, err, keyring.ErrDecrypt, "a ciphertext moved to another row must not open")
	ct[len(ct)-1] ^= 1
	_, err = ring.Open(id, ct, []byte("accounts/wx1/secret"))
	require.ErrorIs(t, err, keyring.ErrDecrypt)
	_, err = ring.Open("zz", ct, nil)
	require.ErrorIs(t, err, keyring.ErrUnknownKey)
}

func TestRotationKeepsOldCiphertextsReadable(t *testing.T) {
	t.Parallel()
	old, err := keyring.Parse(keyA)
	require.NoError(t, err)
	id, ct, err := old.Seal([]byte("v"), []byte("ad"))
	require.NoError(t, err)

	rotated, err := keyring.Parse(keyB + "," + keyA)
	require.NoError(t, err)
	require.Equal(t, "b", rotated.CurrentID())
	pt, err := rotated.Open(id, ct, []byte("ad"))
	require.NoError(t, err)
	require.Equal(t, "v", string(pt))
	newID, _, err := rotated.Seal([]byte("v"), []byte("ad"))
	require.NoError(t, err)
	require.Equal(t, "b", newID)
}

func TestParseRejectsBadRingsWithoutEchoingKeys(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, spec string }{
		{"empty", ""},
		{"no id", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
		{"short key", "a:c2VjcmV0LWtleS1tYXRlcmlhbA=="},
		{"not base64", "a:@@not-base64-secret-material@@"},
		{"duplicate id", keyA + "," + keyA},
		{"bad id", "a b:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := keyring.Parse(tt.spec)
			require.Error(t, err)
			_, material, _ := strings.Cut(tt.spec, ":")
			if material != "" {
				require.NotContains(t, err.Error(), material)
			}
		})
	}
}

func TestGenerateMakesAUsableRing(t *testing.T) {
	t.Parallel()
	spec, err := keyring.Generate("dev")
	require.NoError(t, err)
	ring, err := keyring.Parse(spec)
	require.NoError(t, err)
	require.Equal(t, "dev", ring.CurrentID())
}
