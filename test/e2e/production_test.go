//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProductionOverlayRuns deploys the production overlay with all its
// components (test/e2e/production changes only images and requests) and
// checks that each component does its job on the real cluster: Pod
// Security admits every pod, the HPAs read metrics-server, the PDBs count
// healthy pods, the observability annotations reach the pods, and the
// Ingress serves HTTPS with the component's own certificate.
func TestProductionOverlayRuns(t *testing.T) {
	alone(t, learnerNS)
	freshNamespace(t)
	kubectl(t, "apply", "-k", "production")
	rollout(t, "statefulset", "postgres", "app.kubernetes.io/name=postgres")
	rollout(t, "deployment", "imageproc", "app.kubernetes.io/name=imageproc")
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")

	// Spread over the three zones: four frontends two, one, one; three
	// imageprocs one each, which only blobs-in-postgres allows (a volume
	// of one node would hold all three there).
	zoneOf := map[string]string{}
	for _, line := range strings.Split(kubectl(t, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.topology\.kubernetes\.io/zone}{"\n"}{end}`), "\n") {
		if node, zone, ok := strings.Cut(line, "="); ok {
			zoneOf[node] = zone
		}
	}
	for app, want := range map[string][]int{"frontend": {1, 1, 2}, "imageproc": {1, 1, 1}} {
		eventually(t, app+" spread over the zones", time.Minute, func() error {
			perZone := map[string]int{}
			for _, node := range placement(t, nsOf(t), "app.kubernetes.io/name="+app) {
				perZone[zoneOf[node]]++
			}
			got := slices.Sorted(maps.Values(perZone))
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s pods per zone %v, want %v", app, perZone, want)
			}
			return nil
		})
	}

	// A pod Pod Security refused would show as a FailedCreate event and a
	// ReplicaSet short of its replicas; rollout status already waited for
	// those, so a clean event list confirms it.
	if ev := kubectl(t, "-n", nsOf(t), "get", "events", "--field-selector", "reason=FailedCreate", "-o", "name"); strings.TrimSpace(ev) != "" {
		t.Errorf("pods were refused: %s", ev)
	}

	for _, hpa := range []string{"frontend", "imageproc"} {
		eventually(t, "HPA "+hpa+" reading CPU from metrics-server", 3*time.Minute, func() error {
			out := kubectl(t, "-n", nsOf(t), "get", "hpa", hpa, "-o", "jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}")
			if _, err := strconv.Atoi(out); err != nil {
				return fmt.Errorf("current utilization %q", out)
			}
			return nil
		})
	}

	// frontend: minAvailable 2, so with every frontend healthy at least
	// one may be evicted; imageproc: maxUnavailable 1.
	for pdb, minHealthy := range map[string]int{"frontend": 3, "imageproc": 2} {
		eventually(t, "PDB "+pdb+" counting healthy pods", time.Minute, func() error {
			out := kubectl(t, "-n", nsOf(t), "get", "pdb", pdb, "-o", "jsonpath={.status.currentHealthy} {.status.disruptionsAllowed}")
			var healthy, allowed int
			if _, err := fmt.Sscan(out, &healthy, &allowed); err != nil || healthy < minHealthy || allowed < 1 {
				return fmt.Errorf("currentHealthy disruptionsAllowed = %q", out)
			}
			return nil
		})
	}

	if got := kubectl(t, "-n", nsOf(t), "get", "pods", "-l", "app.kubernetes.io/name=frontend", "-o", `jsonpath={.items[*].metadata.annotations.prometheus\.io/scrape}`); strings.Count(got, "true") < 3 {
		t.Errorf("frontend pods' prometheus.io/scrape annotations: %q", got)
	}
	if got := kubectl(t, "get", "networkpolicy", "-n", nsOf(t), "-o", "name"); !strings.Contains(got, "default-deny") {
		t.Errorf("network policies: %q", got)
	}

	// HTTPS at the Ingress, verified against the component's certificate:
	// a controller answering with its own default certificate fails here.
	pem, err := os.ReadFile("../../kustomize/components/ingress-tls/tls.crt")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("ingress-tls/tls.crt holds no certificate")
	}
	https := ingressClient(&tls.Config{RootCAs: roots, ServerName: ingressHost, MinVersion: tls.VersionTLS12})
	eventually(t, "HTTPS through the Ingress with the component's certificate", 2*time.Minute, func() error {
		resp, err := https.Get("https://" + ingressHost + "/api/v1/info") //nolint:noctx // test
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Served-By") == "" {
			return fmt.Errorf("status %d, served by %q", resp.StatusCode, resp.Header.Get("X-Served-By"))
		}
		return nil
	})
}
