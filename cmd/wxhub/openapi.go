package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"wxhub/server"
)

func runOpenAPI(_ context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("openapi", stdout)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wxhub openapi > openapi/openapi.yaml\n\nPrints the API's OpenAPI 3.1 document (YAML).")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %s", errUsage, strings.Join(fs.Args(), " "))
	}
	doc, err := server.OpenAPI()
	if err != nil {
		return err
	}
	_, err = stdout.Write(doc)
	return err
}
