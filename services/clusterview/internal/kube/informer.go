package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// minWatchTimeout is the shortest a watch asks to last. Each asks for a
// random length between it and twice it (client-go does the same), so
// the watches of many clients, started together, do not all end and
// start again together.
const minWatchTimeout = 5 * time.Minute

// healthyWatch is how long a watch must have stayed open for the
// backoff to start again from its first wait: a list that works followed
// by a watch that fails at once (RBAC that grants list, not watch) must
// not make a loop of a request a second.
const healthyWatch = time.Minute

// Informer keeps a copy of one resource's objects in one namespace, the
// way client-go's informers do, in two steps:
//
//  1. LIST: GET .../namespaces/NS/pods answers every object, and the
//     collection's resourceVersion: the point in the API server's history
//     that the list shows.
//  2. WATCH: GET .../namespaces/NS/pods?watch=true&resourceVersion=RV
//     answers a stream of events, every change after RV, one JSON object
//     each: ADDED, MODIFIED and DELETED carry the object; BOOKMARK only
//     moves RV on, so that a quiet resource's RV stays recent enough to
//     watch from; ERROR carries a Status.
//
// A watch ends after its timeout (or when its connection breaks) and the
// next one starts from the last RV seen, so nothing is missed and nothing
// is listed twice. Only when the API server has forgotten that RV (410
// Gone: etcd keeps a few minutes of history) does the informer list
// again. Any other failure is kept as its Problem and the informer lists
// again after a backoff; the next good list clears it.
type Informer[T Object] struct {
	client    *Client
	resource  Resource
	namespace string
	changed   func()
	// Backoff bounds the waits after failures; set it before Run.
	Backoff Backoff

	mu      sync.Mutex
	objects map[string]T // by name: one namespace, one kind
	problem error
}

// NewInformer returns an informer of resource in namespace. It calls
// changed, which must not block, whenever its objects or its problem
// change.
func NewInformer[T Object](client *Client, resource Resource, namespace string, changed func()) *Informer[T] {
	return &Informer[T]{client: client, resource: resource, namespace: namespace, changed: changed, Backoff: defaultBackoff(), objects: map[string]T{}}
}

// Resource is what the informer watches.
func (in *Informer[T]) Resource() Resource { return in.resource }

// List returns the objects as last seen, by name. It asks the API server
// nothing.
func (in *Informer[T]) List() []T {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]T, 0, len(in.objects))
	for _, name := range slices.Sorted(maps.Keys(in.objects)) {
		out = append(out, in.objects[name])
	}
	return out
}

// Problem is why the last list or watch failed, until a list succeeds
// again; nil while all is well.
func (in *Informer[T]) Problem() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.problem
}

// Run lists and watches until ctx ends.
func (in *Informer[T]) Run(ctx context.Context) {
	retry := retrier{Backoff: in.Backoff}
	for {
		version, err := in.list(ctx)
		for err == nil {
			var healthy bool
			version, healthy, err = in.watch(ctx, version)
			if healthy {
				retry.reset() // the trouble, if there was any, is over
			}
		}
		if ctx.Err() != nil {
			return
		}
		if IsGone(err) {
			continue // history compacted: list again now, nothing is wrong
		}
		in.fail(err)
		if !retry.wait(ctx) {
			return
		}
	}
}

// list replaces every object with the API server's current ones and
// returns the list's resourceVersion.
func (in *Informer[T]) list(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	body, err := in.client.get(ctx, in.resource.Path(in.namespace), nil)
	if err != nil {
		return "", fmt.Errorf("list %s: %w", in.resource.Name, err)
	}
	defer body.Close()
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []T `json:"items"`
	}
	if err := json.NewDecoder(body).Decode(&list); err != nil {
		return "", fmt.Errorf("list %s: decode: %w", in.resource.Name, err)
	}
	objects := make(map[string]T, len(list.Items))
	for _, o := range list.Items {
		objects[o.GetName()] = o
	}
	in.mu.Lock()
	in.objects, in.problem = objects, nil
	in.mu.Unlock()
	in.changed()
	return list.Metadata.ResourceVersion, nil
}

// event is one line of a watch's stream.
type event struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watch applies the changes after version until the watch ends. It
// returns the last version seen, and whether the watch stayed open at
// least healthyWatch.
func (in *Informer[T]) watch(ctx context.Context, version string) (last string, healthy bool, err error) {
	timeout := (minWatchTimeout + rand.N(minWatchTimeout)).Truncate(time.Second)
	query := url.Values{
		"watch":               {"true"},
		"resourceVersion":     {version},
		"allowWatchBookmarks": {"true"},
		"timeoutSeconds":      {strconv.Itoa(int(timeout.Seconds()))},
	}
	// The API server ends the watch after timeoutSeconds; this deadline
	// is for a server that never does.
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Minute)
	defer cancel()
	started := time.Now()
	body, err := in.client.get(ctx, in.resource.Path(in.namespace), query)
	if err != nil {
		return version, false, fmt.Errorf("watch %s: %w", in.resource.Name, err)
	}
	defer body.Close()

	dec := json.NewDecoder(body)
	events := 0
	var ended error
	for {
		var e event
		// The stream ends (io.EOF) when timeoutSeconds is up, and breaks
		// when its connection does: the API server restarting, or
		// closing connections to spread them over its replicas. Either
		// way a new watch from the last version misses nothing, so
		// neither is a problem to show (client-go does the same).
		if ended = dec.Decode(&e); ended != nil {
			break
		}
		events++
		if version, err = in.apply(e, version); err != nil {
			return version, false, fmt.Errorf("watch %s: %w", in.resource.Name, err)
		}
	}
	// But a watch that ends at once with nothing in it would make this a
	// busy loop: a proxy in the way that closes streams, say.
	if events == 0 && time.Since(started) < time.Second {
		if errors.Is(ended, io.EOF) {
			return version, false, fmt.Errorf("watch %s: the stream ended at once", in.resource.Name)
		}
		return version, false, fmt.Errorf("watch %s: the stream ended at once: %w", in.resource.Name, ended)
	}
	return version, time.Since(started) >= healthyWatch, nil
}

// apply makes one event's change and returns the version it moves to.
func (in *Informer[T]) apply(e event, version string) (string, error) {
	switch e.Type {
	case "ADDED", "MODIFIED", "DELETED":
		var o T
		if err := json.Unmarshal(e.Object, &o); err != nil {
			return version, fmt.Errorf("decode a %s event: %w", e.Type, err)
		}
		in.mu.Lock()
		if e.Type == "DELETED" {
			delete(in.objects, o.GetName())
		} else {
			in.objects[o.GetName()] = o
		}
		in.mu.Unlock()
		in.changed()
		return o.GetResourceVersion(), nil
	case "BOOKMARK":
		var b struct {
			Metadata ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(e.Object, &b); err != nil {
			return version, fmt.Errorf("decode a BOOKMARK: %w", err)
		}
		return b.Metadata.ResourceVersion, nil
	case "ERROR":
		var s Status
		if err := json.Unmarshal(e.Object, &s); err != nil {
			return version, fmt.Errorf("decode an ERROR: %w", err)
		}
		return version, &StatusError{Status: s}
	default:
		return version, fmt.Errorf("an event of unknown type %q", strings.ToValidUTF8(e.Type, "?"))
	}
}

// fail keeps err as the problem, and says so if it is new.
func (in *Informer[T]) fail(err error) {
	in.mu.Lock()
	changed := in.problem == nil || in.problem.Error() != err.Error()
	in.problem = err
	in.mu.Unlock()
	if changed {
		in.changed()
	}
}
