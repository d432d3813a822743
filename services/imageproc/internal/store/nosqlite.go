//go:build nosqlite

// Built with -tags nosqlite, as the cluster images are: without SQLite
// (sqlite.go), so imageproc needs DATABASE_URL.

package store

import (
	"context"
	"errors"
)

// Embedded reports whether this build has the embedded store: this one
// does not, and imageproc refuses to start without DATABASE_URL.
const Embedded = false

// OpenSQLite fails: this build has no embedded store. imageproc's config
// check says so first, naming DATABASE_URL.
func OpenSQLite(context.Context, string, int) (Store, error) {
	return nil, errors.New("this build has no embedded store (built with -tags nosqlite)")
}

func sqliteBusy(error) bool { return false }
