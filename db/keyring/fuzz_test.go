package keyring_test

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"wxhub/db/keyring"
)

// minEchoLen is the shortest piece of key material the error check looks for:
// shorter pieces match ordinary words of the message by chance.
const minEchoLen = 8

// parseErrorTemplates are Parse's messages with "\x00" where an entry number
// or a quoted key id goes. A piece of the input that occurs in them (a "key"
// made of the words "standard base64", say) is no echo.
var parseErrorTemplates = []string{
	keyring.EnvVar + ": \x00: want id:base64-key with an id of letters, digits, _ or -",
	keyring.EnvVar + ": key id \x00 appears twice",
	keyring.EnvVar + ": key \x00: want 32 bytes in standard base64",
}

var entryNumber = regexp.MustCompile(`entry [0-9]+`)

// FuzzParse feeds arbitrary WXHUB_KEYS specs to Parse. Parse must never panic;
// its errors must not quote the key material (whatever follows the first ':'
// of an entry); and a ring it accepts must seal and open with the same
// associated data, refuse other associated data, and refuse an altered
// ciphertext.
func FuzzParse(f *testing.F) {
	const (
		keyA = "a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
		keyB = "b:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE="
	)
	seeds := []string{
		keyA,
		keyB + "," + keyA,
		" " + keyA + " , " + keyB + " ",
		"k_1-x:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"",
		",",
		keyA + ",",
		keyA + "," + keyA,
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"a:c2VjcmV0LWtleS1tYXRlcmlhbA==",
		"a:@@not-base64-secret-material@@",
		"a b:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", // unpadded
		"a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=:x",
		"a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
		"0123456789abcdef0123456789abcdefX:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
	}
	for i, s := range seeds {
		f.Add(s, []byte("app-secret"), []byte("accounts/wx1/secret"), []byte("accounts/wx2/secret"), uint(i))
	}
	f.Add(keyA, []byte{}, []byte{}, []byte{0}, uint(0))

	f.Fuzz(func(t *testing.T, spec string, plaintext, ad, otherAD []byte, flip uint) {
		ring, err := keyring.Parse(spec)
		if err != nil {
			if ring != nil {
				t.Fatalf("Parse(%q) returned a ring with error %v", spec, err)
			}
			checkNoKeyMaterial(t, spec, err)
			return
		}
		if ring == nil {
			t.Fatalf("Parse(%q) returned neither a ring nor an error", spec)
		}

		entries := strings.Split(spec, ",")
		firstID, _, _ := strings.Cut(strings.TrimSpace(entries[0]), ":")
		if got := ring.CurrentID(); got != firstID {
			t.Fatalf("Parse(%q).CurrentID() = %q, want the first entry's id %q", spec, got, firstID)
		}
		for _, e := range entries {
			id, _, _ := strings.Cut(strings.TrimSpace(e), ":")
			if !ring.Has(id) {
				t.Fatalf("Parse(%q) accepted entry %q but the ring has no key %q", spec, e, id)
			}
		}

		id, ct, err := ring.Seal(plaintext, ad)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if id != ring.CurrentID() {
			t.Fatalf("Seal used key %q, want the current key %q", id, ring.CurrentID())
		}
		got, err := ring.Open(id, ct, ad)
		if err != nil {
			t.Fatalf("Open with the same associated data: %v", err)
		}
		if !bytes.Equal(got, plaintext) {
			t.Fatalf("Open returned %q, sealed %q", got, plaintext)
		}
		if !bytes.Equal(ad, otherAD) {
			if _, err := ring.Open(id, ct, otherAD); !errors.Is(err, keyring.ErrDecrypt) {
				t.Fatalf("Open with associated data %q instead of %q: err = %v, want ErrDecrypt", otherAD, ad, err)
			}
		}
		altered := bytes.Clone(ct)
		altered[flip%uint(len(altered))] ^= 1 << (flip / uint(len(altered)) % 8)
		if _, err := ring.Open(id, altered, ad); !errors.Is(err, keyring.ErrDecrypt) {
			t.Fatalf("Open of an altered ciphertext: err = %v, want ErrDecrypt", err)
		}
		if _, err := ring.Open(id, ct[:len(ct)-1], ad); !errors.Is(err, keyring.ErrDecrypt) {
			t.Fatalf("Open of a truncated ciphertext: err = %v, want ErrDecrypt", err)
		}
	})
}

// checkNoKeyMaterial fails t if err quotes at least minEchoLen consecutive bytes
// of the key material of any entry of spec. Key ids are public (the messages
// quote them to say which entry is wrong), so each quoted id and each entry
// number is masked before the search, and pieces of the fixed message text
// are excused.
func checkNoKeyMaterial(t *testing.T, spec string, err error) {
	t.Helper()
	msg := entryNumber.ReplaceAllString(err.Error(), "\x00")
	var materials []string
	for _, e := range strings.Split(spec, ",") {
		id, material, ok := strings.Cut(strings.TrimSpace(e), ":")
		msg = strings.ReplaceAll(msg, strconv.Quote(id), "\x00")
		if ok {
			materials = append(materials, material)
		}
	}
	for _, m := range materials {
		for i := 0; i+minEchoLen <= len(m); i++ {
			piece := m[i : i+minEchoLen]
			if !strings.Contains(msg, piece) || containsAny(parseErrorTemplates, piece) {
				continue
			}
			t.Fatalf("Parse error quotes key material %q of the input: %s", piece, err)
		}
	}
}

func containsAny(haystacks []string, needle string) bool {
	for _, h := range haystacks {
		if strings.Contains(h, needle) {
			return true
		}
	}
	return false
}
