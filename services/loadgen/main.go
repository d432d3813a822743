// Command loadgen sends steady traffic to the frontend (HTTP) or straight
// to imageproc (gRPC) and prints, every second, who answered: versions,
// pods, failures and latency. Run it while scaling, rolling out or rolling
// back, and watch the answers move from one version to the next with no
// failures in between.
//
//	loadgen --target http://127.0.0.1:8080 --rate 50 --duration 60s
//	loadgen --mode grpc --target dns:///imageproc-headless:50051 --balancing round_robin
//
// The exit status is 1 when more than --max-errors requests failed, so a
// script (or a test) can assert that a rollout lost nothing.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kubelab/kubelab/services/loadgen/internal/load"
	"github.com/kubelab/kubelab/services/loadgen/internal/stats"
	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/grpcmetrics"
	"github.com/kubelab/kubelab/services/platform/telemetry"
)

type options struct {
	mode, target, path, host, balancing string
	rate                                float64
	duration, timeout, interval         time.Duration
	concurrency, maxErrors              int
	keepAlive, quiet                    bool
	jsonOut, metricsAddr                string
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mode, "mode", "http", "http (the frontend) or grpc (imageproc directly)")
	fs.StringVar(&o.target, "target", "http://127.0.0.1:8080", "frontend base URL, or a gRPC target such as dns:///imageproc-headless:50051")
	fs.StringVar(&o.path, "path", "/api/v1/info", "HTTP path to request; /api/v1/images also shows which imageproc pod answered")
	fs.StringVar(&o.host, "host", "", "HTTP Host header, to go through an Ingress rule")
	fs.StringVar(&o.balancing, "balancing", "pick_first", "gRPC balancing: pick_first or round_robin")
	fs.Float64Var(&o.rate, "rate", 50, "requests per second; 0 sends as fast as --concurrency workers can")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long to run; 0 runs until SIGTERM (as a Deployment)")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Second, "per-request timeout")
	fs.DurationVar(&o.interval, "interval", time.Second, "how often to print a line of the live table")
	fs.IntVar(&o.concurrency, "concurrency", 64, "most requests in flight")
	fs.IntVar(&o.maxErrors, "max-errors", 0, "exit 1 if more requests than this fail; -1 never")
	fs.BoolVar(&o.keepAlive, "keepalive", true, "reuse HTTP connections (false: a new connection, so a new kube-proxy choice, per request)")
	fs.BoolVar(&o.quiet, "quiet", false, "no live table")
	fs.StringVar(&o.jsonOut, "json", "", "write a JSON summary to this file (- for stdout)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address (e.g. :9100)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.mode != "http" && o.mode != "grpc":
		return o, fmt.Errorf("--mode %q: want http or grpc", o.mode)
	case o.balancing != "pick_first" && o.balancing != "round_robin":
		return o, fmt.Errorf("--balancing %q: want pick_first or round_robin", o.balancing)
	case o.rate < 0 || o.rate > 100000:
		return o, fmt.Errorf("--rate %v: want 0 to 100000", o.rate)
	case o.duration < 0:
		return o, errors.New("--duration must not be negative")
	case o.duration == 0 && o.metricsAddr == "":
		// Unbounded runs are for the Deployment, which is watched
		// through /metrics; anywhere else a run must end by itself.
		return o, errors.New("--duration 0 (run until stopped) needs --metrics-addr")
	case o.concurrency < 1 || o.concurrency > 10000:
		return o, fmt.Errorf("--concurrency %d: want 1 to 10000", o.concurrency)
	case o.timeout <= 0 || o.interval <= 0:
		return o, errors.New("--timeout and --interval must be positive")
	case o.mode == "http" && !strings.HasPrefix(o.target, "http://") && !strings.HasPrefix(o.target, "https://"):
		return o, fmt.Errorf("--target %q: HTTP mode wants a URL like http://127.0.0.1:8080", o.target)
	}
	return o, nil
}

func main() {
	o, err := parse(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	// loadgen's own output is its live table, for people; what net/http
	// and gRPC log beside it is JSON, like every kubelab log. Errors only,
	// as gRPC's own logger does unless asked: a pod that goes away is in
	// the table already (FAILED: Unavailable), not worth a warning line
	// in the middle of it.
	log, _ := telemetry.NewLogger(os.Stderr, "error", "service", "loadgen", "version", build.Version, "pod", build.Instance())
	telemetry.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	code, err := run(ctx, o, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
	}
	os.Exit(code)
}

type closingTarget interface {
	load.Target
	Close() error
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) (int, error) {
	// Without --metrics-addr, metrics stay nil: nothing is counted twice
	// for nobody.
	var metrics *telemetry.Metrics
	var rpcs *grpcmetrics.Metrics
	var counts *stats.Metrics
	if o.metricsAddr != "" {
		metrics = telemetry.NewMetrics(build.Current("loadgen"))
		rpcs = grpcmetrics.New(metrics.Registry)
		counts = stats.NewMetrics(metrics.Registry)
		lis, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			return 2, fmt.Errorf("--metrics-addr %s: %w", o.metricsAddr, err)
		}
		log, err := telemetry.NewLogger(stderr, "error", "service", "loadgen")
		if err != nil {
			return 2, err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler())
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: telemetry.ErrorLog(log, "server", "metrics")}
		go func() { _ = srv.Serve(lis) }()
		defer srv.Close()
	}

	var target closingTarget
	name := o.target
	if o.mode == "http" {
		name = strings.TrimSuffix(o.target, "/") + o.path
		target = load.NewHTTP(name, o.host, o.concurrency, o.keepAlive)
	} else {
		t, err := load.NewGRPC(o.target, o.balancing, rpcs.DialOptions()...)
		if err != nil {
			return 2, err
		}
		target = t
	}
	defer target.Close()

	rec := stats.NewRecorder(counts)
	plan := load.Plan{Rate: o.rate, Duration: o.duration, Concurrency: o.concurrency, Timeout: o.timeout}
	if !o.quiet {
		fmt.Fprintf(stderr, "loadgen: %s at %s for %s\n%s\n", name, rateText(o.rate, o.concurrency), durationText(o.duration), stats.Header)
	}
	load.Run(ctx, plan, target, rec, o.interval, func(iv stats.Interval) {
		if !o.quiet {
			fmt.Fprintln(stderr, iv.Line())
		}
	})

	sum := rec.Summary(name)
	fmt.Fprintf(stderr, "loadgen: %d requests, %d ok, %d failed; p50 %.1fms p99 %.1fms; versions %v\n",
		sum.Sent, sum.OK, sum.Failed, sum.Latency.P50, sum.Latency.P99, sum.Versions)
	if err := writeSummary(o.jsonOut, stdout, sum); err != nil {
		return 2, err
	}
	if o.maxErrors >= 0 && sum.Failed > o.maxErrors {
		return 1, fmt.Errorf("%d requests failed, more than --max-errors=%d", sum.Failed, o.maxErrors)
	}
	return 0, nil
}

func rateText(rate float64, concurrency int) string {
	if rate == 0 {
		return fmt.Sprintf("full speed with %d workers", concurrency)
	}
	return fmt.Sprintf("%g req/s", rate)
}

func durationText(d time.Duration) string {
	if d == 0 {
		return "until stopped"
	}
	return d.String()
}

func writeSummary(path string, stdout io.Writer, sum stats.Summary) error {
	if path == "" {
		return nil
	}
	body, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	body = append(body, '\n')
	if path == "-" {
		_, err = stdout.Write(body)
		return err
	}
	if err := os.WriteFile(path, body, 0o644); err != nil { //nolint:gosec // a report for the user to read
		return fmt.Errorf("--json %s: %w", path, err)
	}
	return nil
}
