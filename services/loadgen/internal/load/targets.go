package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/loadgen/internal/stats"
	"github.com/kubelab/kubelab/services/platform/grpcclient"
)

// HTTP calls a frontend URL and reads who answered from its headers.
type HTTP struct {
	URL    string
	Host   string // optional Host header, to go through an Ingress rule
	client *http.Client
}

// NewHTTP returns an HTTP target. With keepAlive false every request opens
// a new connection, so kube-proxy balances each one; with it, connections
// are reused and each sticks to the pod it first reached.
func NewHTTP(url, host string, concurrency int, keepAlive bool) *HTTP {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     30 * time.Second,
		DisableKeepAlives:   !keepAlive,
	}
	return &HTTP{URL: url, Host: host, client: &http.Client{Transport: tr}}
}

// Hit sends one GET.
func (t *HTTP) Hit(ctx context.Context) stats.Outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return stats.Outcome{Failure: "bad request"}
	}
	if t.Host != "" {
		req.Host = t.Host
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return stats.Outcome{Failure: failureKind(err)}
	}
	defer resp.Body.Close()
	// Read the whole body: a response cut short is a failure too.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return stats.Outcome{Failure: "truncated", Code: strconv.Itoa(resp.StatusCode)}
	}
	o := stats.Outcome{Version: resp.Header.Get("X-Version"), Pod: resp.Header.Get("X-Served-By"), Backend: resp.Header.Get("X-Backend-Served-By"),
		Code: strconv.Itoa(resp.StatusCode)}
	if resp.StatusCode >= 400 {
		o.Failure = fmt.Sprintf("http %d", resp.StatusCode)
	}
	return o
}

// Close releases idle connections.
func (t *HTTP) Close() error { t.client.CloseIdleConnections(); return nil }

func failureKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	default:
		return "connection"
	}
}

// GRPC calls imageproc's ListImages (one row) and reads who answered from
// the response headers.
type GRPC struct {
	conn   *grpc.ClientConn
	images imageprocv1.ImageServiceClient
}

// NewGRPC dials target with the balancing policy: pick_first keeps one
// connection (one pod answers everything), round_robin over a dns:///
// target spreads calls over every address. extra are more dial options
// (the metrics' interceptors).
func NewGRPC(target, balancing string, extra ...grpc.DialOption) (*GRPC, error) {
	// No retries: loadgen reports what a client without them would see.
	conn, err := grpcclient.Dial(grpcclient.Options{Target: target, Balancing: balancing}, extra...)
	if err != nil {
		return nil, fmt.Errorf("--target, --balancing: %w", err)
	}
	return &GRPC{conn: conn, images: imageprocv1.NewImageServiceClient(conn)}, nil
}

// Hit sends one ListImages.
func (t *GRPC) Hit(ctx context.Context) stats.Outcome {
	var header metadata.MD
	_, err := t.images.ListImages(ctx, &imageprocv1.ListImagesRequest{PageSize: 1}, grpc.Header(&header))
	code := status.Code(err)
	o := stats.Outcome{Version: first(header, "kubelab-version"), Pod: first(header, "kubelab-served-by"), Code: code.String()}
	if err != nil {
		if code == codes.DeadlineExceeded {
			o.Failure = "timeout"
		} else {
			o.Failure = code.String()
		}
	}
	return o
}

// Close closes the connection.
func (t *GRPC) Close() error { return t.conn.Close() }

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
