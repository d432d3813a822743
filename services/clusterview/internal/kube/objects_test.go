package kube_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/clusterview/internal/kube"
)

// TestObjectsDecodeWhatKubectlPrints: each kind decodes from the JSON
// kubectl get -o json prints (testdata/), so every field clusterview
// reads has the API's name. A misspelt tag would decode as zero here.
func TestObjectsDecodeWhatKubectlPrints(t *testing.T) {
	for _, tc := range []struct {
		file string
		// decode reads the file into its kind and says what was read.
		decode func([]byte) (string, error)
		want   string
	}{
		{"deployment.json", func(b []byte) (string, error) {
			var d kube.Deployment
			err := json.Unmarshal(b, &d)
			return fmt.Sprint(d.Name, " r", d.Annotations["deployment.kubernetes.io/revision"], " ", *d.Spec.Replicas, " ", d.Spec.Strategy.Type,
				" paused=", d.Spec.Paused, " ready=", d.Status.ReadyReplicas, " updated=", d.Status.UpdatedReplicas, " ", d.Status.Conditions[1]), err
		}, "frontend r3 3 RollingUpdate paused=false ready=3 updated=1 {Progressing True ReplicaSetUpdated}"},
		{"replicaset.json", func(b []byte) (string, error) {
			var rs kube.ReplicaSet
			err := json.Unmarshal(b, &rs)
			return fmt.Sprint(rs.Name, " owner=", rs.ControllerOf("Deployment"), " ", *rs.Spec.Replicas, " ", rs.Spec.Template.Spec.Containers,
				" ready=", rs.Status.ReadyReplicas, " v", rs.ResourceVersion), err
		}, "frontend-6b8f9c7d5 owner=frontend 2 [{frontend kubelab/frontend:0.2.0}] ready=1 v48207"},
		{"pod.json", func(b []byte) (string, error) {
			var p kube.Pod
			err := json.Unmarshal(b, &p)
			return fmt.Sprint(p.Name, " owner=", p.ControllerOf("ReplicaSet"), " deployment=", p.ControllerOf("Deployment"), " ", p.Spec.NodeName, " ",
				p.Status.Phase, " ", p.Status.Conditions[2], " restarts=", p.Status.ContainerStatuses[0].RestartCount,
				" created=", p.CreationTimestamp.Format(time.RFC3339), " deleting=", p.DeletionTimestamp.Format(time.RFC3339), " uid=", p.UID), err
		}, "frontend-6b8f9c7d5-x2x8k owner=frontend-6b8f9c7d5 deployment= minikube-m02 Running {Ready True } restarts=2" +
			" created=2026-12-01T10:02:31Z deleting=2026-12-01T10:05:02Z uid=9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"},
		{"event.json", func(b []byte) (string, error) {
			var e kube.Event
			err := json.Unmarshal(b, &e)
			return fmt.Sprint(e.Type, " ", e.Reason, " ", e.InvolvedObject, " ", e.Message, " x", e.Count,
				" last=", e.LastTimestamp.Format(time.RFC3339), " eventTime zero=", e.EventTime.IsZero()), err
		}, "Normal SuccessfulCreate {ReplicaSet frontend-6b8f9c7d5} Created pod: frontend-6b8f9c7d5-x2x8k x3 last=2026-12-01T10:03:02Z eventTime zero=true"},
		{"endpointslice.json", func(b []byte) (string, error) {
			var s kube.EndpointSlice
			err := json.Unmarshal(b, &s)
			e := s.Endpoints[0]
			return fmt.Sprint(s.Labels[kube.LabelServiceName], " ", len(s.Endpoints), " ", e.Addresses, " ", *e.TargetRef,
				" ready=", *e.Conditions.Ready, " serving=", *e.Conditions.Serving, " terminating=", *e.Conditions.Terminating), err
		}, "frontend 2 [10.244.1.5] {Pod frontend-6b8f9c7d5-x2x8k} ready=false serving=true terminating=true"},
		{"hpa.json", func(b []byte) (string, error) {
			var h kube.HorizontalPodAutoscaler
			err := json.Unmarshal(b, &h)
			m, c := h.Spec.Metrics[0], h.Status.CurrentMetrics[0]
			return fmt.Sprint(h.Spec.ScaleTargetRef, " ", *h.Spec.MinReplicas, "-", h.Spec.MaxReplicas, " ", m.Type, " ", m.Resource.Name,
				" target=", *m.Resource.Target.AverageUtilization, " current=", *c.Resource.Current.AverageUtilization,
				" ", h.Status.CurrentReplicas, "→", h.Status.DesiredReplicas), err
		}, "{Deployment frontend} 3-10 Resource cpu target=70 current=45 3→4"},
		{"job.json", func(b []byte) (string, error) {
			var j kube.Job
			err := json.Unmarshal(b, &j)
			return fmt.Sprint(j.Name, " ", *j.Spec.Completions, " succeeded=", j.Status.Succeeded, " failed=", j.Status.Failed,
				" active=", j.Status.Active, " ", j.Status.Conditions[1]), err
		}, "worker-29412600 4 succeeded=4 failed=1 active=0 {Complete True CompletionsReached}"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got != tc.want {
				t.Errorf("decoded\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
