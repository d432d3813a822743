package deploy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// Pod is a pod template and the object that owns it.
type Pod struct {
	Owner Object
	Meta  *metav1.ObjectMeta
	Spec  *corev1.PodSpec
}

// Pods returns every pod template in objs, and every bare Pod.
func Pods(objs []Object) []Pod {
	var pods []Pod
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			pods = append(pods, Pod{o, &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec})
		case *appsv1.StatefulSet:
			pods = append(pods, Pod{o, &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec})
		case *appsv1.DaemonSet:
			pods = append(pods, Pod{o, &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec})
		case *batchv1.Job:
			pods = append(pods, Pod{o, &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec})
		case *batchv1.CronJob:
			pods = append(pods, Pod{o, &v.Spec.JobTemplate.Spec.Template.ObjectMeta, &v.Spec.JobTemplate.Spec.Template.Spec})
		case *corev1.Pod: // a bare pod, as the lessons make
			pods = append(pods, Pod{o, &v.ObjectMeta, &v.Spec})
		}
	}
	return pods
}

func containers(spec *corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
}

func find[T any](objs []Object, name string) (T, bool) {
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok && o.Name == name {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// A Check returns the problems it finds in one build.
type Check func(objs []Object) []string

// Checks are all of them, by name.
var Checks = map[string]Check{
	"selectors":     CheckSelectors,
	"services":      CheckServices,
	"probes":        CheckProbes,
	"references":    CheckReferences,
	"pod-security":  CheckPodSecurity,
	"resources":     CheckResources,
	"images":        CheckImages,
	"grace-periods": CheckGracePeriods,
	"ingress-body":  CheckIngressBodySize,
	"hpa-replicas":  CheckHPAReplicas,
	"change-cause":  CheckChangeCause,
	"trace-export":  CheckTraceExport,
	"database-url":  CheckDatabaseURL,
}

// CheckSelectors: a workload's selector must match its own pod template,
// or the API server refuses it (and a PDB or HPA selecting nothing is inert).
func CheckSelectors(objs []Object) []string {
	var bad []string
	for _, o := range objs {
		var sel *metav1.LabelSelector
		var tmpl map[string]string
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			sel, tmpl = v.Spec.Selector, v.Spec.Template.Labels
		case *appsv1.StatefulSet:
			sel, tmpl = v.Spec.Selector, v.Spec.Template.Labels
		case *appsv1.DaemonSet:
			sel, tmpl = v.Spec.Selector, v.Spec.Template.Labels
		case *policyv1.PodDisruptionBudget:
			if !selectsAPod(v.Spec.Selector, objs) {
				bad = append(bad, fmt.Sprintf("%s: selector matches no pod template", o))
			}
			continue
		default:
			continue
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || sel == nil || s.Empty() || !s.Matches(labels.Set(tmpl)) {
			bad = append(bad, fmt.Sprintf("%s: selector %v does not match its template labels %v", o, sel, tmpl))
		}
	}
	return bad
}

func selectsAPod(sel *metav1.LabelSelector, objs []Object) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	for _, p := range Pods(objs) {
		if s.Matches(labels.Set(p.Meta.Labels)) {
			return true
		}
	}
	return false
}

// podsFor returns the pod templates a Service selects.
func podsFor(svc *corev1.Service, objs []Object) []Pod {
	var out []Pod
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	for _, p := range Pods(objs) {
		if sel.Matches(labels.Set(p.Meta.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

// portResolves reports whether port names or numbers a container port.
func portResolves(port intstr.IntOrString, cs []corev1.Container) bool {
	for _, c := range cs {
		for _, p := range c.Ports {
			if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
				return true
			}
		}
	}
	return false
}

// CheckServices: every Service (but ExternalName) selects a pod template,
// and each targetPort resolves to a port of every pod it selects.
func CheckServices(objs []Object) []string {
	var bad []string
	for _, o := range objs {
		svc, ok := o.Obj.(*corev1.Service)
		if !ok || svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		pods := podsFor(svc, objs)
		if len(pods) == 0 {
			bad = append(bad, fmt.Sprintf("%s: selector %v matches no pod template", o, svc.Spec.Selector))
			continue
		}
		for _, sp := range svc.Spec.Ports {
			target := sp.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(sp.Port)
			}
			for _, p := range pods {
				if !portResolves(target, p.Spec.Containers) {
					bad = append(bad, fmt.Sprintf("%s: port %q targets %s, which %s does not expose", o, sp.Name, target.String(), p.Owner))
				}
			}
		}
	}
	return bad
}

// CheckProbes: every probe's port resolves to a container port.
func CheckProbes(objs []Object) []string {
	var bad []string
	for _, p := range Pods(objs) {
		for _, c := range containers(p.Spec) {
			for kind, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
				if pr == nil {
					continue
				}
				var port *intstr.IntOrString
				switch {
				case pr.HTTPGet != nil:
					port = &pr.HTTPGet.Port
				case pr.TCPSocket != nil:
					port = &pr.TCPSocket.Port
				case pr.GRPC != nil:
					v := intstr.FromInt32(pr.GRPC.Port)
					port = &v
				}
				if port != nil && !portResolves(*port, []corev1.Container{c}) {
					bad = append(bad, fmt.Sprintf("%s: %s probe of container %s uses port %s, which it does not expose", p.Owner, kind, c.Name, port.String()))
				}
			}
		}
	}
	return bad
}

// CheckReferences: every ConfigMap, Secret, PVC, ServiceAccount and Service
// a manifest names exists in the same build (with the key, where one is named).
func CheckReferences(objs []Object) []string {
	var bad []string
	missing := func(owner fmt.Stringer, what, name string) {
		bad = append(bad, fmt.Sprintf("%s: refers to %s %q, which is not in the build", owner, what, name))
	}
	hasKey := func(kind, name, key string) (found, keyed bool) {
		switch kind {
		case "ConfigMap":
			cm, ok := find[*corev1.ConfigMap](objs, name)
			if !ok {
				return false, false
			}
			_, k := cm.Data[key]
			return true, key == "" || k
		default:
			s, ok := find[*corev1.Secret](objs, name)
			if !ok {
				return false, false
			}
			_, k1 := s.StringData[key]
			_, k2 := s.Data[key]
			return true, key == "" || k1 || k2
		}
	}
	ref := func(owner fmt.Stringer, kind, name, key string, optional *bool) {
		if optional != nil && *optional {
			return
		}
		found, keyed := hasKey(kind, name, key)
		switch {
		case !found:
			missing(owner, kind, name)
		case !keyed:
			bad = append(bad, fmt.Sprintf("%s: refers to key %q of %s %q, which has no such key", owner, key, kind, name))
		}
	}
	for _, p := range Pods(objs) {
		if sa := p.Spec.ServiceAccountName; sa != "" && sa != "default" {
			if _, ok := find[*corev1.ServiceAccount](objs, sa); !ok {
				missing(p.Owner, "ServiceAccount", sa)
			}
		}
		for _, v := range p.Spec.Volumes {
			switch {
			case v.ConfigMap != nil:
				ref(p.Owner, "ConfigMap", v.ConfigMap.Name, "", v.ConfigMap.Optional)
			case v.Secret != nil:
				ref(p.Owner, "Secret", v.Secret.SecretName, "", v.Secret.Optional)
				for _, it := range v.Secret.Items {
					ref(p.Owner, "Secret", v.Secret.SecretName, it.Key, v.Secret.Optional)
				}
			case v.PersistentVolumeClaim != nil:
				if _, ok := find[*corev1.PersistentVolumeClaim](objs, v.PersistentVolumeClaim.ClaimName); !ok {
					missing(p.Owner, "PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName)
				}
			}
		}
		for _, c := range containers(p.Spec) {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					ref(p.Owner, "ConfigMap", ef.ConfigMapRef.Name, "", ef.ConfigMapRef.Optional)
				}
				if ef.SecretRef != nil {
					ref(p.Owner, "Secret", ef.SecretRef.Name, "", ef.SecretRef.Optional)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					ref(p.Owner, "ConfigMap", r.Name, r.Key, r.Optional)
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					ref(p.Owner, "Secret", r.Name, r.Key, r.Optional)
				}
			}
		}
	}
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.StatefulSet:
			if _, ok := find[*corev1.Service](objs, v.Spec.ServiceName); !ok {
				missing(o, "Service", v.Spec.ServiceName)
			}
		case *networkingv1.Ingress:
			for _, rule := range v.Spec.Rules {
				for _, path := range rule.HTTP.Paths {
					b := path.Backend.Service
					svc, ok := find[*corev1.Service](objs, b.Name)
					if !ok {
						missing(o, "Service", b.Name)
						continue
					}
					if !servicePort(svc, b.Port) {
						bad = append(bad, fmt.Sprintf("%s: Service %q has no port %v", o, b.Name, b.Port))
					}
				}
			}
			for _, tls := range v.Spec.TLS {
				ref(o, "Secret", tls.SecretName, "", nil)
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			t := v.Spec.ScaleTargetRef
			if _, ok := find[*appsv1.Deployment](objs, t.Name); !ok || t.Kind != "Deployment" {
				missing(o, t.Kind, t.Name)
			}
		}
	}
	return bad
}

func servicePort(svc *corev1.Service, port networkingv1.ServiceBackendPort) bool {
	for _, p := range svc.Spec.Ports {
		if (port.Name != "" && p.Name == port.Name) || (port.Name == "" && p.Port == port.Number) {
			return true
		}
	}
	return false
}

// CheckPodSecurity evaluates every pod template against the "restricted"
// Pod Security Standard with the admission controller's own policy code.
func CheckPodSecurity(objs []Object) []string {
	eval, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		return []string{err.Error()}
	}
	var bad []string
	level := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	for _, p := range Pods(objs) {
		for _, r := range eval.EvaluatePod(level, p.Meta, p.Spec) {
			if !r.Allowed {
				bad = append(bad, fmt.Sprintf("%s: violates restricted: %s (%s)", p.Owner, r.ForbiddenReason, r.ForbiddenDetail))
			}
		}
	}
	return bad
}

// CheckResources: every container states requests and limits for CPU and
// memory, so the scheduler can place it and the HPA can compute usage.
func CheckResources(objs []Object) []string {
	var bad []string
	for _, p := range Pods(objs) {
		for _, c := range containers(p.Spec) {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[r]; !ok {
					bad = append(bad, fmt.Sprintf("%s: container %s has no %s request", p.Owner, c.Name, r))
				}
				if _, ok := c.Resources.Limits[r]; !ok {
					bad = append(bad, fmt.Sprintf("%s: container %s has no %s limit", p.Owner, c.Name, r))
				}
			}
		}
	}
	return bad
}

// CheckImages: every image names a tag (or digest) other than latest, so a
// rollout and a rollback mean something.
func CheckImages(objs []Object) []string {
	var bad []string
	for _, p := range Pods(objs) {
		for _, c := range containers(p.Spec) {
			name := c.Image
			if i := strings.LastIndex(name, "/"); i >= 0 {
				name = name[i+1:]
			}
			_, tag, tagged := strings.Cut(name, ":")
			if !strings.Contains(c.Image, "@sha256:") && (!tagged || tag == "latest") {
				bad = append(bad, fmt.Sprintf("%s: container %s image %q has no fixed tag", p.Owner, c.Name, c.Image))
			}
		}
	}
	return bad
}

// CheckGracePeriods: the kubelet's SIGKILL comes terminationGracePeriodSeconds
// after the preStop hook starts, so for kubelab's services the grace period
// must cover the preStop sleep, DRAIN_DELAY and SHUTDOWN_TIMEOUT (their
// defaults, 5s and 10s, where the manifest does not set them), and for the
// worker its FINISH_TIMEOUT.
func CheckGracePeriods(objs []Object) []string {
	var bad []string
	for _, p := range Pods(objs) {
		grace := 30 * time.Second
		if p.Spec.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*p.Spec.TerminationGracePeriodSeconds) * time.Second
		}
		for _, c := range p.Spec.Containers {
			var drain, shutdown time.Duration
			switch c.Name {
			case "imageproc", "frontend":
				drain, shutdown = envDuration(c, "DRAIN_DELAY", 5*time.Second), envDuration(c, "SHUTDOWN_TIMEOUT", 10*time.Second)
			case "worker":
				shutdown = envDuration(c, "FINISH_TIMEOUT", 20*time.Second)
			default:
				continue // not a kubelab service with a drain to respect
			}
			var preStop time.Duration
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
			if need := preStop + drain + shutdown; grace <= need {
				bad = append(bad, fmt.Sprintf("%s: container %s needs %v to stop (preStop %v + drain %v + shutdown %v) but the grace period is %v",
					p.Owner, c.Name, need, preStop, drain, shutdown, grace))
			}
		}
	}
	return bad
}

func envDuration(c corev1.Container, name string, def time.Duration) time.Duration {
	for _, e := range c.Env {
		if e.Name == name {
			if d, err := time.ParseDuration(e.Value); err == nil {
				return d
			}
		}
	}
	return def
}

// multipartSlack is what the frontend admits around the photo itself in a
// multipart body (services/frontend/internal/web: multipartSlack).
const multipartSlack = 64 << 10

// defaultMaxUpload is the frontend's MAX_UPLOAD_BYTES when nothing sets it.
const defaultMaxUpload = 50 << 20

// CheckIngressBodySize: ingress-nginx refuses a request body above its
// proxy-body-size (1m unless the Ingress says otherwise) with a 413 of its
// own, before the frontend sees a byte. Every Ingress routing to the
// frontend must admit the largest upload the frontend can be set to take
// without a restart: MAX_UPLOAD_BYTES (the live upload-limit may be raised
// up to it with a ConfigMap edit), plus the multipart framing.
func CheckIngressBodySize(objs []Object) []string {
	const key = "nginx.ingress.kubernetes.io/proxy-body-size"
	var bad []string
	for _, o := range objs {
		ing, ok := o.Obj.(*networkingv1.Ingress)
		if !ok {
			continue
		}
		var need int64
		for _, svc := range ingressServices(ing) {
			s, ok := find[*corev1.Service](objs, svc)
			if !ok {
				continue // CheckReferences reports it
			}
			for _, p := range podsFor(s, objs) {
				for _, c := range p.Spec.Containers {
					if c.Name != "frontend" {
						continue
					}
					limit, err := maxUpload(c, objs)
					if err != nil {
						bad = append(bad, fmt.Sprintf("%s: %v", p.Owner, err))
						continue
					}
					need = max(need, limit+multipartSlack)
				}
			}
		}
		if need == 0 {
			continue // routes to no upload
		}
		value, set := ing.Annotations[key]
		if !set {
			value = "1m"
		}
		size, err := ParseNginxSize(value)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %s %q: %v", o, key, value, err))
		case size == 0: // nginx: 0 disables the check
		case size < need && !set:
			bad = append(bad, fmt.Sprintf("%s: no %s annotation, so ingress-nginx refuses bodies over its default 1m; uploads need %d bytes (MAX_UPLOAD_BYTES plus multipart framing)", o, key, need))
		case size < need:
			bad = append(bad, fmt.Sprintf("%s: %s %q is %d bytes; uploads need %d (MAX_UPLOAD_BYTES plus multipart framing)", o, key, value, size, need))
		}
	}
	return bad
}

// ingressServices lists the Services an Ingress sends requests to.
func ingressServices(ing *networkingv1.Ingress) []string {
	var out []string
	if b := ing.Spec.DefaultBackend; b != nil && b.Service != nil {
		out = append(out, b.Service.Name)
	}
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, path := range rule.HTTP.Paths {
			if path.Backend.Service != nil {
				out = append(out, path.Backend.Service.Name)
			}
		}
	}
	return out
}

// maxUpload is the frontend container's MAX_UPLOAD_BYTES as the kubelet
// would give it: env wins over envFrom, a later envFrom over an earlier one.
func maxUpload(c corev1.Container, objs []Object) (int64, error) {
	const name = "MAX_UPLOAD_BYTES"
	value, set := "", false
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		if cm, ok := find[*corev1.ConfigMap](objs, ef.ConfigMapRef.Name); ok {
			if v, ok := cm.Data[strings.TrimPrefix(name, ef.Prefix)]; ok && strings.HasPrefix(name, ef.Prefix) {
				value, set = v, true
			}
		}
	}
	for _, e := range c.Env {
		if e.Name != name {
			continue
		}
		switch {
		case e.ValueFrom == nil:
			value, set = e.Value, true
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			if cm, ok := find[*corev1.ConfigMap](objs, r.Name); ok {
				value, set = cm.Data[r.Key], true
			}
		}
	}
	if !set {
		return defaultMaxUpload, nil
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("container %s: %s=%q is not a positive byte count", c.Name, name, value)
	}
	return n, nil
}

// ParseNginxSize reads a size as nginx's client_max_body_size does: a
// number of bytes with an optional k, m or g suffix (either case), each
// 1024 times the one before. "0" means no limit.
func ParseNginxSize(v string) (int64, error) {
	num, mult := v, int64(1)
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'k', 'K':
			num, mult = v[:n-1], 1<<10
		case 'm', 'M':
			num, mult = v[:n-1], 1<<20
		case 'g', 'G':
			num, mult = v[:n-1], 1<<30
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || strings.HasPrefix(num, "+") || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not an nginx size like 512k, 50m or 1g", v)
	}
	return n * mult, nil
}

// CheckHPAReplicas: a HorizontalPodAutoscaler owns its target's replica
// count. A replicas field in the target's YAML fights it: every kubectl
// apply sets the count back to the manifest's until the HPA's next sync.
func CheckHPAReplicas(objs []Object) []string {
	var bad []string
	for _, o := range objs {
		hpa, ok := o.Obj.(*autoscalingv2.HorizontalPodAutoscaler)
		if !ok {
			continue
		}
		t := hpa.Spec.ScaleTargetRef
		var replicas *int32
		switch t.Kind {
		case "Deployment":
			if d, ok := find[*appsv1.Deployment](objs, t.Name); ok {
				replicas = d.Spec.Replicas
			}
		case "StatefulSet":
			if s, ok := find[*appsv1.StatefulSet](objs, t.Name); ok {
				replicas = s.Spec.Replicas
			}
		}
		if replicas != nil {
			bad = append(bad, fmt.Sprintf("%s/%s sets replicas: %d, but %s owns its replica count: every kubectl apply would reset what the HPA chose (set the HPA's minReplicas instead)",
				t.Kind, t.Name, *replicas, o))
		}
	}
	return bad
}

// CheckChangeCause: the Deployment controller copies a Deployment's
// annotations to each new ReplicaSet, so a kubernetes.io/change-cause
// written in the YAML labels every later revision in `rollout history`,
// whatever changed it. It is set with kubectl annotate after each change.
func CheckChangeCause(objs []Object) []string {
	const key = "kubernetes.io/change-cause"
	var bad []string
	for _, o := range objs {
		var meta *metav1.ObjectMeta
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			meta = &v.ObjectMeta
		case *appsv1.StatefulSet:
			meta = &v.ObjectMeta
		default:
			continue
		}
		if cause, ok := meta.Annotations[key]; ok {
			bad = append(bad, fmt.Sprintf("%s: %s %q in the manifest would be shown for every later revision; annotate after each change instead", o, key, cause))
		}
	}
	return bad
}
