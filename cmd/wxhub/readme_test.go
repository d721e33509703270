package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHelpAndREADMEAgree keeps every subcommand's -h and the README's Commands section in
// step: every flag a command has and every environment variable it reads (which its -h
// names) are in the README, and the README names no flag or variable no command has.
func TestHelpAndREADMEAgree(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(raw)
	start := strings.Index(readme, "## Commands")
	require.NotEqual(t, -1, start)
	end := strings.Index(readme[start+1:], "\n## ")
	section := readme[start : start+1+end]

	flagLine := regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`)
	variable := regexp.MustCompile(`\b(WXHUB_[A-Z_]+|DATABASE_URL)\b`)
	var flags, variables []string
	for _, cmd := range commandList() {
		h := help(t, cmd)
		require.Contains(t, h, "usage: wxhub "+cmd, "wxhub %s -h prints its usage", cmd)
		for _, m := range flagLine.FindAllStringSubmatch(h, -1) {
			require.True(t, strings.Contains(section, "`--"+m[1]), "wxhub %s has --%s, which the README's Commands section does not mention", cmd, m[1])
			flags = append(flags, m[1])
		}
		for _, v := range variable.FindAllString(h, -1) {
			require.True(t, strings.Contains(section, "`"+v+"`"), "wxhub %s reads %s, which the README's Commands section does not mention", cmd, v)
			variables = append(variables, v)
		}
		require.True(t, strings.Contains(section, "`wxhub "+cmd), "the README's Commands table has no row for wxhub %s", cmd)
	}
	for _, m := range regexp.MustCompile("`--([a-z][a-z0-9-]*)").FindAllStringSubmatch(section, -1) {
		require.True(t, slices.Contains(flags, m[1]), "the README mentions --%s, which no command has", m[1])
	}
	for _, v := range variable.FindAllString(section, -1) {
		require.True(t, slices.Contains(variables, v), "the README mentions %s, which no command's -h names", v)
	}
}
