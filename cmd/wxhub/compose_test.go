package main

import (
	"context"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the test reads.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

// help is what `wxhub <command> -h` prints.
func help(t *testing.T, command string) string {
	t.Helper()
	var out strings.Builder
	run(context.Background(), []string{command, "-h"}, &out, io.Discard)
	return out.String()
}

// TestComposeFileRunsRealCommands checks docker-compose.yml as far as a machine without
// Docker can: the order services start in, the database's health check, that every wxhub
// service runs a real subcommand with flags it has and environment variables wxhub reads,
// and that ports are bound to this machine only.
func TestComposeFileRunsRealCommands(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(raw, &c))

	require.ElementsMatch(t, []string{"postgres", "migrate", "sim", "worker", "api1", "api2"}, keys(c.Services))
	pg := c.Services["postgres"]
	require.Equal(t, []string{"CMD", "pg_isready", "-h", "127.0.0.1", "-U", "wxhub", "-d", "wxhub"}, pg.Healthcheck.Test,
		"ready means accepting TCP connections, not the socket of the initialising server")
	require.Equal(t, "service_healthy", c.Services["migrate"].DependsOn["postgres"].Condition)
	require.Contains(t, c.Services["migrate"].Command, "--wait", "migrate keeps trying while PostgreSQL starts")
	for _, name := range []string{"worker", "api1", "api2"} {
		require.Equal(t, "service_completed_successfully", c.Services[name].DependsOn["migrate"].Condition, name)
	}

	commands := commandList()
	flagLine := regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`)
	allHelp := ""
	for _, cmd := range commands {
		allHelp += help(t, cmd)
	}
	for name, s := range c.Services {
		if s.Image != "wxhub" {
			continue
		}
		require.NotEmpty(t, s.Command, name)
		require.Contains(t, commands, s.Command[0], "%s runs wxhub %s, which does not exist", name, s.Command[0])
		h := help(t, s.Command[0])
		var flags []string
		for _, m := range flagLine.FindAllStringSubmatch(h, -1) {
			flags = append(flags, m[1])
		}
		for _, arg := range s.Command[1:] {
			if flag, ok := strings.CutPrefix(arg, "--"); ok {
				flag, _, _ = strings.Cut(flag, "=")
				require.Contains(t, flags, flag, "%s: wxhub %s has no flag --%s", name, s.Command[0], flag)
			}
		}
		for v := range s.Environment {
			require.Contains(t, allHelp, v, "%s sets %s, which no wxhub command reads", name, v)
		}
		for _, p := range s.Ports {
			require.True(t, strings.HasPrefix(p, "127.0.0.1:"), "%s publishes %s beyond this machine", name, p)
		}
	}
	for _, name := range []string{"worker", "api1", "api2"} {
		env := c.Services[name].Environment
		require.Contains(t, env, "DATABASE_URL", name)
		require.Contains(t, env, "WXHUB_KEYS", name)
	}
	require.Equal(t, "http://sim:8081", c.Services["worker"].Environment["WXHUB_WECHAT_BASE_URL"])
	api1 := c.Services["api1"].Command
	require.Equal(t, "http://sim:8081", api1[slices.Index(api1, "--gateway-upstream")+1], "the gateway forwards to the WeChat the worker calls")
	require.Contains(t, string(raw), "EXAMPLE", "the example keys are marked as such")
}

func commandList() []string {
	var out []string
	for _, c := range commands {
		out = append(out, c.name)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
