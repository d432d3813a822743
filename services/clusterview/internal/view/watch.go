package view

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
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
	factory   informers.SharedInformerFactory
	hub       *Hub

	changed chan struct{}

	mu       sync.Mutex
	problems map[string]problem // by resource
}

// problem is why a resource's list or watch failed, and the resource
// version its informer had then: once that moves, the informer has listed
// again and the problem is over.
type problem struct {
	why, version string
}

// NewWatcher watches namespace through client and publishes to hub.
func NewWatcher(log *slog.Logger, client kubernetes.Interface, namespace string, hub *Hub) *Watcher {
	w := &Watcher{
		log: log, namespace: namespace, hub: hub, changed: make(chan struct{}, 1), problems: map[string]problem{},
		// No resync: the informers' watches deliver every change, and a
		// periodic resync would only rebuild identical snapshots.
		factory: informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace)),
	}
	for name, inf := range w.informers() {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { w.poke() },
			UpdateFunc: func(any, any) { w.poke() },
			DeleteFunc: func(any) { w.poke() },
		})
		// A watch that fails (RBAC removed, the API server away) is
		// retried by the informer with a backoff; the page says why.
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			w.mu.Lock()
			if _, known := w.problems[name]; !known {
				w.log.Warn("cannot watch; the live view says so", "resource", name, "err", err)
			}
			w.problems[name] = problem{why: err.Error(), version: inf.LastSyncResourceVersion()}
			w.mu.Unlock()
			w.poke()
		})
	}
	return w
}

func (w *Watcher) informers() map[string]cache.SharedIndexInformer {
	f := w.factory
	return map[string]cache.SharedIndexInformer{
		"deployments":              f.Apps().V1().Deployments().Informer(),
		"replicasets":              f.Apps().V1().ReplicaSets().Informer(),
		"pods":                     f.Core().V1().Pods().Informer(),
		"events":                   f.Core().V1().Events().Informer(),
		"endpointslices":           f.Discovery().V1().EndpointSlices().Informer(),
		"horizontalpodautoscalers": f.Autoscaling().V2().HorizontalPodAutoscalers().Informer(),
		"jobs":                     f.Batch().V1().Jobs().Informer(),
	}
}

func (w *Watcher) poke() {
	select {
	case w.changed <- struct{}{}:
	default: // a rebuild is already due
	}
}

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	w.factory.Start(ctx.Done())
	defer w.factory.Shutdown()
	// While a watch is failing nothing else may change, so the snapshot
	// is also rebuilt now and then, to notice the problem is over.
	recheck := time.NewTicker(5 * time.Second)
	defer recheck.Stop()
	var last []byte
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.changed:
		case <-recheck.C:
			w.mu.Lock()
			failing := len(w.problems) > 0
			w.mu.Unlock()
			if !failing {
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

// snapshot lists the informers' caches (no API call) into a Snapshot.
func (w *Watcher) snapshot() Snapshot {
	l := w.factory
	all := labels.Everything()
	var o objects
	o.deployments, _ = l.Apps().V1().Deployments().Lister().List(all)
	o.replicaSets, _ = l.Apps().V1().ReplicaSets().Lister().List(all)
	o.pods, _ = l.Core().V1().Pods().Lister().List(all)
	o.events, _ = l.Core().V1().Events().Lister().List(all)
	o.slices, _ = l.Discovery().V1().EndpointSlices().Lister().List(all)
	o.hpas, _ = l.Autoscaling().V2().HorizontalPodAutoscalers().Lister().List(all)
	o.jobs, _ = l.Batch().V1().Jobs().Lister().List(all)

	informers := w.informers()
	w.mu.Lock()
	var problems []string
	for resource, p := range w.problems {
		if informers[resource].LastSyncResourceVersion() != p.version {
			delete(w.problems, resource)
			continue
		}
		problems = append(problems, resource+": "+p.why)
	}
	w.mu.Unlock()
	slices.Sort(problems)
	return build(w.namespace, o, problems)
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
