package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"wxhub/db"
	"wxhub/wechat"
	"wxhub/wechat/callback"
)

// pushFreshness is how far a push's timestamp may be from this node's clock. WeChat signs
// the time it sends; an older push is refused, so a captured one cannot be replayed once its
// nonce has been pruned.
const pushFreshness = 5 * time.Minute

// problemPushRejected is a push that is not WeChat's, or not now: a bad signature, a stale
// timestamp, a replayed nonce, another platform's message.
const problemPushRejected = "urn:wxhub:problem:push-rejected"

// problemUpstreamRefused is WeChat refusing a call wxhub makes on a request's behalf.
const problemUpstreamRefused = "urn:wxhub:problem:upstream-refused"

// publicKey marks an operation reachable without an API key: its request proves itself.
const publicKey = "public"

// ComponentEventInput is a push from WeChat to a component's authorization event URL.
type ComponentEventInput struct {
	ComponentAppID string `path:"component_appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The component's appid." example:"wxcomponent000001"`
	Timestamp      string `query:"timestamp" required:"true" pattern:"^[0-9]{1,12}$" doc:"When WeChat sent the push (Unix seconds)."`
	Nonce          string `query:"nonce" required:"true" minLength:"1" maxLength:"64" doc:"WeChat's random string, part of the signature."`
	EncryptType    string `query:"encrypt_type" enum:"aes," doc:"aes: the body is encrypted (the only mode a component uses)."`
	MsgSignature   string `query:"msg_signature" required:"true" pattern:"^[0-9a-fA-F]{40}$" doc:"SHA-1 over the sorted token, timestamp, nonce and ciphertext."`
	Signature      string `query:"signature" doc:"The plain-mode signature WeChat adds as well; not used."`
	RawBody        []byte `contentType:"text/xml" maxLength:"65536"`
}

// ComponentEventOutput is the plain-text answer WeChat expects.
type ComponentEventOutput struct {
	ContentType string `header:"Content-Type"`
	Body        []byte
}

// authorizePage is WeChat's page where a merchant's administrator authorizes a platform.
const authorizePage = "https://mp.weixin.qq.com/cgi-bin/componentloginpage"

// AuthorizeURLInput asks for a link to WeChat's authorization page.
type AuthorizeURLInput struct {
	ComponentAppID string `path:"component_appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The component's appid." example:"wxcomponent000001"`
	RedirectURI    string `query:"redirect_uri" required:"true" minLength:"1" maxLength:"2048" doc:"Where WeChat sends the administrator back, with auth_code and expires_in, after the authorization."`
	AuthType       int    `query:"auth_type" minimum:"1" maximum:"3" default:"3" doc:"Which accounts may authorize: 1 official accounts, 2 mini programs, 3 both."`
}

// AuthorizeURLOutput is the link and how long it works.
type AuthorizeURLOutput struct {
	Body struct {
		URL       string    `json:"url" doc:"WeChat's authorization page with a fresh pre_auth_code; open it in a browser (PC)."`
		ExpiresAt time.Time `json:"expires_at" doc:"When the pre_auth_code in the link stops working."`
	}
}

func (s *Server) registerComponents() {
	huma.Register(s.api, huma.Operation{
		OperationID: "get-component-authorize-url", Method: http.MethodGet, Path: "/v1/components/{component_appid}/authorize-url",
		Summary: "Link a merchant authorizes the platform with", Tags: []string{"Components"},
		Metadata: map[string]any{rolesKey: []string{RoleAdmin, RoleTenant}}, Errors: []int{401, 403, 404, 409, 422, 502, 503},
		Description: "Asks WeChat for a pre-authorization code with the component's current token and returns the link " +
			"to WeChat's authorization page. Each call makes a new code (one per authorization). 502 when WeChat refuses, " +
			"with its errcode.",
	}, func(ctx context.Context, in *AuthorizeURLInput) (*AuthorizeURLOutput, error) {
		cred, err := s.credential(ctx, in.ComponentAppID, "access_token", 0)
		if err != nil {
			return nil, err
		}
		if a, err := s.store.GetAccount(ctx, in.ComponentAppID); err != nil || a.Kind != "component" {
			if err != nil && !errors.Is(err, db.ErrNotFound) {
				return nil, s.internal(err)
			}
			return nil, huma.Error404NotFound("no component with this appid")
		}
		start := time.Now()
		code, err := s.cfg.WeChat.CreatePreAuthCode(ctx, in.ComponentAppID, cred.Value)
		if err != nil {
			var we *wechat.Error
			if errors.As(err, &we) {
				return nil, &problem{Type: problemUpstreamRefused, Title: "WeChat refused", Status: http.StatusBadGateway,
					ErrCode: we.Code, Detail: fmt.Sprintf("WeChat refused a pre-authorization code for %s: %s", in.ComponentAppID, we.Message)}
			}
			s.log.Warn("pre-authorization code", "component", in.ComponentAppID, "err", err)
			return nil, huma.Error503ServiceUnavailable("WeChat could not be reached for a pre-authorization code; try again")
		}
		q := url.Values{"component_appid": {in.ComponentAppID}, "pre_auth_code": {code.Value},
			"redirect_uri": {in.RedirectURI}, "auth_type": {strconv.Itoa(in.AuthType)}}
		out := &AuthorizeURLOutput{}
		out.Body.URL = authorizePage + "?" + q.Encode()
		out.Body.ExpiresAt = start.Add(code.ExpiresIn).UTC()
		return out, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "receive-component-event", Method: http.MethodPost, Path: "/v1/components/{component_appid}/events",
		Summary: "Receive a push from WeChat", Tags: []string{"Components"},
		Metadata: map[string]any{publicKey: true}, Security: []map[string][]string{},
		Errors: []int{400, 403, 404, 409, 422, 502, 503},
		Description: "The authorization event URL to set on WeChat's open platform for the component. " +
			"No API key: WeChat signs every push with the component's callback token and encrypts it with its " +
			"EncodingAESKey. A push is accepted once, within five minutes of its timestamp, and answered `success`. " +
			"component_verify_ticket is stored (the newest wins) and wakes a component waiting for a token. " +
			"authorized exchanges the code (api_query_auth) and creates the authorizer's account, or brings back one " +
			"revoked before; updateauthorized reads what the authorizer now grants; unauthorized stops refreshing the " +
			"account and serving its credentials (410). When WeChat refuses or cannot be reached (502, 503) the push is " +
			"not recorded, and WeChat sends it again.",
	}, func(ctx context.Context, in *ComponentEventInput) (*ComponentEventOutput, error) {
		comp, err := s.componentEndpoint(ctx, in.ComponentAppID)
		if err != nil {
			return nil, err
		}
		push, ev, err := openPush(comp, in, time.Now())
		if err != nil {
			var refused huma.StatusError
			if !errors.As(err, &refused) {
				return nil, s.internal(err)
			}
			s.log.Warn("push refused", "component", comp.AppID, "err", err)
			return nil, err
		}
		switch ev.InfoType {
		case callback.InfoTypeVerifyTicket:
			if ev.ComponentVerifyTicket == "" {
				return nil, huma.Error400BadRequest("component_verify_ticket push without a ticket")
			}
			_, err = s.store.StoreVerifyTicket(ctx, comp, push, ev.ComponentVerifyTicket, time.Unix(ev.CreateTime, 0))
		case callback.InfoTypeAuthorized, callback.InfoTypeUpdateAuthorized:
			// Answered with an error (WeChat refused the code, or could not be reached), the
			// push is not recorded and WeChat sends it again.
			if _, _, err := s.authorize(ctx, comp, &push, ev.AuthorizerAppID, ev.AuthorizationCode); err != nil {
				return nil, err
			}
		case callback.InfoTypeUnauthorized:
			var revoked int64
			revoked, err = s.store.RevokeAuthorization(ctx, comp, &push, ev.AuthorizerAppID, time.Unix(ev.CreateTime, 0))
			if err == nil {
				s.log.Info("authorization revoked", "component", comp.AppID, "appid", ev.AuthorizerAppID, "known", revoked != 0)
				// Unlike a disabled account's, a revoked one's tokens are dead at WeChat: this
				// node stops serving them before it answers, the others when the notification
				// of the same commit reaches them.
				if revoked != 0 {
					s.cache.accountChanged(revoked)
				}
			}
		default:
			// WeChat adds event types over time; one wxhub does not use is acknowledged, or
			// WeChat would keep sending it.
			s.log.Info("push of a type wxhub does not use", "component", comp.AppID, "info_type", ev.InfoType)
			err = s.store.AcceptPush(ctx, comp, push)
		}
		if errors.Is(err, db.ErrReplayed) {
			return nil, rejectPush("the push was received before (same timestamp and nonce)")
		}
		if err != nil {
			return nil, s.internal(err)
		}
		return &ComponentEventOutput{ContentType: "text/plain; charset=utf-8", Body: []byte("success")}, nil
	})
}

// openPush checks a push's signature and freshness and decrypts it, trying the component's
// previous EncodingAESKey too. Nothing is stored before all of that holds.
func openPush(comp db.ComponentEndpoint, in *ComponentEventInput, now time.Time) (db.Push, callback.Event, error) {
	env, err := callback.ParseEnvelope(in.RawBody)
	if err != nil {
		return db.Push{}, callback.Event{}, huma.Error400BadRequest("the body is not WeChat's encrypted XML message")
	}
	if !callback.VerifySignature(comp.Callback.Token, in.Timestamp, in.Nonce, env.Encrypt, in.MsgSignature) {
		return db.Push{}, callback.Event{}, rejectPush("msg_signature does not match the component's callback token")
	}
	ts, err := strconv.ParseInt(in.Timestamp, 10, 64)
	if err != nil {
		return db.Push{}, callback.Event{}, huma.Error400BadRequest("timestamp is not a number")
	}
	if sent := time.Unix(ts, 0); sent.Before(now.Add(-pushFreshness)) || sent.After(now.Add(pushFreshness)) {
		return db.Push{}, callback.Event{}, rejectPush(fmt.Sprintf("the push's timestamp is more than %s from now", pushFreshness))
	}
	var keys []callback.Key
	for _, encoded := range []string{comp.Callback.AESKey, comp.Callback.PreviousAESKey} {
		if encoded == "" {
			continue
		}
		k, err := callback.ParseKey(encoded)
		if err != nil {
			return db.Push{}, callback.Event{}, fmt.Errorf("component %s: stored EncodingAESKey: %w", comp.AppID, err)
		}
		keys = append(keys, k)
	}
	plain, err := callback.Decrypt(keys, comp.AppID, env.Encrypt)
	switch {
	case errors.Is(err, callback.ErrWrongAppID):
		return db.Push{}, callback.Event{}, rejectPush("the message is for another appid")
	case err != nil:
		return db.Push{}, callback.Event{}, huma.Error400BadRequest("the message does not decrypt with the component's EncodingAESKey")
	}
	ev, err := callback.ParseEvent(plain)
	if err != nil {
		return db.Push{}, callback.Event{}, huma.Error400BadRequest("the decrypted message is not an event")
	}
	if ev.AppID != comp.AppID {
		return db.Push{}, callback.Event{}, rejectPush("the event is for another appid")
	}
	return db.Push{Timestamp: ts, Nonce: in.Nonce}, ev, nil
}

func rejectPush(detail string) error {
	return &problem{Type: problemPushRejected, Title: "Push rejected", Status: http.StatusForbidden, Detail: detail}
}
