package callback_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"strings"
	"testing"

	"wxhub/wechat/callback"
)

// FuzzDecrypt feeds Decrypt arbitrary ciphertext texts and appids with the
// current and the previous key. It must never panic, and it may only return
// a message for a text that Encrypt produces for that message and appid with
// one of the keys: the fuzzer recovers the random prefix with the key, seals
// the message again and requires the very same text. So no garbage,
// truncation or padding trick yields plaintext, and no message for another
// appid gets through.
func FuzzDecrypt(f *testing.F) {
	sample, err := callback.ParseKey(sampleEncodingAESKey)
	if err != nil {
		f.Fatal(err)
	}
	cur, err := callback.ParseKey(currentEncodingAESKey)
	if err != nil {
		f.Fatal(err)
	}
	prev, err := callback.ParseKey(previousEncodingAESKey)
	if err != nil {
		f.Fatal(err)
	}
	keys := []callback.Key{cur, prev, sample}

	f.Add(javaCipher, javaAppID)
	f.Add(javaCipher2, javaAppID)
	f.Add(javaCipher, pyAppID)
	f.Add(javaCipher[:len(javaCipher)-4], javaAppID)
	f.Add("", javaAppID)
	f.Add("AAAA", javaAppID)
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 64)), javaAppID)
	for _, k := range []callback.Key{cur, prev} {
		for _, msg := range []string{"", "x", strings.Repeat("y", 12), "<xml><InfoType>component_verify_ticket</InfoType></xml>"} {
			enc, err := callback.Encrypt(k, javaAppID, []byte(msg), strings.NewReader(javaRandom))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(enc, javaAppID)
			f.Add(enc, "wx")
		}
	}

	f.Fuzz(func(t *testing.T, encrypted, appID string) {
		msg, err := callback.Decrypt(keys, appID, encrypted)
		if err != nil {
			if msg != nil {
				t.Fatalf("error %v with a message", err)
			}
			if !errorsIsOneOf(err, callback.ErrMalformed, callback.ErrWrongAppID) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		ct, err := base64.StdEncoding.DecodeString(encrypted)
		if err != nil || len(ct) < aes.BlockSize {
			t.Fatalf("Decrypt accepted %q, which is not base64 of a block", encrypted)
		}
		for _, k := range keys {
			prefix := make([]byte, aes.BlockSize)
			block, err := aes.NewCipher(k[:])
			if err != nil {
				t.Fatal(err)
			}
			cipher.NewCBCDecrypter(block, k[:aes.BlockSize]).CryptBlocks(prefix, ct[:aes.BlockSize])
			again, err := callback.Encrypt(k, appID, msg, bytes.NewReader(prefix))
			if err != nil {
				t.Fatal(err)
			}
			if again == encrypted {
				return
			}
		}
		t.Fatalf("Decrypt returned %q for %q and appid %q, which Encrypt does not produce", msg, encrypted, appID)
	})
}
