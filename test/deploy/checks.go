package deploy

import (
	"fmt"
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

// Pods returns every pod template in objs.
func Pods(objs []Object) []Pod {
	var pods []Pod
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			pods = append(pods, Pod{o, &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec})
		case *appsv1.StatefulSet:
			pods = append(pods, Pod{o, &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec})
		case *batchv1.Job:
			pods = append(pods, Pod{o, &v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec})
		case *batchv1.CronJob:
			pods = append(pods, Pod{o, &v.Spec.JobTemplate.Spec.Template.ObjectMeta, &v.Spec.JobTemplate.Spec.Template.Spec})
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
