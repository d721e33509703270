package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"wxhub/db"
)

func runKeys(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("keys", stdout)
	databaseURL := fs.String("database-url", envOr("DATABASE_URL", ""), "PostgreSQL URL (env DATABASE_URL)")
	batch := fs.Int("batch", 500, "rows re-encrypted per batch")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wxhub keys rotate [--database-url URL] [--batch N]\n\n"+
			"Re-encrypts every stored secret and token under the first key of WXHUB_KEYS, online. Put the\n"+
			"new key first and keep the old one in the ring until this has finished on every row.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	action := fs.Arg(0)
	if err := parseFlags(fs, fs.Args()[min(1, fs.NArg()):]); err != nil {
		return err
	}
	if action != "rotate" || fs.NArg() > 0 {
		return fmt.Errorf("%w: want `keys rotate`, got %q", errUsage, strings.TrimSpace(action+" "+strings.Join(fs.Args(), " ")))
	}
	if *batch < 1 {
		return fmt.Errorf("%w: --batch must be at least 1", errUsage)
	}
	ring, err := loadKeyRing()
	if err != nil {
		return err
	}
	store, closeStore, err := openStore(ctx, *databaseURL, "wxhub-keys", ring)
	if err != nil {
		return err
	}
	defer closeStore()
	report := func(p db.RotationProgress) {
		fmt.Fprintf(stdout, "re-encrypted %d secrets and %d credentials under key %q (%d changed meanwhile and were already current)\n",
			p.Secrets, p.Credentials, ring.CurrentID(), p.Skipped)
	}
	p, err := store.RotateKeys(ctx, *batch, report)
	if err != nil {
		return err
	}
	report(p)
	fmt.Fprintln(stdout, "done: every row is under the current key; older keys can leave WXHUB_KEYS")
	return nil
}
