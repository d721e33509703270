package server

import (
	"encoding/json"
	"io"
	"net/http"
)

// classComponentToken is the metrics path class of the component token endpoint.
const classComponentToken = "component_token"

// componentTokenRequest is the body of POST /cgi-bin/component/api_component_token.
type componentTokenRequest struct {
	AppID        string `json:"component_appid"`
	Secret       string `json:"component_appsecret"`
	VerifyTicket string `json:"component_verify_ticket"`
}

// wxComponentToken is WeChat's api_component_token answer.
type wxComponentToken struct {
	ComponentAccessToken string `json:"component_access_token"`
	ExpiresIn            int64  `json:"expires_in"`
}

// serveComponentToken answers POST /cgi-bin/component/api_component_token with the token
// wxhub keeps for the component. The caller proves itself with the component_appsecret (or
// a wxhub API key in its place); the verify ticket it sends is not needed and not checked:
// WeChat pushes the tickets to wxhub, so an app moved behind wxhub has none of its own.
func (g *Gateway) serveComponentToken(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return wxErr(wxRequirePOST, "")
	}
	var req componentTokenRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil || json.Unmarshal(body, &req) != nil {
		return wxErr(wxDataFormat, "")
	}
	switch {
	case req.AppID == "":
		return wxErr(wxMissingAppID, "")
	case req.Secret == "":
		return wxErr(wxMissingSecret, "")
	}
	ctx, kind, err := g.authenticate(r, req.AppID, req.Secret, wxInvalidSecret)
	if err != nil {
		return err
	}
	if kind != "component" {
		return wxErr(wxInvalidComponent, "a "+kind+" account is not a third-party platform")
	}
	cred, err := g.s.credential(ctx, req.AppID, "access_token", 0)
	if err != nil {
		return g.wxFromAPI(err, "")
	}
	writeWeChat(w, wxComponentToken{ComponentAccessToken: cred.Value, ExpiresIn: g.expiresIn(cred)})
	return nil
}
