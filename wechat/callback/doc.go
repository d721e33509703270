// Package callback is WeChat's message encryption for the callbacks a
// third-party platform (component) receives: the component_verify_ticket
// pushed every ten minutes and the authorization events (authorized,
// updateauthorized, unauthorized).
//
// WeChat POSTs an XML envelope whose Encrypt element is
// base64(AES-256-CBC(key, IV = key[:16], PKCS#7 to 32-byte blocks,
// 16 random bytes ‖ 4-byte big-endian length ‖ msg ‖ component appid)), and
// signs it in the query: msg_signature = hex(sha1(concat(sorted([token,
// timestamp, nonce, Encrypt])))). The key is the platform's 43-character
// EncodingAESKey decoded as base64 with one "=" appended.
//
// The same code runs on both sides: wxhub decrypts what WeChat pushes, and
// the simulator encrypts what it pushes, so a test that passes against the
// simulator proves the receiving side reads WeChat's format.
//
// There is no MAC in this scheme: a receiver must check msg_signature
// (VerifySignature) before decrypting, and Decrypt checks the padding, the
// length and the trailing appid strictly so that a ciphertext made with
// another key or for another platform is refused. Errors are one of the
// sentinels ErrBadKey, ErrMalformed and ErrWrongAppID, possibly wrapped with
// a detail, and never contain key material or plaintext.
package callback
