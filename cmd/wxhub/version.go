package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"wxhub/server"
)

func runVersion(_ context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("version", stdout)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wxhub version\n\nPrints the API version, the module version, the commit the binary was built from and the Go version.")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %s", errUsage, strings.Join(fs.Args(), " "))
	}
	_, err := fmt.Fprintln(stdout, versionLine())
	return err
}

// versionLine says what this binary is: the API version, and what the Go toolchain recorded
// when it built it (module version, commit and whether the tree had changes, Go version).
func versionLine() string {
	module, commit, goVersion := "unknown", "unknown", "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		module, goVersion = info.Main.Version, info.GoVersion
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified {
			commit += " (with uncommitted changes)"
		}
	}
	return fmt.Sprintf("wxhub API %s, module %s, commit %s, %s", server.Version, module, commit, goVersion)
}
