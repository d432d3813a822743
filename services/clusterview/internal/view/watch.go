package view

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kubelab/kubelab/services/clusterview/internal/kube"
)

// settle is how long the watcher waits after a change for the ones that
// come with it (a rollout step changes a ReplicaSet, its pods and an
// EndpointSlice within milliseconds), so browsers get one snapshot, not
// ten.
const settle = 100 * time.Millisecond

// Watcher keeps a snapshot of one namespace current from informers: one
// list and one watch per resource for the pod, however many browsers
// look. It only reads (get, list, watch: the Role in
// kustomize/components/live-view grants nothing else).
type Watcher struct {
	log       *slog.Logger
	namespace string
	hub       *Hub
	changed   chan struct{}

	deployments *kube.Informer[kube.Deployment]
	replicaSets *kube.Informer[kube.ReplicaSet]
	pods        *kube.Informer[kube.Pod]
	events      *kube.Informer[kube.Event]
	slices      *kube.Informer[kube.EndpointSlice]
	hpas        *kube.Informer[kube.HorizontalPodAutoscaler]
	jobs        *kube.Informer[kube.Job]

	// logged is each resource's problem as last logged: a failure is
	// logged when it starts or changes, not on every retry.
	logged map[string]string
}

// informer is what the watcher needs of an informer, whatever it holds.
type informer interface {
	Run(ctx context.Context)
	Problem() error
	Resource() kube.Resource
}

// NewWatcher watches namespace through client and publishes to hub.
func NewWatcher(log *slog.Logger, client *kube.Client, namespace string, hub *Hub) *Watcher {
	w := &Watcher{log: log, namespace: namespace, hub: hub, changed: make(chan struct{}, 1), logged: map[string]string{}}
	w.deployments = kube.NewInformer[kube.Deployment](client, kube.Deployments, namespace, w.poke)
	w.replicaSets = kube.NewInformer[kube.ReplicaSet](client, kube.ReplicaSets, namespace, w.poke)
	w.pods = kube.NewInformer[kube.Pod](client, kube.Pods, namespace, w.poke)
	w.events = kube.NewInformer[kube.Event](client, kube.Events, namespace, w.poke)
	w.slices = kube.NewInformer[kube.EndpointSlice](client, kube.EndpointSlices, namespace, w.poke)
	w.hpas = kube.NewInformer[kube.HorizontalPodAutoscaler](client, kube.HorizontalPodAutoscalers, namespace, w.poke)
	w.jobs = kube.NewInformer[kube.Job](client, kube.Jobs, namespace, w.poke)
	return w
}

func (w *Watcher) informers() []informer {
	return []informer{w.deployments, w.replicaSets, w.pods, w.events, w.slices, w.hpas, w.jobs}
}

func (w *Watcher) poke() {
	select {
	case w.changed <- struct{}{}:
	default: // a rebuild is already due
	}
}

// Run watches until ctx ends, and returns once every informer has
// stopped.
func (w *Watcher) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer running.Wait()
	defer cancel() // runs first: the informers stop, then Run waits for them
	for _, in := range w.informers() {
		running.Go(func() { in.Run(ctx) })
	}

	// While a list or watch is failing nothing else may change, so the
	// snapshot is also rebuilt now and then, to notice the problem is
	// over.
	recheck := time.NewTicker(5 * time.Second)
	defer recheck.Stop()
	var last []byte
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.changed:
		case <-recheck.C:
			if !w.failing() {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(settle):
		}
		b, err := json.Marshal(w.snapshot())
		if err != nil {
			return fmt.Errorf("encode the cluster snapshot: %w", err)
		}
		if !bytes.Equal(b, last) {
			w.hub.Publish(b)
			last = b
		}
	}
}

func (w *Watcher) failing() bool {
	return slices.ContainsFunc(w.informers(), func(in informer) bool { return in.Problem() != nil })
}

// snapshot makes a Snapshot of the informers' objects (no API call).
func (w *Watcher) snapshot() Snapshot {
	o := objects{
		deployments: w.deployments.List(),
		replicaSets: w.replicaSets.List(),
		pods:        w.pods.List(),
		events:      w.events.List(),
		slices:      w.slices.List(),
		hpas:        w.hpas.List(),
		jobs:        w.jobs.List(),
	}
	var problems []string
	for _, in := range w.informers() {
		resource := in.Resource().Name
		err := in.Problem()
		if err == nil {
			if _, was := w.logged[resource]; was {
				w.log.Info("watching again", "resource", resource)
				delete(w.logged, resource)
			}
			continue
		}
		why := reason(err)
		if w.logged[resource] != why {
			w.log.Warn("cannot watch; the live view says so", "resource", resource, "err", err)
			w.logged[resource] = why
		}
		problems = append(problems, resource+": "+why)
	}
	slices.Sort(problems)
	return build(w.namespace, o, problems)
}

// reason is what the page says about a failure: the API server's own
// message when it sent one (`jobs is forbidden: User "…" cannot list
// resource "jobs" …`), else what failed (the API server unreachable).
func reason(err error) string {
	if s, ok := errors.AsType[*kube.StatusError](err); ok {
		return s.Error()
	}
	return err.Error()
}

// Unwatched publishes, until ctx ends, the one snapshot there is when
// nothing can be watched: the namespace and why.
func Unwatched(ctx context.Context, hub *Hub, namespace, why string) error {
	b, err := json.Marshal(build(namespace, objects{}, []string{why}))
	if err != nil {
		return fmt.Errorf("encode the cluster snapshot: %w", err)
	}
	hub.Publish(b)
	<-ctx.Done()
	return nil
}
