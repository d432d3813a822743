package main_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/frontend/internal/backend"
	"github.com/kubelab/kubelab/services/imageproc/imageproctest"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// These tests take imageproc pods away under the frontend's gRPC client
// (its real configuration: round robin over a headless Service, client-side
// health checking, retries) the ways Kubernetes does: a pod deleted (SIGTERM,
// its drain, then its endpoint goes) while a replacement appears, and a
// pod killed outright. The pods are real imageproc processes on 127.0.0.N,
// one port, behind a DNS name the test edits as the endpoints change.

const headless = "imageproc-headless.test."

// fleet is the imageproc pods of a test and the DNS that lists them.
type fleet struct {
	t    *testing.T
	port string
	zone *proctest.Zone
	pods map[byte]*imageproctest.Server // by the last byte of the IP
}

func newFleet(t *testing.T) *fleet {
	_, port, _ := net.SplitHostPort(proctest.FreeAddr(t))
	return &fleet{t: t, port: port, zone: proctest.ServeZone(t, map[string][]netip.Addr{headless: nil}), pods: map[byte]*imageproctest.Server{}}
}

// start runs pod "imageproc-<n>" on 127.0.0.n and lists it in DNS at once,
// as a headless Service with publishNotReadyAddresses does when the pod
// gets its IP. It returns once the pod is ready.
func (f *fleet) start(n byte) {
	f.t.Helper()
	f.pods[n] = nil
	f.publish()
	f.pods[n] = imageproctest.Start(f.t, podName(n), net.JoinHostPort(ip(n).String(), f.port), "DRAIN_DELAY=1s")
}

// gone removes pod n's address from DNS: its endpoint is deleted.
func (f *fleet) gone(n byte) {
	delete(f.pods, n)
	f.publish()
}

func (f *fleet) publish() {
	var addrs []netip.Addr
	for n := range f.pods {
		addrs = append(addrs, ip(n))
	}
	f.zone.Set(headless, addrs...)
}

func (f *fleet) client() *backend.Client {
	f.t.Helper()
	c, err := backend.Dial(backend.Options{Target: "dns://" + f.zone.Addr + "/" + headless + ":" + f.port,
		Balancing: backend.RoundRobin, Timeout: 5 * time.Second, StreamTimeout: 30 * time.Second})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = c.Close() })
	return c
}

func ip(n byte) netip.Addr  { return netip.AddrFrom4([4]byte{127, 0, 0, n}) }
func podName(n byte) string { return "imageproc-" + strconv.Itoa(int(n)) }

// call is one request of the traffic loops.
type call struct {
	kind  string // "list" (unary, retried) or "upload" (a client stream, not retried)
	start time.Time
	pod   string // who answered
	err   error
}

// traffic is a steady, bounded stream of calls: one loop of ListImages and
// one of uploads, each waiting 10ms between calls.
type traffic struct {
	mu    sync.Mutex
	calls []call
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startTraffic(t *testing.T, c *backend.Client) *traffic {
	photo := pipelinetest.JPEG(64, 48, 3)
	tr := &traffic{stop: make(chan struct{})}
	loop := func(kind string, do func(context.Context) error) {
		tr.wg.Go(func() {
			for range 5000 { // a bound, should stop never come
				select {
				case <-tr.stop:
					return
				default:
				}
				ctx, answer := backend.Track(t.Context())
				start := time.Now()
				err := do(ctx)
				pod, _ := answer.ServedBy()
				tr.mu.Lock()
				tr.calls = append(tr.calls, call{kind, start, pod, err})
				tr.mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	loop("list", func(ctx context.Context) error {
		ctx, cancel := c.Unary(ctx)
		defer cancel()
		_, err := c.Images.ListImages(ctx, &imageprocv1.ListImagesRequest{PageSize: 1})
		return err
	})
	loop("upload", func(ctx context.Context) error {
		ctx, cancel := c.Stream(ctx)
		defer cancel()
		_, err := imageproctest.Upload(ctx, c.Images, "loop.jpg", photo)
		return err
	})
	t.Cleanup(func() { tr.halt() })
	return tr
}

// halt stops the loops and returns every call made.
func (tr *traffic) halt() []call {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.wg.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.calls)
}

// answered counts the successful calls of kind ("" for any) that pod
// answered and that started after since.
func (tr *traffic) answered(kind, pod string, since time.Time) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, c := range tr.calls {
		if c.err == nil && c.pod == pod && (kind == "" || c.kind == kind) && !c.start.Before(since) {
			n++
		}
	}
	return n
}

// waitAnswered waits until pod has answered calls of every kind started
// after since, and says whether it did. The bound is generous: the client
// asks DNS every 2s.
func (tr *traffic) waitAnswered(pod string, since time.Time) bool {
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if tr.answered("list", pod, since) > 0 && tr.answered("upload", pod, since) > 0 {
			return true
		}
	}
	return false
}

func (tr *traffic) mustAnswer(t *testing.T, pod string) {
	t.Helper()
	if !tr.waitAnswered(pod, time.Time{}) {
		t.Fatalf("%s answered no call in 15s", pod)
	}
}

// Pods deleted one at a time, each replaced, as `kubectl delete pod` or a
// rolling update does: the old pod drains (not SERVING at once, still
// answering for DRAIN_DELAY), its endpoint goes once it has exited, and its
// replacement is listed from the moment it starts. No call may fail. The
// client must take the replacement into its rotation before the next old
// pod drains: grpc-go's dns resolver re-resolved only on a connection
// failure and at most every 30s, so the client knew only the two old pods
// and, once both drained, had none.
func TestProcessPodsReplacedOneAtATimeLoseNoCall(t *testing.T) {
	f := newFleet(t)
	f.start(1)
	f.start(2)
	tr := startTraffic(t, f.client())
	tr.mustAnswer(t, podName(1))
	tr.mustAnswer(t, podName(2))

	for _, step := range []struct{ old, replacement byte }{{1, 3}, {2, 4}} {
		f.start(step.replacement)
		since := time.Now()
		// Kubernetes deletes the old pod once its replacement is ready.
		// The client must have found the replacement by itself; only then
		// is the old pod's drain safe. Should it not, the drain goes ahead
		// anyway, to show what that costs.
		if !tr.waitAnswered(podName(step.replacement), since) {
			t.Errorf("%s, listed and ready, answered no call in 15s: the client did not find it", podName(step.replacement))
		}
		old := f.pods[step.old]
		old.Signal(t, syscall.SIGTERM)
		if code := old.Wait(t, 15*time.Second); code != 0 {
			t.Fatalf("%s exited %d after SIGTERM", podName(step.old), code)
		}
		f.gone(step.old)
	}
	// The last replacement takes calls too.
	if !tr.waitAnswered(podName(4), time.Time{}) {
		t.Errorf("%s answered no call in 15s", podName(4))
	}

	calls := tr.halt()
	failed := 0
	for _, c := range calls {
		if c.err != nil {
			failed++
			t.Errorf("%s started %s failed: %v", c.kind, c.start.Format("15:04:05.000"), c.err)
		}
	}
	t.Logf("%d calls, %d failed", len(calls), failed)
}

// A pod killed outright (SIGKILL: no drain, its connections reset, then
// "connection refused" while its address is still listed, as for a
// container restart or until the endpoint goes). The documented window:
// the calls in flight on it when it died fail, unless retried. Unary reads
// are retried on UNAVAILABLE on another pod, so none fails; an upload is a
// client stream that is not retried (a retry after a lost answer could
// store the photo twice), so the one in flight may fail. Every upload after
// that goes to the live pod.
func TestProcessPodKilledFailsOnlyTheUploadInFlight(t *testing.T) {
	f := newFleet(t)
	f.start(1)
	f.start(2)
	tr := startTraffic(t, f.client())
	tr.mustAnswer(t, podName(1))
	tr.mustAnswer(t, podName(2))

	victim := f.pods[1]
	victim.Signal(t, syscall.SIGKILL)
	victim.Wait(t, 10*time.Second)
	killed := time.Now()
	// Still listed: the client dials it and is refused, and must not care.
	proctest.WaitFor(t, "50 uploads to the live pod", 15*time.Second, func() bool {
		return tr.answered("upload", podName(2), killed) >= 50
	})
	f.gone(1)
	since := time.Now()
	proctest.WaitFor(t, "50 more uploads once the endpoint is gone", 15*time.Second, func() bool {
		return tr.answered("upload", podName(2), since) >= 50
	})

	calls := tr.halt()
	var failedUploads []call
	for _, c := range calls {
		switch {
		case c.err == nil:
		case c.kind == "upload" && status.Code(c.err) == codes.Unavailable:
			failedUploads = append(failedUploads, c)
		default:
			t.Errorf("%s started %s failed: %v", c.kind, c.start.Format("15:04:05.000"), c.err)
		}
	}
	// One upload loop, so one upload at most was in flight on the victim.
	if len(failedUploads) > 1 {
		for _, c := range failedUploads {
			t.Errorf("upload started %s failed: %v", c.start.Format("15:04:05.000"), c.err)
		}
	}
	t.Logf("%d calls; failed: %d upload(s) in flight on the killed pod", len(calls), len(failedUploads))
}
