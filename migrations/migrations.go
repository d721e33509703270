// Package migrations holds wxhub's goose SQL migrations, embedded so the binary can apply
// them without files on disk. sqlc reads the same files as its schema, so versions are
// zero-padded to keep them in order.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
