//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCronJobRunsOnDemand starts the maintenance CronJob's Job by hand,
// as `kubectl create job --from=cronjob/...` lets an operator do between
// schedules: photos uploaded through the API (never shown in a gallery, so
// without a thumbnail) all have one when the Job completes.
func TestCronJobRunsOnDemand(t *testing.T) {
	share(t, suiteNS)
	base := deployOverlay(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, upload(t, base, fmt.Sprintf("cron%d.jpg", i), photoQuality(t, 70+i)))
	}

	job := fmt.Sprintf("maintain-e2e-%d", time.Now().Unix())
	kubectl(t, "-n", nsOf(t), "create", "job", job, "--from=cronjob/worker-maintain")
	t.Cleanup(func() { _, _ = runKubectl("-n", nsOf(t), "delete", "job", job, "--wait=false") })
	if out, err := runKubectl("-n", nsOf(t), "wait", "--for=condition=Complete", "job/"+job, "--timeout=300s"); err != nil {
		diagnose(t, "job-name="+job)
		t.Fatalf("Job %s did not complete: %s", job, out)
	}
	logs := kubectl(t, "-n", nsOf(t), "logs", "job/"+job)
	if !strings.Contains(logs, "queued missing thumbnails") {
		t.Errorf("the maintenance run queued no thumbnails:\n%s", tailLines(logs, 20))
	}
	if owner := kubectl(t, "-n", nsOf(t), "get", "job", job, "-o", "jsonpath={.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}"); owner != "manual" {
		t.Errorf("the Job's instantiate annotation is %q, want manual", owner)
	}
	for _, id := range ids {
		b, err := httpGet(base + "/api/v1/images/" + id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"spec":"thumbnail(256)`)) {
			t.Errorf("image %s has no thumbnail(256) after the maintenance Job: %s", id, b)
		}
	}
}
