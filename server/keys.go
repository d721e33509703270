package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"wxhub/db"
)

// APIKeyBody describes a key; the key itself is shown only once, at creation.
type APIKeyBody struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role" doc:"admin or tenant."`
	Tenant     string     `json:"tenant,omitempty" doc:"The tenant a tenant key is scoped to."`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty" doc:"Updated at most once a minute."`
}

// CreateAPIKeyInput creates a key.
type CreateAPIKeyInput struct {
	Body struct {
		Name      string     `json:"name" minLength:"1" maxLength:"200" doc:"What the key is for." example:"shop-backend"`
		Role      string     `json:"role" enum:"admin,tenant" doc:"admin: everything; tenant: credentials and settings of one tenant's accounts."`
		Tenant    string     `json:"tenant,omitempty" pattern:"^[a-z0-9][a-z0-9_-]{0,62}$" doc:"Required for role tenant."`
		ExpiresAt *time.Time `json:"expires_at,omitempty" doc:"Optional expiry."`
	}
}

// CreateAPIKeyOutput carries the new key, once.
type CreateAPIKeyOutput struct {
	Body struct {
		APIKeyBody
		Key string `json:"key" doc:"The API key. It is not stored and cannot be shown again."`
	}
}

// TenantBody is a tenant.
type TenantBody struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) registerKeysAndTenants() {
	admin := map[string]any{rolesKey: []string{RoleAdmin}}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-api-key", Method: http.MethodPost, Path: "/v1/api-keys", DefaultStatus: http.StatusCreated,
		Summary: "Create an API key", Tags: []string{"API keys"}, Metadata: admin, Errors: []int{401, 403, 404, 422},
		Description: "Returns the key once; wxhub stores only its hash.",
	}, func(ctx context.Context, in *CreateAPIKeyInput) (*CreateAPIKeyOutput, error) {
		if (in.Body.Role == RoleTenant) != (in.Body.Tenant != "") {
			return nil, huma.Error422UnprocessableEntity("a tenant key needs a tenant, and an admin key takes none")
		}
		key, lookup, hash, err := NewKey()
		if err != nil {
			return nil, s.internal(err)
		}
		k, err := s.store.CreateAPIKey(ctx, db.NewAPIKey{Lookup: lookup, Hash: hash, Name: in.Body.Name,
			Role: in.Body.Role, Tenant: in.Body.Tenant, ExpiresAt: in.Body.ExpiresAt})
		switch {
		case errors.Is(err, db.ErrNotFound):
			err = huma.Error404NotFound("no such tenant")
		case err != nil:
			err = s.internal(err)
		}
		var tenant int64
		if k.TenantID != nil {
			tenant = *k.TenantID
		}
		s.audit(ctx, "api_key.create", "api_key:"+strconv.FormatInt(k.ID, 10), tenant, err,
			map[string]any{"role": in.Body.Role, "name": in.Body.Name})
		if err != nil {
			return nil, err
		}
		out := &CreateAPIKeyOutput{}
		out.Body.APIKeyBody = keyBody(k)
		out.Body.Key = key
		return out, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-api-keys", Method: http.MethodGet, Path: "/v1/api-keys",
		Summary: "List API keys", Tags: []string{"API keys"}, Metadata: admin, Errors: []int{401, 403},
		Description: "Every key with its role, scope and state; never the key itself.",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body []APIKeyBody }, error) {
		keys, err := s.store.ListAPIKeys(ctx)
		if err != nil {
			return nil, s.internal(err)
		}
		out := &struct{ Body []APIKeyBody }{Body: []APIKeyBody{}}
		for _, k := range keys {
			out.Body = append(out.Body, keyBody(k))
		}
		return out, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "revoke-api-key", Method: http.MethodDelete, Path: "/v1/api-keys/{id}", DefaultStatus: http.StatusNoContent,
		Summary: "Revoke an API key", Tags: []string{"API keys"}, Metadata: admin, Errors: []int{401, 403, 404},
		Description: "Takes effect on every API node within seconds.",
	}, func(ctx context.Context, in *struct {
		ID int64 `path:"id" minimum:"1" doc:"The key's id."`
	}) (*struct{}, error) {
		err := s.store.RevokeAPIKey(ctx, in.ID)
		switch {
		case errors.Is(err, db.ErrNotFound):
			err = huma.Error404NotFound("no such API key")
		case err != nil:
			err = s.internal(err)
		}
		s.audit(ctx, "api_key.revoke", "api_key:"+strconv.FormatInt(in.ID, 10), 0, err, nil)
		return nil, err
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "create-tenant", Method: http.MethodPost, Path: "/v1/tenants", DefaultStatus: http.StatusCreated,
		Summary: "Create a tenant", Tags: []string{"Tenants"}, Metadata: admin, Errors: []int{401, 403, 409, 422},
		Description: "A tenant owns accounts; tenant keys are scoped to one.",
	}, func(ctx context.Context, in *struct {
		Body struct {
			Name string `json:"name" pattern:"^[a-z0-9][a-z0-9_-]{0,62}$" doc:"Lowercase letters, digits, _ and -." example:"demo"`
		}
	}) (*struct{ Body TenantBody }, error) {
		t, err := s.store.CreateTenant(ctx, in.Body.Name)
		switch {
		case errors.Is(err, db.ErrConflict):
			err = huma.Error409Conflict("a tenant with this name exists")
		case err != nil:
			err = s.internal(err)
		}
		s.audit(ctx, "tenant.create", in.Body.Name, t.ID, err, nil)
		if err != nil {
			return nil, err
		}
		return &struct{ Body TenantBody }{Body: TenantBody{Name: t.Name, CreatedAt: t.CreatedAt}}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-tenants", Method: http.MethodGet, Path: "/v1/tenants",
		Summary: "List tenants", Tags: []string{"Tenants"}, Metadata: admin, Errors: []int{401, 403},
		Description: "Every tenant by name.",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body []TenantBody }, error) {
		tenants, err := s.store.ListTenants(ctx)
		if err != nil {
			return nil, s.internal(err)
		}
		out := &struct{ Body []TenantBody }{Body: []TenantBody{}}
		for _, t := range tenants {
			out.Body = append(out.Body, TenantBody{Name: t.Name, CreatedAt: t.CreatedAt})
		}
		return out, nil
	})
}

func keyBody(k db.APIKey) APIKeyBody {
	return APIKeyBody{ID: k.ID, Name: k.Name, Role: k.Role, Tenant: k.TenantName, CreatedAt: k.CreatedAt,
		ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, LastUsedAt: k.LastUsedAt}
}

// EnsureBootstrapKey makes sure an admin key with this value exists (WXHUB_BOOTSTRAP_ADMIN_KEY),
// for compose files and scripts that need a known key.
func EnsureBootstrapKey(ctx context.Context, store *db.Store, key string) error {
	if err := checkKeyFormat(key); err != nil {
		return errors.New("WXHUB_BOOTSTRAP_ADMIN_KEY must be a key wxhub made (wxh_…, checksum included) " +
			"or 16 to 256 visible ASCII characters without spaces")
	}
	lookup, hash := keyLookup(key)
	return store.EnsureAdminKey(ctx, lookup, hash, "bootstrap (WXHUB_BOOTSTRAP_ADMIN_KEY)")
}

func (s *Server) register() {
	s.registerCredentials()
	s.registerAccounts()
	s.registerKeysAndTenants()
	s.registerAudit()
	s.registerComponents()
	s.registerAuthorizers()
	s.registerAccountContext()
	documentRetries(s.api.OpenAPI())
}

// documentRetries adds to every operation the two answers any of them may give whatever it
// does, with the Retry-After header clients act on: 429 (the key's rate, or too many unknown
// keys from one address) and 503 (the database unreachable, or no valid credential in time).
func documentRetries(doc *huma.OpenAPI) {
	retryAfter := &huma.Param{Description: "Seconds to wait before trying again.",
		Schema: &huma.Schema{Type: huma.TypeInteger, Minimum: new(float64)}}
	answers := map[string]string{
		"429": "Too many requests: the API key's rate on this node, or too many unknown keys from this address. " +
			"Retry after Retry-After seconds.",
		"503": "Unavailable: the database cannot be reached, no valid credential came within the refresh wait, or the " +
			"day's quota is spent (quota-exhausted). Retry after Retry-After seconds.",
	}
	for _, item := range doc.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Patch, item.Delete} {
			if op == nil {
				continue
			}
			problem := op.Responses["401"] // every operation with an API key may answer 401
			if problem == nil {
				problem = op.Responses["400"] // a public one 400, as a problem document
			}
			for status, description := range answers {
				r := op.Responses[status]
				if r == nil {
					r = &huma.Response{Content: problem.Content}
					op.Responses[status] = r
				}
				r.Description = description
				r.Headers = map[string]*huma.Param{"Retry-After": retryAfter}
			}
		}
	}
}

// OpenAPI returns the API's OpenAPI 3.1 document as YAML, without a database or listener.
func OpenAPI() ([]byte, error) {
	return New(nil, Config{}).api.OpenAPI().YAML()
}
