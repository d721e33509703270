package callback

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// The errors of this package. Callers classify with errors.Is; the text
// never includes key material, plaintext or the ciphertext.
var (
	// ErrBadKey is an EncodingAESKey that is not 43 characters of base64
	// decoding to 32 bytes, or a Decrypt given no key at all.
	ErrBadKey = errors.New("callback: bad EncodingAESKey")
	// ErrMalformed is a ciphertext or XML that none of the keys turns into a
	// well-formed message: bad base64, a length that is not a whole number
	// of 32-byte blocks, bad padding, a length field that disagrees with the
	// plaintext, or XML without the elements WeChat always sends.
	ErrMalformed = errors.New("callback: malformed message")
	// ErrWrongAppID is a well-formed message whose trailing appid is not the
	// expected one: meant for another platform, or an empty appid asked for.
	ErrWrongAppID = errors.New("callback: message for another appid")
)

const (
	// encodingAESKeyLen is the length of an EncodingAESKey in characters.
	encodingAESKeyLen = 43
	// blockLen is the PKCS#7 block WeChat pads to: 32 bytes, not AES's 16.
	blockLen = 32
	// randomLen and lengthLen are the random prefix and the big-endian
	// length of msg that precede msg in the plaintext.
	randomLen = 16
	lengthLen = 4
)

// Key is an AES-256 key derived from an EncodingAESKey by ParseKey.
type Key [32]byte

// String hides the key, so that a Key formatted by mistake (%v, %s, %x)
// does not end up in a log.
func (Key) String() string { return "callback.Key(redacted)" }

// GoString hides the key from %#v as well.
func (Key) GoString() string { return "callback.Key(redacted)" }

// ParseKey derives the AES key from a platform's 43-character
// EncodingAESKey: base64-decode it with one "=" appended, which must give
// exactly 32 bytes. Anything else is ErrBadKey.
func ParseKey(encodingAESKey string) (Key, error) {
	var k Key
	if len(encodingAESKey) != encodingAESKeyLen || strings.ContainsAny(encodingAESKey, "\r\n=") {
		return k, fmt.Errorf("%w: want %d base64 characters", ErrBadKey, encodingAESKeyLen)
	}
	// Not Strict: the 43rd character carries two bits beyond the 256 of
	// the key, and WeChat's keys (random letters and digits, like the
	// "…ABCDEFG" of its own sample) leave them set.
	b, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("%w: not base64 of 32 bytes", ErrBadKey)
	}
	copy(k[:], b)
	return k, nil
}

// Encrypt encrypts msg for the platform appID as WeChat does and returns the
// base64 text of the Encrypt element. The 16-byte prefix is read from
// random (crypto/rand.Reader in production; a fixed reader reproduces
// WeChat's published test vectors).
func Encrypt(key Key, appID string, msg []byte, random io.Reader) (string, error) {
	if appID == "" {
		return "", fmt.Errorf("encrypt callback message: %w: empty appid", ErrWrongAppID)
	}
	if uint64(len(msg)) > math.MaxUint32 {
		return "", errors.New("encrypt callback message: message longer than 4 GiB")
	}
	n := randomLen + lengthLen + len(msg) + len(appID)
	pad := blockLen - n%blockLen
	plain := make([]byte, n+pad)
	if _, err := io.ReadFull(random, plain[:randomLen]); err != nil {
		return "", fmt.Errorf("encrypt callback message: read random prefix: %w", err)
	}
	binary.BigEndian.PutUint32(plain[randomLen:], uint32(len(msg)))
	copy(plain[randomLen+lengthLen:], msg)
	copy(plain[randomLen+lengthLen+len(msg):], appID)
	for i := n; i < len(plain); i++ {
		plain[i] = byte(pad)
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return "", fmt.Errorf("encrypt callback message: %w", err)
	}
	cipher.NewCBCEncrypter(block, key[:aes.BlockSize]).CryptBlocks(plain, plain)
	return base64.StdEncoding.EncodeToString(plain), nil
}

// Decrypt decrypts the base64 text of an Encrypt element, trying each key in
// order (the current key first, then the previous one while keys are being
// rotated), and returns msg. A key succeeds only if the padding is exact
// PKCS#7 to 32-byte blocks, the length field matches the plaintext exactly
// and the trailing appid equals appID. When no key succeeds the error is
// ErrWrongAppID if some key gave a well-formed message for another appid,
// ErrMalformed otherwise, and ErrBadKey if keys is empty.
func Decrypt(keys []Key, appID string, encrypted string) ([]byte, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("decrypt callback message: %w: no key", ErrBadKey)
	}
	if appID == "" {
		return nil, fmt.Errorf("decrypt callback message: %w: empty appid", ErrWrongAppID)
	}
	// Strict base64 without line breaks (which the decoder would skip): one
	// ciphertext has one text, so a receiver can compare or deduplicate
	// them as strings.
	if strings.ContainsAny(encrypted, "\r\n") {
		return nil, fmt.Errorf("decrypt callback message: %w: line break in base64", ErrMalformed)
	}
	ct, err := base64.StdEncoding.Strict().DecodeString(encrypted)
	if err != nil {
		return nil, fmt.Errorf("decrypt callback message: %w: bad base64", ErrMalformed)
	}
	if len(ct) == 0 || len(ct)%blockLen != 0 {
		return nil, fmt.Errorf("decrypt callback message: %w: length not a multiple of %d", ErrMalformed, blockLen)
	}
	last := ErrMalformed
	for i := range keys {
		msg, err := decryptWith(&keys[i], appID, ct)
		if err == nil {
			return msg, nil
		}
		if errors.Is(err, ErrWrongAppID) {
			last = ErrWrongAppID
		}
	}
	return nil, fmt.Errorf("decrypt callback message with %d key(s): %w", len(keys), last)
}

// decryptWith decrypts ct, a non-empty multiple of 32 bytes, with one key.
func decryptWith(key *Key, appID string, ct []byte) ([]byte, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, key[:aes.BlockSize]).CryptBlocks(plain, ct)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > blockLen {
		return nil, ErrMalformed
	}
	for _, b := range plain[len(plain)-pad:] {
		if int(b) != pad {
			return nil, ErrMalformed
		}
	}
	plain = plain[:len(plain)-pad]
	if len(plain) < randomLen+lengthLen {
		return nil, ErrMalformed
	}
	n := binary.BigEndian.Uint32(plain[randomLen:])
	rest := plain[randomLen+lengthLen:]
	if uint64(n) > uint64(len(rest)) {
		return nil, ErrMalformed
	}
	msg, trailer := rest[:n], rest[n:]
	if len(trailer) == 0 {
		return nil, ErrMalformed
	}
	if !bytes.Equal(trailer, []byte(appID)) {
		return nil, ErrWrongAppID
	}
	return slices.Clip(msg), nil
}

// Signature is WeChat's msg_signature: the lowercase hex SHA-1 of token,
// timestamp, nonce and the Encrypt text, sorted as strings and concatenated.
func Signature(token, timestamp, nonce, encrypted string) string {
	parts := []string{token, timestamp, nonce, encrypted}
	slices.Sort(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, "")))
	return hex.EncodeToString(sum[:])
}

// VerifySignature says whether signature is the msg_signature of the other
// arguments, comparing in constant time. Only WeChat's lowercase hex form is
// accepted.
func VerifySignature(token, timestamp, nonce, encrypted, signature string) bool {
	want := Signature(token, timestamp, nonce, encrypted)
	return subtle.ConstantTimeCompare([]byte(want), []byte(signature)) == 1
}
