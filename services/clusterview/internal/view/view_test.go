package view

import (
	"fmt"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/clusterview/internal/kube"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func owned(name, kind, owner string, created time.Time) kube.ObjectMeta {
	return kube.ObjectMeta{Name: name, Namespace: "kubelab", CreationTimestamp: created,
		OwnerReferences: []kube.OwnerReference{{Kind: kind, Name: owner, Controller: new(true)}}}
}

func replicaSet(name, revision string, replicas, ready int32, image string) kube.ReplicaSet {
	rs := kube.ReplicaSet{ObjectMeta: owned(name, "Deployment", "frontend", t0)}
	rs.Annotations = map[string]string{"deployment.kubernetes.io/revision": revision}
	rs.Spec.Replicas = &replicas
	rs.Spec.Template.Spec.Containers = []kube.Container{{Name: "frontend", Image: image}}
	rs.Status.ReadyReplicas = ready
	return rs
}

func pod(name, kind, owner string, created time.Time, ready bool, restarts int32) kube.Pod {
	p := kube.Pod{ObjectMeta: owned(name, kind, owner, created)}
	p.Spec.NodeName = "minikube-m02"
	p.Status.Phase = "Running"
	status := "False"
	if ready {
		status = "True"
	}
	p.Status.Conditions = []kube.Condition{{Type: "Ready", Status: status}}
	p.Status.ContainerStatuses = []kube.ContainerStatus{{Name: "frontend", RestartCount: restarts}}
	return p
}

// TestBuildMidRollout: a rolling update half done shows as the new
// ReplicaSet growing beside the old one, each with its own pods.
func TestBuildMidRollout(t *testing.T) {
	replicas := int32(3)
	dep := kube.Deployment{ObjectMeta: kube.ObjectMeta{Name: "frontend", Annotations: map[string]string{"deployment.kubernetes.io/revision": "3"}}}
	dep.Spec.Replicas = &replicas
	dep.Spec.Strategy.Type = "RollingUpdate"
	dep.Status.ReadyReplicas, dep.Status.UpdatedReplicas = 3, 1
	dep.Status.Conditions = []kube.Condition{{Type: "Progressing", Status: "True", Reason: "ReplicaSetUpdated"}}

	leaving := pod("frontend-old-c", "ReplicaSet", "frontend-old", t0.Add(2*time.Minute), true, 0)
	leaving.DeletionTimestamp = new(t0.Add(time.Hour))
	o := objects{
		deployments: []kube.Deployment{dep},
		replicaSets: []kube.ReplicaSet{
			replicaSet("frontend-older", "1", 0, 0, "kubelab/frontend:0.0.9"), // history: hidden
			replicaSet("frontend-old", "2", 2, 2, "kubelab/frontend:0.1.0"),
			replicaSet("frontend-new", "3", 2, 1, "kubelab/frontend:0.2.0"),
		},
		pods: []kube.Pod{
			pod("frontend-old-b", "ReplicaSet", "frontend-old", t0.Add(time.Minute), true, 2),
			leaving,
			pod("frontend-old-a", "ReplicaSet", "frontend-old", t0, true, 0),
			pod("frontend-new-a", "ReplicaSet", "frontend-new", t0.Add(3*time.Minute), true, 0),
			pod("frontend-new-b", "ReplicaSet", "frontend-new", t0.Add(4*time.Minute), false, 0),
			pod("postgres-0", "StatefulSet", "postgres", t0, true, 0),
		},
	}
	s := build("kubelab", o, nil)
	if len(s.Deployments) != 1 {
		t.Fatalf("deployments %+v", s.Deployments)
	}
	d := s.Deployments[0]
	if d.Revision != "3" || d.Desired != 3 || d.Ready != 3 || d.Updated != 1 || d.Strategy != "RollingUpdate" || d.Condition != "ReplicaSetUpdated" {
		t.Errorf("deployment %+v", d)
	}
	var got []string
	for _, rs := range d.Replicas {
		line := fmt.Sprintf("%s r%s %s %d/%d", rs.Name, rs.Revision, rs.Image, rs.Ready, rs.Desired)
		for _, p := range rs.Pods {
			line += fmt.Sprintf(" %s(ready=%t restarts=%d terminating=%t)", p.Name, p.Ready, p.Restarts, p.Terminating)
		}
		got = append(got, line)
	}
	want := []string{
		"frontend-new r3 kubelab/frontend:0.2.0 1/2 frontend-new-a(ready=true restarts=0 terminating=false) frontend-new-b(ready=false restarts=0 terminating=false)",
		"frontend-old r2 kubelab/frontend:0.1.0 2/2 frontend-old-a(ready=true restarts=0 terminating=false) frontend-old-b(ready=true restarts=2 terminating=false) frontend-old-c(ready=true restarts=0 terminating=true)",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("replica sets, newest first:\n got %q\nwant %q", got, want)
	}
	if len(s.OtherPods) != 1 || s.OtherPods[0].Name != "postgres-0" {
		t.Errorf("other pods %+v, want postgres-0", s.OtherPods)
	}
}

// TestBuildKeepsTheNewestReplicaSetAtZero: a Deployment scaled to zero
// still shows its current ReplicaSet.
func TestBuildKeepsTheNewestReplicaSetAtZero(t *testing.T) {
	zero := int32(0)
	dep := kube.Deployment{ObjectMeta: kube.ObjectMeta{Name: "frontend"}}
	dep.Spec.Replicas = &zero
	s := build("kubelab", objects{
		deployments: []kube.Deployment{dep},
		replicaSets: []kube.ReplicaSet{replicaSet("frontend-a", "1", 0, 0, "x"), replicaSet("frontend-b", "2", 0, 0, "y")},
	}, nil)
	if rs := s.Deployments[0].Replicas; len(rs) != 1 || rs[0].Name != "frontend-b" {
		t.Fatalf("replica sets %+v, want only the newest", rs)
	}
}

func TestBuildServicesHPAsJobsAndEvents(t *testing.T) {
	ready, serving, terminating := true, true, true
	notReady := false
	slice := kube.EndpointSlice{ObjectMeta: kube.ObjectMeta{Name: "frontend-x", Labels: map[string]string{kube.LabelServiceName: "frontend"}},
		Endpoints: []kube.Endpoint{
			{Addresses: []string{"10.244.1.5"}, TargetRef: &kube.ObjectReference{Kind: "Pod", Name: "frontend-b"}},
			{Addresses: []string{"10.244.0.7"}, TargetRef: &kube.ObjectReference{Kind: "Pod", Name: "frontend-a"}},
		}}
	slice.Endpoints[0].Conditions.Ready, slice.Endpoints[0].Conditions.Serving, slice.Endpoints[0].Conditions.Terminating = &notReady, &serving, &terminating
	slice.Endpoints[1].Conditions.Ready = &ready
	empty := kube.EndpointSlice{ObjectMeta: kube.ObjectMeta{Name: "imageproc-y", Labels: map[string]string{kube.LabelServiceName: "imageproc"}}}
	util, current := int32(70), int32(45)
	hpa := kube.HorizontalPodAutoscaler{ObjectMeta: kube.ObjectMeta{Name: "frontend"}}
	hpa.Spec.ScaleTargetRef = kube.ObjectReference{Kind: "Deployment", Name: "frontend"}
	hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas = new(int32(3)), 10
	hpa.Spec.Metrics = []kube.MetricSpec{{Type: "Resource", Resource: &kube.ResourceMetric{Name: "cpu", Target: kube.MetricValue{AverageUtilization: &util}}}}
	hpa.Status.CurrentReplicas, hpa.Status.DesiredReplicas = 3, 4
	hpa.Status.CurrentMetrics = []kube.MetricStatus{{Type: "Resource", Resource: &kube.ResourceMetric{Name: "cpu", Current: kube.MetricValue{AverageUtilization: &current}}}}
	job := kube.Job{ObjectMeta: kube.ObjectMeta{Name: "worker-abc"}}
	job.Spec.Completions = new(int32(4))
	job.Status.Succeeded, job.Status.Failed = 4, 1
	job.Status.Conditions = []kube.Condition{{Type: "Complete", Status: "True"}}
	var events []kube.Event
	for i := range recentEvents + 5 {
		events = append(events, kube.Event{ObjectMeta: kube.ObjectMeta{Name: fmt.Sprint("e", i)}, Type: "Normal", Reason: "Scheduled",
			InvolvedObject: kube.ObjectReference{Kind: "Pod", Name: fmt.Sprint("p", i)}, LastTimestamp: t0.Add(time.Duration(i) * time.Second)})
	}

	s := build("kubelab", objects{slices: []kube.EndpointSlice{slice, empty},
		hpas: []kube.HorizontalPodAutoscaler{hpa}, jobs: []kube.Job{job}, events: events}, []string{"jobs: forbidden"})

	if len(s.Services) != 2 || s.Services[0].Name != "frontend" || len(s.Services[1].Endpoints) != 0 {
		t.Fatalf("services %+v", s.Services)
	}
	eps := s.Services[0].Endpoints
	if len(eps) != 2 || eps[0].Pod != "frontend-a" || !eps[0].Ready || !eps[0].Serving || eps[0].Terminating ||
		eps[1].Pod != "frontend-b" || eps[1].Ready || !eps[1].Serving || !eps[1].Terminating {
		t.Errorf("endpoints %+v: unset conditions count as ready and serving, not terminating", eps)
	}
	if len(s.HPAs) != 1 || s.HPAs[0].Target != "Deployment/frontend" || s.HPAs[0].Min != 3 || s.HPAs[0].Desired != 4 ||
		fmt.Sprint(s.HPAs[0].Metrics) != "[cpu 45% / 70%]" {
		t.Errorf("hpa %+v", s.HPAs)
	}
	if len(s.Jobs) != 1 || s.Jobs[0].Done != "Complete" || s.Jobs[0].Completions != 4 || s.Jobs[0].Failed != 1 {
		t.Errorf("job %+v", s.Jobs)
	}
	if len(s.Events) != recentEvents || s.Events[0].Object != fmt.Sprint("Pod/p", recentEvents+4) || s.Events[0].Count != 1 {
		t.Errorf("events: %d, newest %+v; want the %d newest, newest first", len(s.Events), s.Events[0], recentEvents)
	}
	if fmt.Sprint(s.Problems) != "[jobs: forbidden]" {
		t.Errorf("problems %v", s.Problems)
	}
}
