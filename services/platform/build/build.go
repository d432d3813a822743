// Package build holds the version of the running binary. The Makefile and
// the Dockerfile set both values with -ldflags "-X"; they are constants in
// all but name and never change after the program starts.
package build

import (
	"os"
	"runtime/debug"
)

var (
	// Version is the release, e.g. "v1.2.0". Shown on the cluster panel and
	// in build_info, so a rolling update can be watched.
	Version = "dev"
	// Revision is the source control revision the binary was built from.
	Revision = "unknown"
)

// Info describes the running binary.
type Info struct {
	Service   string
	Version   string
	Revision  string
	GoVersion string
	// Instance names this process for humans: the pod name in Kubernetes
	// (POD_NAME from the Downward API), else the hostname.
	Instance string
}

// Current returns the running binary's Info for service.
func Current(service string) Info {
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	return Info{
		Service:   service,
		Version:   Version,
		Revision:  Revision,
		GoVersion: goVersion,
		Instance:  Instance(),
	}
}

// Instance returns POD_NAME, falling back to the hostname.
func Instance() string {
	if name := os.Getenv("POD_NAME"); name != "" {
		return name
	}
	if host, err := os.Hostname(); err == nil {
		return host
	}
	return "unknown"
}
