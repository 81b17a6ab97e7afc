// Package migrations embeds the SQL schema, one set per dialect with the same version numbers.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// FS returns the migrations of one dialect ("sqlite" or "postgres").
func FS(dialect string) fs.FS {
	sub, err := fs.Sub(files, dialect)
	if err != nil {
		panic(err)
	}
	return sub
}
