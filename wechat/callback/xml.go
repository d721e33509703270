package callback

import (
	"encoding/xml"
	"fmt"
)

// The InfoType values of the events a component receives.
const (
	// InfoTypeVerifyTicket is the component_verify_ticket WeChat pushes every
	// ten minutes; it is valid for 12 hours.
	InfoTypeVerifyTicket = "component_verify_ticket"
	// InfoTypeAuthorized is a merchant authorizing the component; the event
	// carries an authorization code for api_query_auth.
	InfoTypeAuthorized = "authorized"
	// InfoTypeUpdateAuthorized is a merchant changing the permissions it
	// granted; it carries a new authorization code.
	InfoTypeUpdateAuthorized = "updateauthorized"
	// InfoTypeUnauthorized is a merchant withdrawing its authorization: its
	// refresh token no longer works.
	InfoTypeUnauthorized = "unauthorized"
)

// Envelope is the XML body WeChat POSTs to a component's callback URL:
// <xml><AppId>…</AppId><Encrypt>…</Encrypt></xml>.
type Envelope struct {
	// AppID is the component's appid, from AppId or, in messages that
	// carry it instead, ToUserName.
	AppID string
	// Encrypt is the base64 ciphertext for Decrypt and Signature.
	Encrypt string
}

// cdata is an element whose text is written as CDATA, as WeChat writes it.
type cdata struct {
	Text string `xml:",cdata"`
}

// envelopeXML is the wire form of Envelope.
type envelopeXML struct {
	XMLName    xml.Name `xml:"xml"`
	AppID      string   `xml:"AppId"`
	ToUserName string   `xml:"ToUserName"`
	Encrypt    string   `xml:"Encrypt"`
}

// ParseEnvelope reads a POSTed callback body. It needs a root element named
// xml with a non-empty Encrypt and an AppId (or ToUserName); anything else is
// ErrMalformed. The caller limits the body's size.
func ParseEnvelope(body []byte) (Envelope, error) {
	var w envelopeXML
	if err := xml.Unmarshal(body, &w); err != nil {
		return Envelope{}, fmt.Errorf("parse callback envelope: %w: %v", ErrMalformed, err)
	}
	e := Envelope{AppID: w.AppID, Encrypt: w.Encrypt}
	if e.AppID == "" {
		e.AppID = w.ToUserName
	}
	if e.AppID == "" || e.Encrypt == "" {
		return Envelope{}, fmt.Errorf("parse callback envelope: %w: AppId or Encrypt missing", ErrMalformed)
	}
	return e, nil
}

// Marshal returns the envelope as WeChat POSTs it, with AppId.
func (e Envelope) Marshal() []byte {
	b, err := xml.Marshal(struct {
		XMLName xml.Name `xml:"xml"`
		AppID   cdata    `xml:"AppId"`
		Encrypt cdata    `xml:"Encrypt"`
	}{AppID: cdata{e.AppID}, Encrypt: cdata{e.Encrypt}})
	if err != nil {
		// Only strings in CDATA sections: encoding/xml cannot fail on them.
		panic(fmt.Sprintf("marshal callback envelope: %v", err))
	}
	return b
}

// Event is a decrypted component event. Which fields are set depends on
// InfoType: ComponentVerifyTicket for component_verify_ticket;
// AuthorizerAppID, AuthorizationCode, AuthorizationCodeExpiredTime and
// PreAuthCode for authorized and updateauthorized; AuthorizerAppID for
// unauthorized. Times are Unix seconds.
type Event struct {
	AppID                        string
	CreateTime                   int64
	InfoType                     string
	ComponentVerifyTicket        string
	AuthorizerAppID              string
	AuthorizationCode            string
	AuthorizationCodeExpiredTime int64
	PreAuthCode                  string
}

// eventXML is the wire form of Event, with WeChat's element names.
type eventXML struct {
	XMLName                      xml.Name `xml:"xml"`
	AppID                        string   `xml:"AppId"`
	CreateTime                   int64    `xml:"CreateTime"`
	InfoType                     string   `xml:"InfoType"`
	ComponentVerifyTicket        string   `xml:"ComponentVerifyTicket,omitempty"`
	AuthorizerAppID              string   `xml:"AuthorizerAppid,omitempty"`
	AuthorizationCode            string   `xml:"AuthorizationCode,omitempty"`
	AuthorizationCodeExpiredTime int64    `xml:"AuthorizationCodeExpiredTime,omitempty"`
	PreAuthCode                  string   `xml:"PreAuthCode,omitempty"`
}

// ParseEvent reads a decrypted event. AppId and InfoType are required, and
// so are the fields WeChat always sends with the four InfoTypes above
// (the ticket; the authorizer's appid; the authorization code); a missing
// one is ErrMalformed. Other InfoTypes (WeChat has more, such as fast
// registration results) are returned as they are, for the caller to ignore.
func ParseEvent(plaintext []byte) (Event, error) {
	var w eventXML
	if err := xml.Unmarshal(plaintext, &w); err != nil {
		return Event{}, fmt.Errorf("parse callback event: %w: %v", ErrMalformed, err)
	}
	e := Event{
		AppID:                        w.AppID,
		CreateTime:                   w.CreateTime,
		InfoType:                     w.InfoType,
		ComponentVerifyTicket:        w.ComponentVerifyTicket,
		AuthorizerAppID:              w.AuthorizerAppID,
		AuthorizationCode:            w.AuthorizationCode,
		AuthorizationCodeExpiredTime: w.AuthorizationCodeExpiredTime,
		PreAuthCode:                  w.PreAuthCode,
	}
	var missing string
	switch {
	case e.AppID == "":
		missing = "AppId"
	case e.InfoType == "":
		missing = "InfoType"
	case e.InfoType == InfoTypeVerifyTicket && e.ComponentVerifyTicket == "":
		missing = "ComponentVerifyTicket"
	case (e.InfoType == InfoTypeAuthorized || e.InfoType == InfoTypeUpdateAuthorized ||
		e.InfoType == InfoTypeUnauthorized) && e.AuthorizerAppID == "":
		missing = "AuthorizerAppid"
	case (e.InfoType == InfoTypeAuthorized || e.InfoType == InfoTypeUpdateAuthorized) &&
		e.AuthorizationCode == "":
		missing = "AuthorizationCode"
	}
	if missing != "" {
		return Event{}, fmt.Errorf("parse callback event %q: %w: %s missing", e.InfoType, ErrMalformed, missing)
	}
	return e, nil
}

// Marshal returns the event as WeChat's XML, the plaintext that Encrypt
// seals: empty fields are left out, as WeChat leaves out the fields of
// other InfoTypes.
func (e Event) Marshal() []byte {
	b, err := xml.Marshal(eventXML{
		AppID:                        e.AppID,
		CreateTime:                   e.CreateTime,
		InfoType:                     e.InfoType,
		ComponentVerifyTicket:        e.ComponentVerifyTicket,
		AuthorizerAppID:              e.AuthorizerAppID,
		AuthorizationCode:            e.AuthorizationCode,
		AuthorizationCodeExpiredTime: e.AuthorizationCodeExpiredTime,
		PreAuthCode:                  e.PreAuthCode,
	})
	if err != nil {
		// Only strings and integers: encoding/xml cannot fail on them.
		panic(fmt.Sprintf("marshal callback event: %v", err))
	}
	return b
}
