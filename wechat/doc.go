// Package wechat is wxhub's typed client for WeChat's credential APIs: the
// stable and classic access-token endpoints and getticket.
//
// It exists so that everything wxhub knows about talking to WeChat lives at
// one boundary. Refresh workers call Client and never see HTTP: they get a
// Token whose lifetime is exactly what WeChat answered, or an error that
// Classify turns into one of a handful of Kinds the worker acts on (retry,
// alert an operator, stop until the next quota day, ...).
//
// Errors from this package never contain the AppSecret or an access token.
// net/http reports transport failures as *url.Error, whose text is the whole
// request URL, and the classic token call carries the secret in its query
// (getticket carries the access token): a peer that logged such an error
// leaked its secret into every log pipeline. Here the URL is replaced with
// "<redacted>" while the underlying cause stays reachable through
// errors.Is/As, and anything echoed by WeChat or a proxy is scrubbed of the
// call's secrets before it becomes part of an error string.
package wechat
