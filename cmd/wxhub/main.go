// Command wxhub is the central control server for WeChat credentials: one binary whose
// subcommands run the API node, the refresh worker, migrations and the WeChat simulator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand: it parses its own flags from args and runs until ctx ends.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

var commands = []command{
	{"dev", "run everything in one process for development: PostgreSQL, API, worker, simulator, demo data", runDev},
	{"serve", "run an API node (run any number against one database)", runServe},
	{"migrate", "apply database migrations: migrate up|down|status", runMigrate},
	{"worker", "refresh due credentials (run any number against one database)", runWorker},
	{"keys", "re-encrypt stored secrets under the current key: keys rotate", runKeys},
	{"sim", "run the WeChat simulator (the test oracle) alone", runSim},
	{"openapi", "print the OpenAPI document of the REST API", runOpenAPI},
	{"version", "print the API version, module version, commit and Go version", runVersion},
}

// errUsage marks errors that are the caller's wording, not a failure of wxhub.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "wxhub %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "wxhub %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "wxhub: unknown command %q (run `wxhub help`)\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: wxhub <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `wxhub <command> -h` for a command's flags.")
}

// newFlagSet returns a flag set that reports errors through the returned error rather than
// printing and exiting, so main prints one line for every failure; -h prints to stdout.
func newFlagSet(name string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("wxhub "+name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	return fs
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return err
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// envOr returns the environment variable's value, or def when it is unset or empty; flags
// use it as their default so a flag given on the command line wins over the environment.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
