// Package pod describes the pod the frontend runs in, as the Downward API
// tells it: environment variables for the fields fixed at start (name,
// namespace, node, IP) and a downwardAPI volume for labels, which can change
// while the pod runs (kubectl label) and are refreshed by kubelet.
package pod

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Info is what the cluster panel shows about this pod.
type Info struct {
	Name      string
	Namespace string
	Node      string
	IP        string
	// Starts counts the container starts in this pod, kept in an emptyDir:
	// it survives a container restart (the crash demo) but not the pod.
	Starts int
}

// FromEnv reads the Downward API variables the Deployment sets; outside a
// cluster they are empty and the panel says so.
func FromEnv(instance string) Info {
	return Info{
		Name:      instance,
		Namespace: os.Getenv("POD_NAMESPACE"),
		Node:      os.Getenv("NODE_NAME"),
		IP:        os.Getenv("POD_IP"),
	}
}

// CountStart increments the start counter in dir (an emptyDir) and returns
// the new count. With no dir it returns 1: every start is the first.
func CountStart(dir string) (int, error) {
	if dir == "" {
		return 1, nil
	}
	path := filepath.Join(dir, "starts")
	n := 0
	switch b, err := os.ReadFile(path); {
	case err == nil:
		if n, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return 0, fmt.Errorf("read start count %s: %w", path, err)
		}
	case !os.IsNotExist(err):
		return 0, fmt.Errorf("read start count: %w", err)
	}
	n++
	if err := os.WriteFile(path, []byte(strconv.Itoa(n)), 0o600); err != nil {
		return 0, fmt.Errorf("write start count under STATE_DIR=%s: %w", dir, err)
	}
	return n, nil
}

// Label is one pod label.
type Label struct{ Key, Value string }

// ParseLabels reads the downwardAPI volume's labels file: one key="value"
// per line, the value quoted like a Go string. Lines that do not parse are
// skipped, not fatal: the panel is informative, not critical.
func ParseLabels(text string) []Label {
	var out []Label
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, quoted, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || key == "" {
			continue
		}
		value, err := strconv.Unquote(quoted)
		if err != nil {
			continue
		}
		out = append(out, Label{Key: key, Value: value})
	}
	slices.SortFunc(out, func(a, b Label) int { return strings.Compare(a.Key, b.Key) })
	return out
}
