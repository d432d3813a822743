package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// root is the repository, from this package's directory.
const root = "../.."

// build is one kustomization to check.
type build struct {
	name string
	dir  string
	// extra files applied beside it (the worker Jobs, created by hand).
	extra []string
}

var jobs = []string{"manifests/worker/job.yaml", "manifests/worker/job-indexed.yaml"}

// builds lists the base, every overlay, and every component on the base
// (written to a temporary kustomization, as a user would include it).
func builds(t *testing.T) []build {
	t.Helper()
	out := []build{{name: "manifests", dir: filepath.Join(root, "manifests"), extra: jobs}}
	overlays, _ := filepath.Glob(filepath.Join(root, "kustomize/overlays/*/kustomization.yaml"))
	for _, k := range overlays {
		out = append(out, build{name: "overlay " + filepath.Base(filepath.Dir(k)), dir: filepath.Dir(k)})
	}
	components, _ := filepath.Glob(filepath.Join(root, "kustomize/components/*/kustomization.yaml"))
	for _, k := range components {
		// kustomize takes only relative paths: the kustomization goes in a
		// scratch directory here, removed when the test ends.
		dir, err := os.MkdirTemp(".", ".build-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		comp, _ := filepath.Rel(dir, filepath.Dir(k))
		base, _ := filepath.Rel(dir, filepath.Join(root, "manifests"))
		kust := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: kubelab\nresources:\n  - %s\ncomponents:\n  - %s\n", base, comp)
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o600); err != nil {
			t.Fatal(err)
		}
		out = append(out, build{name: "component " + filepath.Base(filepath.Dir(k)), dir: dir})
	}
	return out
}

func load(t *testing.T, b build) []Object {
	t.Helper()
	objs, err := Build(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range b.extra {
		more, err := ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, more...)
	}
	return objs
}

// TestEveryBuildPassesEveryCheck is the gate: kustomize builds each
// overlay and component, every object decodes strictly, and no check
// finds a problem.
func TestEveryBuildPassesEveryCheck(t *testing.T) {
	bs := builds(t)
	if len(bs) < 2 {
		t.Logf("only the base to check: no overlays or components yet")
	}
	for _, b := range bs {
		t.Run(b.name, func(t *testing.T) {
			objs := load(t, b)
			if len(Pods(objs)) == 0 {
				t.Fatal("no pod templates: the build is empty")
			}
			names := make([]string, 0, len(Checks))
			for n := range Checks {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				for _, problem := range Checks[n](objs) {
					t.Errorf("%s: %s", n, problem)
				}
			}
		})
	}
}

// TestEveryObjectLandsInTheNamespace: the base's `namespace: kubelab`
// covers only the base's own objects, not those a component adds in an
// overlay, which would land in whatever namespace kubectl's context names
// (an HPA in "default" scales nothing). Each overlay sets it again.
func TestEveryObjectLandsInTheNamespace(t *testing.T) {
	for _, b := range builds(t) {
		objs, err := Build(b.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.Kind != "Namespace" && o.Namespace != "kubelab" {
				t.Errorf("%s: %s in namespace %q, want kubelab", b.name, o, o.Namespace)
			}
		}
	}
}

// TestEveryObjectIsPartOfKubelab: `kubectl get all -l
// app.kubernetes.io/part-of=kubelab`, as the README and lessons use it,
// lists every object and pod an overlay deploys, the components' included.
func TestEveryObjectIsPartOfKubelab(t *testing.T) {
	for _, b := range builds(t) {
		if !strings.HasPrefix(b.name, "overlay ") && b.name != "manifests" {
			continue // a component alone is checked through the overlays that use it
		}
		objs, err := Build(b.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if m, ok := o.Obj.(metav1.Object); !ok || m.GetLabels()["app.kubernetes.io/part-of"] != "kubelab" {
				t.Errorf("%s: %s lacks app.kubernetes.io/part-of=kubelab", b.name, o)
			}
		}
		for _, p := range Pods(objs) {
			if p.Meta.Labels["app.kubernetes.io/part-of"] != "kubelab" {
				t.Errorf("%s: the pods of %s lack app.kubernetes.io/part-of=kubelab", b.name, p.Owner)
			}
		}
	}
}

// TestBaseHasWhatTheLessonsUse pins the objects the lessons and demos name.
func TestBaseHasWhatTheLessonsUse(t *testing.T) {
	objs := load(t, builds(t)[0])
	var have []string
	for _, o := range objs {
		have = append(have, o.String())
	}
	for _, want := range []string{
		"Namespace/kubelab", "Deployment/imageproc", "Deployment/frontend", "StatefulSet/postgres",
		"Service/imageproc", "Service/imageproc-headless", "Service/frontend", "Service/postgres", "Ingress/frontend",
		"PersistentVolumeClaim/imageproc-blobs", "ConfigMap/frontend-env", "ConfigMap/frontend-live",
		"Secret/frontend", "Secret/postgres", "CronJob/worker-maintain", "Job/worker-", "Job/worker-indexed-",
	} {
		if !slices.Contains(have, want) {
			t.Errorf("missing %s", want)
		}
	}
	// All four probe kinds appear somewhere.
	kinds := map[string]bool{}
	for _, p := range Pods(objs) {
		for _, c := range containers(p.Spec) {
			for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				switch {
				case pr == nil:
				case pr.HTTPGet != nil:
					kinds["httpGet"] = true
				case pr.GRPC != nil:
					kinds["grpc"] = true
				case pr.TCPSocket != nil:
					kinds["tcpSocket"] = true
				case pr.Exec != nil:
					kinds["exec"] = true
				}
			}
		}
	}
	if len(kinds) != 4 {
		t.Errorf("probe kinds used: %v, want httpGet, grpc, tcpSocket and exec", kinds)
	}
}

// TestChecksCatchBrokenManifests breaks the base one way at a time and
// expects the matching check to say so: a check that cannot fail proves
// nothing.
func TestChecksCatchBrokenManifests(t *testing.T) {
	deployment := func(objs []Object, name string) *appsv1.Deployment {
		d, ok := find[*appsv1.Deployment](objs, name)
		if !ok {
			t.Fatalf("no Deployment %s", name)
		}
		return d
	}
	tests := []struct {
		check, want string
		breakIt     func(objs []Object)
	}{
		{"selectors", "does not match its template", func(o []Object) {
			deployment(o, "imageproc").Spec.Template.Labels["app.kubernetes.io/name"] = "imgproc"
		}},
		{"services", "matches no pod template", func(o []Object) {
			s, _ := find[*corev1.Service](o, "frontend")
			s.Spec.Selector = map[string]string{"app.kubernetes.io/name": "fronted"}
		}},
		{"services", "does not expose", func(o []Object) {
			s, _ := find[*corev1.Service](o, "imageproc")
			s.Spec.Ports[0].TargetPort = intstr.FromString("grcp")
		}},
		{"probes", "does not expose", func(o []Object) {
			deployment(o, "frontend").Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port = intstr.FromString("admin")
		}},
		{"probes", "does not expose", func(o []Object) {
			deployment(o, "imageproc").Spec.Template.Spec.Containers[0].ReadinessProbe.GRPC.Port = 50052
		}},
		{"references", `ConfigMap "frontend-lives"`, func(o []Object) {
			deployment(o, "frontend").Spec.Template.Spec.Volumes[0].ConfigMap.Name = "frontend-lives"
		}},
		{"references", `key "databse-url"`, func(o []Object) {
			deployment(o, "imageproc").Spec.Template.Spec.Containers[0].Env[0].ValueFrom.SecretKeyRef.Key = "databse-url"
		}},
		{"references", "PersistentVolumeClaim", func(o []Object) {
			deployment(o, "imageproc").Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName = "blobs"
		}},
		{"pod-security", "runAsNonRoot", func(o []Object) {
			f := false
			deployment(o, "frontend").Spec.Template.Spec.SecurityContext.RunAsNonRoot = &f
		}},
		{"pod-security", "capabilities", func(o []Object) {
			deployment(o, "imageproc").Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Drop = nil
		}},
		{"pod-security", "allowPrivilegeEscalation", func(o []Object) {
			deployment(o, "imageproc").Spec.Template.Spec.InitContainers[0].SecurityContext.AllowPrivilegeEscalation = nil
		}},
		{"resources", "no memory limit", func(o []Object) {
			delete(deployment(o, "frontend").Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceMemory)
		}},
		{"resources", "no cpu request", func(o []Object) {
			deployment(o, "imageproc").Spec.Template.Spec.InitContainers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")}
		}},
		{"images", "no fixed tag", func(o []Object) {
			deployment(o, "imageproc").Spec.Template.Spec.Containers[0].Image = "kubelab/imageproc:latest"
		}},
		{"images", "no fixed tag", func(o []Object) {
			deployment(o, "frontend").Spec.Template.Spec.Containers[0].Image = "localhost:5000/kubelab/frontend"
		}},
		{"grace-periods", "grace period is 10s", func(o []Object) {
			ten := int64(10)
			deployment(o, "frontend").Spec.Template.Spec.TerminationGracePeriodSeconds = &ten
		}},
		{"ingress-body", "default 1m", func(o []Object) {
			ing, _ := find[*networkingv1.Ingress](o, "frontend")
			delete(ing.Annotations, "nginx.ingress.kubernetes.io/proxy-body-size")
		}},
		{"ingress-body", `"20m" is 20971520 bytes`, func(o []Object) {
			ing, _ := find[*networkingv1.Ingress](o, "frontend")
			ing.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"] = "20m"
		}},
		// The hard cap raised without the Ingress: the live upload-limit
		// may now be raised past what nginx lets through.
		{"ingress-body", "uploads need 209780736", func(o []Object) {
			cm, _ := find[*corev1.ConfigMap](o, "frontend-env")
			cm.Data["MAX_UPLOAD_BYTES"] = "209715200"
		}},
		{"ingress-body", "uploads need 104923136", func(o []Object) {
			c := &deployment(o, "frontend").Spec.Template.Spec.Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "MAX_UPLOAD_BYTES", Value: "104857600"})
		}},
		{"ingress-body", "not an nginx size", func(o []Object) {
			ing, _ := find[*networkingv1.Ingress](o, "frontend")
			ing.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"] = "64MiB"
		}},
		// The images have no embedded store: neither imageproc container
		// may start without a database.
		{"database-url", "container migrate runs imageproc migrate from kubelab/imageproc:0.1.0 without DATABASE_URL", func(o []Object) {
			c := &deployment(o, "imageproc").Spec.Template.Spec.InitContainers[0]
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "DATABASE_URL" })
		}},
		{"database-url", "container imageproc runs imageproc serve", func(o []Object) {
			c := &deployment(o, "imageproc").Spec.Template.Spec.Containers[0]
			for i := range c.Env {
				if c.Env[i].Name == "DATABASE_URL" {
					c.Env[i] = corev1.EnvVar{Name: "DATABASE_URL"} // set, but empty: the embedded store
				}
			}
		}},
		{"database-url", "runs imageproc serve", func(o []Object) {
			c := &deployment(o, "imageproc").Spec.Template.Spec.Containers[0]
			c.Args = nil // serve is the default
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "DATABASE_URL" })
		}},
		{"change-cause", "would be shown for every later revision", func(o []Object) {
			deployment(o, "frontend").Annotations = map[string]string{"kubernetes.io/change-cause": "initial deploy of 0.1.0"}
		}},
	}
	// The base has no HorizontalPodAutoscaler: these break the overlays
	// that have one.
	inOverlay := map[string][]struct {
		check, want string
		breakIt     func(objs []Object)
	}{
		"kustomize/overlays/minikube": {
			{"hpa-replicas", "Deployment/imageproc sets replicas: 2", func(o []Object) {
				two := int32(2)
				deployment(o, "imageproc").Spec.Replicas = &two
			}},
		},
		// A DaemonSet's pod template is checked like a Deployment's.
		"kustomize/overlays/minikube-node-canary": {
			{"pod-security", "allowPrivilegeEscalation", func(o []Object) {
				ds, _ := find[*appsv1.DaemonSet](o, "node-canary")
				ds.Spec.Template.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
			}},
			{"selectors", "does not match its template", func(o []Object) {
				ds, _ := find[*appsv1.DaemonSet](o, "node-canary")
				ds.Spec.Template.Labels["app.kubernetes.io/name"] = "canary"
			}},
		},
		"kustomize/overlays/production": {
			{"hpa-replicas", "Deployment/frontend sets replicas: 4", func(o []Object) {
				four := int32(4)
				deployment(o, "frontend").Spec.Replicas = &four
			}},
			// The network policies as they were before the collector: the
			// default deny drops every span.
			{"trace-export", "no NetworkPolicy allows this egress", func(o []Object) {
				np, _ := find[*networkingv1.NetworkPolicy](o, "allow-otlp")
				np.Spec.Egress = nil
			}},
			{"trace-export", "no NetworkPolicy allows this ingress", func(o []Object) {
				np, _ := find[*networkingv1.NetworkPolicy](o, "otel-collector")
				port := intstr.FromInt32(4318)
				np.Spec.Ingress[0].Ports[0].Port = &port
			}},
			// The collector in another namespace, as the component once said.
			{"trace-export", "no Service of that name", func(o []Object) {
				c := &deployment(o, "imageproc").Spec.Template.Spec.Containers[0]
				for i := range c.Env {
					if c.Env[i].Name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
						c.Env[i].Value = "http://otel-collector.observability:4317"
					}
				}
			}},
		},
	}
	type broken struct {
		build
		check, want string
		breakIt     func(objs []Object)
	}
	var all []broken
	base := builds(t)[0]
	for _, tt := range tests {
		all = append(all, broken{base, tt.check, tt.want, tt.breakIt})
	}
	for dir, tests := range inOverlay {
		for _, tt := range tests {
			all = append(all, broken{build{dir: filepath.Join(root, dir)}, tt.check, tt.want, tt.breakIt})
		}
	}
	for _, tt := range all {
		t.Run(tt.check+"/"+tt.want, func(t *testing.T) {
			objs := load(t, tt.build)
			if problems := Checks[tt.check](objs); len(problems) != 0 {
				t.Fatalf("the intact build already fails %s: %v", tt.check, problems)
			}
			tt.breakIt(objs)
			problems := Checks[tt.check](objs)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Fatalf("%s did not catch the break; it said %q", tt.check, problems)
			}
		})
	}
}

func TestDecodeIsStrict(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 3\n",
		"unknown kind":  "apiVersion: v1\nkind: Pdo\nmetadata: {name: x}\n",
		"wrong type":    "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: 80\n",
	} {
		if _, err := Decode([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// TestOverlaysSayWhatTheyMean pins the few values each overlay exists for.
func TestOverlaysSayWhatTheyMean(t *testing.T) {
	env := func(c corev1.Container, name string) string {
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value
			}
		}
		return ""
	}
	dev := load(t, build{dir: filepath.Join(root, "kustomize/overlays/dev")})
	for _, name := range []string{"frontend", "imageproc"} {
		d, _ := find[*appsv1.Deployment](dev, name)
		c := d.Spec.Template.Spec.Containers[0]
		if *d.Spec.Replicas != 1 || env(c, "DRAIN_DELAY") != "0s" || env(c, "SHUTDOWN_TIMEOUT") != "2s" || c.Lifecycle != nil {
			t.Errorf("dev %s: replicas %d, drain %q, shutdown %q, lifecycle %v", name, *d.Spec.Replicas, env(c, "DRAIN_DELAY"), env(c, "SHUTDOWN_TIMEOUT"), c.Lifecycle)
		}
	}
	mk := load(t, build{dir: filepath.Join(root, "kustomize/overlays/minikube")})
	svc, _ := find[*corev1.Service](mk, "frontend")
	if svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.Ports[0].NodePort != 30080 {
		t.Errorf("minikube frontend Service %v %v", svc.Spec.Type, svc.Spec.Ports)
	}
	for _, p := range Pods(mk) {
		for _, c := range containers(p.Spec) {
			if c.ImagePullPolicy != corev1.PullNever && strings.HasPrefix(c.Image, "kubelab/") {
				t.Errorf("minikube %s/%s would try to pull %s", p.Owner, c.Name, c.Image)
			}
		}
	}
	prod := load(t, build{dir: filepath.Join(root, "kustomize/overlays/production")})
	// Production's larger counts are the HPAs' floors: a replicas field
	// would fight the HPAs (the hpa-replicas check).
	for name, floor := range map[string]int32{"frontend": 4, "imageproc": 3} {
		if h, ok := find[*autoscalingv2.HorizontalPodAutoscaler](prod, name); !ok || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != floor {
			t.Errorf("production HPA %s: want minReplicas %d", name, floor)
		}
	}
	for _, p := range Pods(prod) {
		for _, c := range containers(p.Spec) {
			if strings.HasPrefix(c.Image, "kubelab/") {
				t.Errorf("production %s/%s uses the local image %s", p.Owner, c.Name, c.Image)
			}
		}
	}
	// Production spreads imageproc over nodes, which a ReadWriteOnce
	// volume would forbid: its photos are in PostgreSQL (blobs-in-postgres),
	// staged on an emptyDir at /tmp (the root filesystem is read-only), no
	// pod mounts the claim, and the claim is not built. The e2e's version
	// of production, too.
	for _, dir := range []string{"kustomize/overlays/production", "test/e2e/production"} {
		objs := load(t, build{dir: filepath.Join(root, dir)})
		d, _ := find[*appsv1.Deployment](objs, "imageproc")
		c := d.Spec.Template.Spec.Containers[0]
		if env(c, "BLOB_STORE") != "postgres" || env(c, "DATA_DIR") != "" {
			t.Errorf("%s imageproc: BLOB_STORE %q, DATA_DIR %q; want postgres and none", dir, env(c, "BLOB_STORE"), env(c, "DATA_DIR"))
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.MountPath == "/tmp" && slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
				return v.Name == m.Name && v.EmptyDir != nil
			})
		}) {
			t.Errorf("%s imageproc: no emptyDir at /tmp to stage uploads in", dir)
		}
		for _, p := range Pods(objs) {
			for _, v := range p.Spec.Volumes {
				if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "imageproc-blobs" {
					t.Errorf("%s: %s mounts the imageproc-blobs claim", dir, p.Owner)
				}
			}
		}
		if _, ok := find[*corev1.PersistentVolumeClaim](objs, "imageproc-blobs"); ok {
			t.Errorf("%s builds the PersistentVolumeClaim imageproc-blobs", dir)
		}
	}
}
