package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/frontend/internal/demo"
	"github.com/kubelab/kubelab/services/frontend/internal/live"
)

// The API speaks the gRPC messages as protojson with their proto field
// names, so the JSON and the .proto file document each other.
var (
	marshal   = protojson.MarshalOptions{UseProtoNames: true}
	unmarshal = protojson.UnmarshalOptions{}
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Cache-Control"] = noStore
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func (s *Server) writeProto(w http.ResponseWriter, r *http.Request, code int, m proto.Message, answer interface{ ServedBy() (string, string) }) {
	body, err := marshal.Marshal(m)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if answer != nil {
		if pod, version := answer.ServedBy(); pod != "" {
			// Which imageproc pod answered: loadgen's view of the
			// frontend's client-side load balancing.
			w.Header().Set("X-Backend-Served-By", pod)
			w.Header().Set("X-Backend-Version", version)
		}
	}
	writeJSON(w, code, body)
}

// readProto decodes a JSON body into m, strictly: an unknown field is an
// error, not silently dropped.
func readProto(w http.ResponseWriter, r *http.Request, m proto.Message) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, formLimit))
	if err != nil {
		return err
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := unmarshal.Unmarshal(body, m); err != nil {
		return badRequest("error.invalid-json", "Err", err.Error())
	}
	return nil
}

func (s *Server) apiList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size := 0
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.fail(w, r, badRequest("error.page-size"))
			return
		}
		// A larger page is served LIMIT_MAX_PAGE_SIZE photos and a
		// next_page_token, exactly as over gRPC (see the .proto).
		size = min(n, int(imageprocv1.Limit_LIMIT_MAX_PAGE_SIZE))
	}
	resp, answer, err := unary(s, r, s.Backend.Images.ListImages, &imageprocv1.ListImagesRequest{PageSize: int32(size), PageToken: q.Get("page_token")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeProto(w, r, http.StatusOK, resp, answer)
}

func (s *Server) apiUpload(w http.ResponseWriter, r *http.Request) {
	up, ok := s.uploadOrFail(w, r)
	if !ok {
		return
	}
	// The answer carries the delete token: the only time anyone sees it.
	w.Header().Set("Location", "/api/v1/images/"+url.PathEscape(up.GetImage().GetId()))
	s.writeProto(w, r, http.StatusCreated, up, nil)
}

func (s *Server) apiGet(w http.ResponseWriter, r *http.Request) {
	resp, answer, err := unary(s, r, s.Backend.Images.GetImage, &imageprocv1.GetImageRequest{Id: r.PathValue("id")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeProto(w, r, http.StatusOK, resp, answer)
}

// apiDelete deletes a photo for whoever holds its delete token, sent as
// "Authorization: Bearer <delete_token>". The frontend only passes the
// token on: imageproc checks it, so the rule is the same for callers that
// reach imageproc directly.
func (s *Server) apiDelete(w http.ResponseWriter, r *http.Request) {
	if !s.requireFeature(w, r, live.FeatureUpload) {
		return
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	ctx, cancel := s.Backend.Unary(r.Context())
	defer cancel()
	_, err := s.Backend.Images.DeleteImage(ctx, &imageprocv1.DeleteImageRequest{Id: r.PathValue("id"), DeleteToken: token})
	if status.Code(err) == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kubelab"`)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiTransform(w http.ResponseWriter, r *http.Request) {
	if !s.requireFeature(w, r, live.FeatureTransforms) {
		return
	}
	req := &imageprocv1.TransformRequest{}
	if err := readProto(w, r, req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.ImageId != "" && req.ImageId != r.PathValue("id") {
		s.fail(w, r, badRequest("error.image-id-mismatch"))
		return
	}
	req.ImageId = r.PathValue("id")
	ctx, answer := tracked(r)
	ctx, cancel := s.Backend.Stream(ctx)
	defer cancel()
	resp, err := s.Backend.Images.Transform(ctx, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	code := http.StatusCreated
	if resp.GetCached() {
		code = http.StatusOK
	}
	s.writeProto(w, r, code, resp, answer)
}

func (s *Server) apiSubmitBatch(w http.ResponseWriter, r *http.Request) {
	if !s.requireFeature(w, r, live.FeatureBatch) {
		return
	}
	req := &imageprocv1.SubmitBatchRequest{}
	if err := readProto(w, r, req); err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := s.submitBatch(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/batches/"+url.PathEscape(b.GetId()))
	s.writeProto(w, r, http.StatusCreated, &imageprocv1.SubmitBatchResponse{Batch: b}, nil)
}

func (s *Server) apiGetBatch(w http.ResponseWriter, r *http.Request) {
	resp, answer, err := unary(s, r, s.Backend.Queue.GetBatch, &imageprocv1.GetBatchRequest{Id: r.PathValue("id")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeProto(w, r, http.StatusOK, resp, answer)
}

// Info is GET /api/v1/info: who answered and with what settings. loadgen
// calls it at thousands per second during demos, so the encoded answer is
// cached and only rebuilt when something in it changes.
type Info struct {
	Service   string    `json:"service"`
	Version   string    `json:"version"`
	Revision  string    `json:"revision"`
	Color     string    `json:"color"`
	Pod       InfoPod   `json:"pod"`
	Settings  InfoLive  `json:"settings"`
	Secret    string    `json:"secret_fingerprint"`
	Imageproc InfoProc  `json:"imageproc"`
	Ready     bool      `json:"ready"`
	Demo      InfoDemo  `json:"demo"`
	Started   time.Time `json:"started"`
}

// InfoPod is the Downward API's view of this pod.
type InfoPod struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Node      string            `json:"node,omitempty"`
	IP        string            `json:"ip,omitempty"`
	Starts    int               `json:"starts"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// InfoLive is the ConfigMap's live settings.
type InfoLive struct {
	Title       string   `json:"title"`
	Banner      string   `json:"banner,omitempty"`
	Accent      string   `json:"accent_color,omitempty"`
	UploadLimit int64    `json:"upload_limit_bytes"`
	Features    []string `json:"features"`
	Fingerprint string   `json:"fingerprint"`
	Problems    []string `json:"problems,omitempty"`
}

// InfoProc is how this frontend reaches imageproc.
type InfoProc struct {
	Target    string `json:"target"`
	Balancing string `json:"balancing"`
}

// InfoDemo is the demo controls' state.
type InfoDemo struct {
	Unready bool `json:"unready"`
	// UnreadyUntil is when forced unreadiness ends by itself.
	UnreadyUntil time.Time `json:"unready_until,omitzero"`
	ErrorRate    float64   `json:"error_rate"`
	Latency      string    `json:"latency"`
}

func infoDemo(st demo.State) InfoDemo {
	return InfoDemo{Unready: st.Unready, UnreadyUntil: st.UnreadyUntil.UTC(), ErrorRate: st.ErrorRate, Latency: st.Latency.String()}
}

// infoKey is everything the info answer depends on; Live is a pointer
// that changes whenever a volume does.
type infoKey struct {
	live  *Live
	demo  demo.State
	ready bool
}

func (s *Server) info(l *Live, d demo.State, ready bool) Info {
	labels := make(map[string]string, len(l.Labels))
	for _, kv := range l.Labels {
		labels[kv.Key] = kv.Value
	}
	opts := s.Backend.Options()
	return Info{
		Service: s.Build.Service, Version: s.Build.Version, Revision: s.Build.Revision, Color: s.color,
		Pod: InfoPod{Name: s.Pod.Name, Namespace: s.Pod.Namespace, Node: s.Pod.Node, IP: s.Pod.IP, Starts: s.Pod.Starts, Labels: labels},
		Settings: InfoLive{Title: l.Settings.Title, Banner: l.Settings.Banner, Accent: l.Settings.Accent,
			UploadLimit: l.Settings.UploadLimit, Features: l.Settings.Features, Fingerprint: l.Settings.Fingerprint, Problems: l.Settings.Problems},
		Secret:    l.SecretFingerprint,
		Imageproc: InfoProc{Target: opts.Target, Balancing: opts.Balancing},
		Ready:     ready,
		Demo:      infoDemo(d),
		Started:   s.Started,
	}
}

func (s *Server) apiInfo(w http.ResponseWriter, r *http.Request) {
	// The live view's traffic strip asks for a new connection each time
	// (?strip): kube-proxy balances connections, not requests, so a
	// browser's kept-alive connection would always reach the same pod.
	if r.URL.Query().Has("strip") {
		w.Header().Set("Connection", "close")
	}
	key := infoKey{live: s.Live(), demo: s.Demo.State(), ready: s.Health.Status().Ready}
	s.infoMu.Lock()
	if key != s.infoKey || s.infoBytes == nil {
		body, err := json.Marshal(s.info(key.live, key.demo, key.ready))
		if err != nil {
			s.infoMu.Unlock()
			panic(fmt.Sprintf("encode info: %v", err)) // plain structs: cannot fail
		}
		s.infoKey, s.infoBytes = key, append(body, '\n')
	}
	body := s.infoBytes
	s.infoMu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// DemoRequest is the body of PUT /api/v1/admin/demo; absent fields keep
// their value. UnreadyFor goes with "unready": true: forced unreadiness
// ends by itself after it (demo.DefaultUnreadyFor when absent).
type DemoRequest struct {
	Unready    *bool    `json:"unready"`
	UnreadyFor *string  `json:"unready_for"`
	ErrorRate  *float64 `json:"error_rate"`
	Latency    *string  `json:"latency"`
}

func (s *Server) requireAdmin(w http.ResponseWriter, r *http.Request) bool {
	if !s.Auth.Enabled() {
		s.fail(w, r, problemOf(http.StatusForbidden, "demo-disabled", "error.demo-disabled"))
		return false
	}
	if !s.Auth.Allowed(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kubelab"`)
		s.fail(w, r, problemOf(http.StatusUnauthorized, "unauthorized", "error.bearer"))
		return false
	}
	return true
}

func demoJSON(st demo.State) []byte {
	b, _ := json.Marshal(infoDemo(st))
	return b
}

func (s *Server) apiDemo(w http.ResponseWriter, r *http.Request) {
	if s.requireAdmin(w, r) {
		writeJSON(w, http.StatusOK, demoJSON(s.Demo.State()))
	}
}

func (s *Server) apiSetDemo(w http.ResponseWriter, r *http.Request) {
	if !s.requireAdmin(w, r) {
		return
	}
	var req DemoRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, formLimit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.fail(w, r, badRequest("error.invalid-json", "Err", err.Error()))
		return
	}
	ch := demo.Change{Unready: req.Unready, ErrorRate: req.ErrorRate}
	var err error
	if ch.UnreadyFor, err = parseDuration("unready_for", req.UnreadyFor, "90s"); err != nil {
		s.fail(w, r, err)
		return
	}
	if ch.Latency, err = parseDuration("latency", req.Latency, "250ms"); err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.setDemo(r, ch)
	if err != nil {
		s.fail(w, r, demoProblem(err))
		return
	}
	writeJSON(w, http.StatusOK, demoJSON(st))
}

// parseDuration reads an optional duration field; nil stays nil.
func parseDuration(field string, v *string, example string) (*time.Duration, error) {
	if v == nil {
		return nil, nil
	}
	d, err := time.ParseDuration(*v)
	if err != nil {
		return nil, badRequest("error.want-duration", "Field", field, "Value", *v, "Example", example)
	}
	return &d, nil
}

func (s *Server) apiCrash(w http.ResponseWriter, r *http.Request) {
	if !s.requireAdmin(w, r) {
		return
	}
	s.crash(r)
	w.WriteHeader(http.StatusAccepted)
}
