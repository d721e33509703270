package server

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEveryProblemTypeIsDescribed keeps docs/problems.md and the code in step: every type
// the API can answer is described there, and the page names no type the API never answers.
func TestEveryProblemTypeIsDescribed(t *testing.T) {
	page, err := os.ReadFile("../docs/problems.md")
	require.NoError(t, err)
	described := map[string]bool{}
	for _, m := range regexp.MustCompile("`(urn:wxhub:problem:[a-z-]+)`").FindAllStringSubmatch(string(page), -1) {
		described[m[1]] = true
	}
	answered := map[string]bool{problemAccountFailing: true, problemAccountDisabled: true,
		problemAccountUnauthorized: true, problemQuotaExhausted: true, problemPushRejected: true, problemUpstreamRefused: true}
	for _, typ := range problemTypes {
		answered[typ] = true
	}
	for typ := range answered {
		require.True(t, described[typ], "%s is not described in docs/problems.md", typ)
	}
	for typ := range described {
		require.True(t, answered[typ], "docs/problems.md describes %s, which the API never answers", typ)
	}
}
