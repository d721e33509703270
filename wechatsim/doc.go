// Package wechatsim is an in-process simulator of WeChat's credential APIs for
// official accounts and mini programs. It is the test oracle for wxhub: it
// follows the rules written down in WECHAT.md (a new classic token kills the
// previous one after the overlap, stable_token's normal and force modes, daily
// quotas counted per China day, force limits, tickets, quota tools) so that a
// test passing against it means something against the real service.
//
// The simulator is an http.Handler. Mount it on an httptest.Server (or the
// `wxhub sim` listener) and point a WeChat client at it instead of
// https://api.weixin.qq.com. Besides WeChat's own endpoints it serves a few
// simulator-only endpoints under /sim/ to create accounts, inject faults and
// read counters; Client wraps those for tests in other packages.
//
// Time comes from Config.Now so tests can move a fake clock instead of
// sleeping. The simulator never scales time: expires_in is always the true
// remaining lifetime under that clock.
//
// Everything that touches one appid is serialized by that account's mutex;
// accounts, issued tokens and faults are looked up through structures that do
// not take a global lock, because benchmarks drive thousands of accounts at
// once.
package wechatsim
