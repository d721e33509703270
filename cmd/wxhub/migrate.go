package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"wxhub/db"
)

func runMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("migrate", stdout)
	databaseURL := fs.String("database-url", envOr("DATABASE_URL", ""), "PostgreSQL URL (env DATABASE_URL)")
	to := fs.Int64("to", -1, "with down: roll back to this version (0 removes everything); default one step")
	wait := fs.Duration("wait", 0, "keep trying to reach the database this long before giving up (for a database that is still starting)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wxhub migrate [--database-url URL] [--wait DURATION] up | down [--to VERSION] | status")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Flags may follow the action too (`migrate down --to 0`).
	action := fs.Arg(0)
	if err := parseFlags(fs, fs.Args()[min(1, fs.NArg()):]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %s", errUsage, strings.Join(fs.Args(), " "))
	}
	if action != "down" && *to != -1 {
		return fmt.Errorf("%w: --to goes with down", errUsage)
	}
	if action != "up" && action != "down" && action != "status" {
		return fmt.Errorf("%w: want up, down or status, got %q", errUsage, action)
	}

	if *wait > 0 {
		if err := db.WaitForDatabase(ctx, *databaseURL, *wait); err != nil {
			return err
		}
	}
	m, err := db.NewMigrator(*databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	switch action {
	case "up":
		applied, err := m.Up(ctx)
		if err != nil {
			return err
		}
		report(stdout, "applied", "nothing to apply: the database is up to date", applied)
	case "down":
		var undone []int64
		if *to >= 0 {
			undone, err = m.DownTo(ctx, *to)
		} else {
			undone, err = m.Down(ctx)
		}
		if err != nil {
			return err
		}
		report(stdout, "rolled back", "nothing to roll back: no migration is applied", undone)
	case "status":
		statuses, err := m.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range statuses {
			state := "pending"
			if s.Applied {
				state = "applied"
			}
			fmt.Fprintf(stdout, "%05d  %-8s %s\n", s.Version, state, s.Name)
		}
	}
	return nil
}

func report(w io.Writer, verb, none string, versions []int64) {
	if len(versions) == 0 {
		fmt.Fprintln(w, none)
		return
	}
	for _, v := range versions {
		fmt.Fprintf(w, "%s %05d\n", verb, v)
	}
}
