// Package devreload is for the Tilt inner loop only: it lets a running
// service swap in a rebuilt binary without a new image or a new pod.
//
// Tilt's live_update copies the binary built on the host into the
// container (DEV_RELOAD_BINARY, on an emptyDir, since the root filesystem
// is read-only) and sends SIGHUP; the process then execve(2)s the new
// binary in place: same PID, same pod, same environment, new code, in
// about a second. With DEV_RELOAD_BINARY unset (every overlay but dev)
// this package does nothing.
package devreload

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// EnvVar names the path of the binary to run instead of the image's.
const EnvVar = "DEV_RELOAD_BINARY"

// Setup runs first in main. If a synced binary exists and this process is
// not it, it execs it at once (a container restarted after a live update
// keeps running the newest code), and from then on execs it on SIGHUP.
func Setup(log *slog.Logger) error {
	path := os.Getenv(EnvVar)
	if path == "" {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("%s: find own binary: %w", EnvVar, err)
	}
	if _, err := os.Stat(path); err == nil && self != path {
		return exec(path)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if _, err := os.Stat(path); err != nil {
				log.Warn("SIGHUP but no binary to reload", "path", path, "err", err)
				continue
			}
			log.Info("reloading the synced binary", "path", path)
			if err := exec(path); err != nil {
				log.Error("reload failed; still running the old binary", "err", err)
			}
		}
	}()
	return nil
}

func exec(path string) error {
	if err := syscall.Exec(path, os.Args, os.Environ()); err != nil { //nolint:gosec // the path is the developer's own build
		return fmt.Errorf("%s=%s: exec: %w", EnvVar, path, err)
	}
	return nil // not reached: exec replaced the process
}
