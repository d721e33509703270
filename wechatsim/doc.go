// Package wechatsim is an in-process simulator of WeChat's credential APIs for
// official accounts and mini programs. It is the test oracle for wxhub: it
// follows the rules written down in docs/wechat.md (a new classic token kills the
// previous one after the overlap, stable_token's normal and force modes, daily
// quotas counted per China day, force limits, tickets and JS-SDK signatures,
// quota tools) so that a test passing against it means something against the
// real service.
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
// # Assumptions where WeChat is silent
//
// Where WeChat's documentation is vague the simulator takes the strictest
// reading wxhub must survive, or the one wxhub itself assumes, and makes it a
// named setting. None of these is a WeChat fact:
//
//   - Superseded classic tokens: WeChat promises only that "the old and the
//     new" token work during the overlap. One superseded token lives beside
//     the current one (Config.ClassicSurvivors, default 1): a third fetch
//     inside the overlap kills the first at once (40001).
//   - Tickets (jsapi, wx_card) follow the classic-token rules: a new ticket
//     supersedes the previous one of its type after the overlap, with the
//     same number of survivors.
//   - A stable_token force refresh kills the older stable tokens at once
//     (Config.ForceGrace, default false). The 30 s spacing of forces counts
//     every force call, refreshing or not.
//   - Daily quotas and the force limit reset at midnight in China, UTC+8, and
//     clear_quota's allowance on the first of a China month
//     (Config.QuotaZone, default nil for UTC+8).
//   - Refused calls are free: a call answered with an errcode does not count
//     against the daily quota (Config.CountRefusedCalls, default false).
//   - Third-party platforms: every verify ticket push brings a new ticket, and
//     each pushed ticket is accepted for its own 12 hours, delivered or not.
//     Component and authorizer tokens follow the classic-token rules.
//     api_authorizer_token rotates the refresh token and the previous one
//     stops working at once (ComponentConfig.KeepRefreshToken, default
//     false). A revoked authorization kills its access tokens at once. A
//     push counts as delivered only when answered HTTP 200 and exactly
//     "success".
//
// Everything that touches one appid is serialized by that account's mutex;
// accounts, issued tokens and faults are looked up through structures that do
// not take a global lock, because benchmarks drive thousands of accounts at
// once.
package wechatsim
