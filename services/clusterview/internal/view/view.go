// Package view is what the live view (/cluster) shows: the pod's own
// namespace as kube's informers see it, made into one snapshot, and the
// fan-out of each new snapshot to the browsers watching.
package view

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/kubelab/kubelab/services/clusterview/internal/kube"
)

// Snapshot is the namespace at one moment, as the page draws it.
type Snapshot struct {
	Namespace string `json:"namespace"`
	// Problems are the resources clusterview may not or cannot watch
	// (RBAC removed, API unreachable), with the API server's reason.
	Problems    []string     `json:"problems,omitempty"`
	Deployments []Deployment `json:"deployments"`
	// OtherPods are the pods no Deployment owns: the StatefulSet's, Jobs'.
	OtherPods []Pod     `json:"otherPods"`
	Services  []Service `json:"services"`
	HPAs      []HPA     `json:"hpas"`
	Jobs      []Job     `json:"jobs"`
	Events    []Event   `json:"events"`
}

// Deployment is one Deployment with its ReplicaSets, newest first.
type Deployment struct {
	Name      string       `json:"name"`
	Revision  string       `json:"revision"`
	Desired   int32        `json:"desired"`
	Ready     int32        `json:"ready"`
	Updated   int32        `json:"updated"`
	Strategy  string       `json:"strategy"`
	Paused    bool         `json:"paused,omitempty"`
	Replicas  []ReplicaSet `json:"replicaSets"`
	Condition string       `json:"condition,omitempty"`
}

// ReplicaSet is one revision of a Deployment and its pods.
type ReplicaSet struct {
	Name     string `json:"name"`
	Revision string `json:"revision"`
	Image    string `json:"image"`
	Desired  int32  `json:"desired"`
	Ready    int32  `json:"ready"`
	Pods     []Pod  `json:"pods"`
}

// Pod is one pod's state.
type Pod struct {
	Name        string    `json:"name"`
	Phase       string    `json:"phase"`
	Ready       bool      `json:"ready"`
	Restarts    int32     `json:"restarts"`
	Node        string    `json:"node,omitempty"`
	Created     time.Time `json:"created"`
	Terminating bool      `json:"terminating,omitempty"`
}

// Service is a Service as its EndpointSlices list it.
type Service struct {
	Name      string     `json:"name"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one address of a Service, with the three conditions
// kube-proxy reads.
type Endpoint struct {
	Pod         string `json:"pod,omitempty"`
	Address     string `json:"address"`
	Ready       bool   `json:"ready"`
	Serving     bool   `json:"serving"`
	Terminating bool   `json:"terminating"`
}

// HPA is a HorizontalPodAutoscaler's view of its target.
type HPA struct {
	Name    string   `json:"name"`
	Target  string   `json:"target"`
	Min     int32    `json:"min"`
	Max     int32    `json:"max"`
	Current int32    `json:"current"`
	Desired int32    `json:"desired"`
	Metrics []string `json:"metrics"`
}

// Job is a Job's progress.
type Job struct {
	Name        string `json:"name"`
	Completions int32  `json:"completions"`
	Succeeded   int32  `json:"succeeded"`
	Failed      int32  `json:"failed"`
	Active      int32  `json:"active"`
	Done        string `json:"done,omitempty"` // Complete or Failed
}

// Event is one recent event of the namespace.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Object  string    `json:"object"`
	Message string    `json:"message"`
	Count   int32     `json:"count"`
}

// recentEvents is how many events a snapshot carries, newest first.
const recentEvents = 20

// objects is what the informers hold, listed.
type objects struct {
	deployments []kube.Deployment
	replicaSets []kube.ReplicaSet
	pods        []kube.Pod
	slices      []kube.EndpointSlice
	hpas        []kube.HorizontalPodAutoscaler
	jobs        []kube.Job
	events      []kube.Event
}

// build makes the snapshot of o. It depends on nothing but o, so the
// same objects always give the same bytes, and an unchanged namespace
// sends browsers nothing.
func build(namespace string, o objects, problems []string) Snapshot {
	s := Snapshot{Namespace: namespace, Problems: problems}

	podsOf := map[string][]Pod{} // by owning ReplicaSet's name
	for _, p := range o.pods {
		owner := p.ControllerOf("ReplicaSet")
		if owner == "" {
			s.OtherPods = append(s.OtherPods, podOf(p))
			continue
		}
		podsOf[owner] = append(podsOf[owner], podOf(p))
	}
	rsOf := map[string][]ReplicaSet{} // by owning Deployment's name
	for _, rs := range o.replicaSets {
		owner := rs.ControllerOf("Deployment")
		if owner == "" {
			continue
		}
		pods := podsOf[rs.Name]
		sortPods(pods)
		image := ""
		if cs := rs.Spec.Template.Spec.Containers; len(cs) > 0 {
			image = cs[0].Image
		}
		rsOf[owner] = append(rsOf[owner], ReplicaSet{
			Name: rs.Name, Revision: rs.Annotations["deployment.kubernetes.io/revision"], Image: image,
			Desired: deref(rs.Spec.Replicas), Ready: rs.Status.ReadyReplicas, Pods: pods,
		})
	}
	for _, d := range o.deployments {
		replicaSets := rsOf[d.Name]
		slices.SortFunc(replicaSets, func(a, b ReplicaSet) int { return cmp.Compare(revision(b.Revision), revision(a.Revision)) })
		// An old ReplicaSet scaled to zero with no pod left is history
		// (`kubectl rollout history`), not something to watch; the newest
		// stays, even at zero.
		replicaSets = slices.DeleteFunc(replicaSets, func(rs ReplicaSet) bool {
			return rs.Desired == 0 && len(rs.Pods) == 0 && rs.Name != replicaSets[0].Name
		})
		dep := Deployment{
			Name: d.Name, Revision: d.Annotations["deployment.kubernetes.io/revision"], Desired: deref(d.Spec.Replicas),
			Ready: d.Status.ReadyReplicas, Updated: d.Status.UpdatedReplicas, Strategy: d.Spec.Strategy.Type,
			Paused: d.Spec.Paused, Replicas: replicaSets,
		}
		for _, c := range d.Status.Conditions {
			if c.Type == "Progressing" {
				dep.Condition = c.Reason
			}
		}
		s.Deployments = append(s.Deployments, dep)
	}
	slices.SortFunc(s.Deployments, func(a, b Deployment) int { return cmp.Compare(a.Name, b.Name) })
	sortPods(s.OtherPods)

	bySvc := map[string][]Endpoint{}
	for _, sl := range o.slices {
		svc := sl.Labels[kube.LabelServiceName]
		if svc == "" {
			continue
		}
		for _, e := range sl.Endpoints {
			ep := Endpoint{Ready: derefBool(e.Conditions.Ready, true), Serving: derefBool(e.Conditions.Serving, true),
				Terminating: derefBool(e.Conditions.Terminating, false)}
			if len(e.Addresses) > 0 {
				ep.Address = e.Addresses[0]
			}
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				ep.Pod = e.TargetRef.Name
			}
			bySvc[svc] = append(bySvc[svc], ep)
		}
		if _, ok := bySvc[svc]; !ok {
			bySvc[svc] = nil // a Service with no endpoints is worth showing
		}
	}
	for name, eps := range bySvc {
		slices.SortFunc(eps, func(a, b Endpoint) int { return cmp.Or(cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Address, b.Address)) })
		s.Services = append(s.Services, Service{Name: name, Endpoints: eps})
	}
	slices.SortFunc(s.Services, func(a, b Service) int { return cmp.Compare(a.Name, b.Name) })

	for _, h := range o.hpas {
		s.HPAs = append(s.HPAs, HPA{
			Name: h.Name, Target: h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name,
			Min: deref(h.Spec.MinReplicas), Max: h.Spec.MaxReplicas,
			Current: h.Status.CurrentReplicas, Desired: h.Status.DesiredReplicas, Metrics: hpaMetrics(h),
		})
	}
	slices.SortFunc(s.HPAs, func(a, b HPA) int { return cmp.Compare(a.Name, b.Name) })

	for _, j := range o.jobs {
		job := Job{Name: j.Name, Completions: deref(j.Spec.Completions), Succeeded: j.Status.Succeeded,
			Failed: j.Status.Failed, Active: j.Status.Active}
		for _, c := range j.Status.Conditions {
			if (c.Type == "Complete" || c.Type == "Failed") && c.Status == "True" {
				job.Done = c.Type
			}
		}
		s.Jobs = append(s.Jobs, job)
	}
	slices.SortFunc(s.Jobs, func(a, b Job) int { return cmp.Compare(a.Name, b.Name) })

	for _, e := range o.events {
		s.Events = append(s.Events, Event{
			Time: eventTime(e), Type: e.Type, Reason: e.Reason,
			Object: e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name, Message: e.Message, Count: max(e.Count, 1),
		})
	}
	slices.SortFunc(s.Events, func(a, b Event) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(a.Object, b.Object), cmp.Compare(a.Reason, b.Reason))
	})
	if len(s.Events) > recentEvents {
		s.Events = s.Events[:recentEvents]
	}
	return s
}

func podOf(p kube.Pod) Pod {
	out := Pod{Name: p.Name, Phase: p.Status.Phase, Node: p.Spec.NodeName, Created: p.CreationTimestamp,
		Terminating: p.DeletionTimestamp != nil}
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			out.Ready = c.Status == "True"
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		out.Restarts += cs.RestartCount
	}
	return out
}

func sortPods(pods []Pod) {
	slices.SortFunc(pods, func(a, b Pod) int { return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.Name, b.Name)) })
}

func hpaMetrics(h kube.HorizontalPodAutoscaler) []string {
	var out []string
	for i, m := range h.Spec.Metrics {
		if m.Type != "Resource" || m.Resource == nil {
			out = append(out, m.Type)
			continue
		}
		target := "?"
		if u := m.Resource.Target.AverageUtilization; u != nil {
			target = fmt.Sprintf("%d%%", *u)
		}
		current := "?"
		if i < len(h.Status.CurrentMetrics) {
			if r := h.Status.CurrentMetrics[i].Resource; r != nil && r.Current.AverageUtilization != nil {
				current = fmt.Sprintf("%d%%", *r.Current.AverageUtilization)
			}
		}
		out = append(out, fmt.Sprintf("%s %s / %s", m.Resource.Name, current, target))
	}
	return out
}

func eventTime(e kube.Event) time.Time {
	for _, t := range []time.Time{e.LastTimestamp, e.EventTime, e.FirstTimestamp, e.CreationTimestamp} {
		if !t.IsZero() {
			return t.UTC()
		}
	}
	return time.Time{}
}

func revision(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func derefBool(p *bool, otherwise bool) bool {
	if p == nil {
		return otherwise
	}
	return *p
}
