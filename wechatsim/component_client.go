package wechatsim

import (
	"context"
	"fmt"
	"net/http"
)

// PushVerifyTicket makes the simulator push a new component_verify_ticket to
// the component's callback URL now (POST /sim/component/ticket) and returns
// what it pushed, the ticket included.
func (c *Client) PushVerifyTicket(ctx context.Context, componentAppID string) (Push, error) {
	var p Push
	if err := c.do(ctx, http.MethodPost, "/sim/component/ticket", componentTicketRequest{ComponentAppID: componentAppID}, &p); err != nil {
		return Push{}, fmt.Errorf("push verify ticket to %s: %w", componentAppID, err)
	}
	return p, nil
}

// Authorize makes a merchant authorize, update its authorization of, or
// revoke a component (POST /sim/component/authorization), and returns the
// event the simulator pushed, with the authorization code for api_query_auth.
func (c *Client) Authorize(ctx context.Context, a Authorization) (Push, error) {
	var p Push
	if err := c.do(ctx, http.MethodPost, "/sim/component/authorization", a, &p); err != nil {
		return Push{}, fmt.Errorf("%s %s by %s: %w", a.Action, a.ComponentAppID, a.AuthorizerAppID, err)
	}
	return p, nil
}
