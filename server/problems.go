package server

import (
	"encoding/json"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// problemTypes gives each kind of error a stable RFC 9457 type, so clients branch on the
// type rather than on wording.
var problemTypes = map[int]string{
	http.StatusBadRequest:            "urn:wxhub:problem:bad-request",
	http.StatusUnauthorized:          "urn:wxhub:problem:unauthorized",
	http.StatusForbidden:             "urn:wxhub:problem:forbidden",
	http.StatusNotFound:              "urn:wxhub:problem:not-found",
	http.StatusMethodNotAllowed:      "urn:wxhub:problem:method-not-allowed",
	http.StatusConflict:              "urn:wxhub:problem:conflict",
	http.StatusPreconditionFailed:    "urn:wxhub:problem:stale-version",
	http.StatusRequestEntityTooLarge: "urn:wxhub:problem:too-large",
	http.StatusUnsupportedMediaType:  "urn:wxhub:problem:unsupported-media-type",
	http.StatusUnprocessableEntity:   "urn:wxhub:problem:validation",
	http.StatusPreconditionRequired:  "urn:wxhub:problem:precondition-required",
	http.StatusTooManyRequests:       "urn:wxhub:problem:rate-limited",
	http.StatusInternalServerError:   "urn:wxhub:problem:internal",
	http.StatusServiceUnavailable:    "urn:wxhub:problem:unavailable",
}

func init() {
	base := huma.NewError
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		se := base(status, msg, errs...)
		if m, ok := se.(*huma.ErrorModel); ok {
			// huma echoes the offending input in each detail; it may be a secret.
			for _, d := range m.Errors {
				d.Value = nil
			}
			m.Type = problemTypes[status]
			if m.Type == "" {
				m.Type = "about:blank"
			}
		}
		return se
	}
}

// writeProblem writes a problem document outside huma (before routing).
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(huma.NewError(status, detail))
}
