package store

import (
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err means the database could not answer for
// now: unreachable, its connection lost, restarting, or busy with a
// conflicting transaction. A retry may well succeed, so callers say
// Unavailable. Any other error (a constraint violated, a full disk, a bug)
// would repeat on retry, so it must not be dressed as a passing outage:
// clients retrying it at once would spin.
func Unavailable(err error) bool {
	var (
		connect *pgconn.ConnectError
		pgErr   *pgconn.PgError
		netErr  *net.OpError // not net.Error: every syscall.Errno is one, ENOSPC too
	)
	switch {
	case errors.As(err, &connect), errors.As(err, &netErr), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.ErrUnexpectedEOF), pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	case errors.As(err, &pgErr):
		return transientSQLState(pgErr.Code)
	case sqliteBusy(err):
		return true
	}
	return false
}

// transientSQLState: PostgreSQL's error codes for trouble that passes
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
func transientSQLState(code string) bool {
	switch code {
	case "53300", // too_many_connections
		"57P01", "57P02", "57P03", // admin_shutdown, crash_shutdown, cannot_connect_now
		"40001", "40P01": // serialization_failure, deadlock_detected
		return true
	}
	return len(code) == 5 && code[:2] == "08" // connection exceptions
}
