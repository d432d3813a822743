// Package pgtest starts a throwaway PostgreSQL server for tests, from the
// machine's own initdb and pg_ctl: real PostgreSQL, no container, no mock.
//
// Where the binaries are missing the test is skipped with a message, except
// under CI=true, where a missing database is a failure: CI must never pass
// by skipping the tests that matter.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Server is a running PostgreSQL.
type Server struct {
	port int
}

// URL returns a connection URL for a fresh database named db on s.
func (s *Server) URL(t testing.TB, db string) string {
	t.Helper()
	out, err := exec.Command(binary(t, "createdb"), "-h", "127.0.0.1", "-p", fmt.Sprint(s.port), "-U", "postgres", db).CombinedOutput()
	if err != nil {
		t.Fatalf("createdb %s: %v\n%s", db, err, out)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// binary finds a PostgreSQL program of the same installation as initdb:
// initdb from PATH (following symlinks) or Debian's versioned directory,
// which is not on PATH; the other programs beside it. Debian's /usr/bin
// wrappers are never picked, so every program has one version.
func binary(t testing.TB, name string) string {
	t.Helper()
	dir := ""
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dir = filepath.Dir(real)
		}
	} else if matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(matches) > 0 {
		dir = filepath.Dir(matches[len(matches)-1]) // the newest version
	}
	if p := filepath.Join(dir, name); dir != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("pgtest: %s not found; install PostgreSQL server binaries (Debian: postgresql)", name)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " — required under CI=true")
	}
	t.Skip(msg)
	return ""
}

// Start runs a server in a temporary directory on a free loopback port and
// stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	initdb, pgctl := binary(t, "initdb"), binary(t, "pg_ctl")
	dir, err := os.MkdirTemp("", "kubelab-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root; as root it runs as "nobody",
		// which must own its directory.
		if out, err := exec.Command("chown", "nobody:nogroup", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v\n%s", dir, err, out)
		}
	}
	data := filepath.Join(dir, "data")
	args := []string{"-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "--locale=C", "--encoding=UTF8"}
	if out, err := runAsPostgresUser(dir, initdb, args...); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := freePort(t)
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=100", port, dir)
	if out, err := runAsPostgresUser(dir, pgctl, "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	t.Cleanup(func() {
		_, _ = runAsPostgresUser(dir, pgctl, "-D", data, "-m", "immediate", "-w", "stop")
		_ = os.RemoveAll(dir)
	})
	return &Server{port: port}
}

// runAsPostgresUser runs a server program with home directory dir: as
// itself, or as root through setpriv as the unprivileged "nobody".
func runAsPostgresUser(dir, bin string, args ...string) ([]byte, error) {
	cmd := exec.Command(bin, args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("setpriv", append([]string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", bin}, args...)...)
	}
	cmd.Env = append(os.Environ(), "HOME="+dir)
	return cmd.CombinedOutput()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
