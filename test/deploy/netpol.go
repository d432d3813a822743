package deploy

import (
	"fmt"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// CheckTraceExport: a container told to export traces
// (OTEL_EXPORTER_OTLP_ENDPOINT) must name a Service of the build that
// selects a pod, and where the build has NetworkPolicies, they must let
// the spans out of the container's pod and into the collector's. A policy
// that drops them fails nothing: the services drop spans rather than wait,
// so only an empty trace view would show it.
func CheckTraceExport(objs []Object) []string {
	var bad []string
	for _, p := range Pods(objs) {
		for _, c := range containers(p.Spec) {
			endpoint := literalEnv(c, "OTEL_EXPORTER_OTLP_ENDPOINT")
			if endpoint == "" {
				continue
			}
			where := fmt.Sprintf("%s container %s: OTEL_EXPORTER_OTLP_ENDPOINT=%s", p.Owner, c.Name, endpoint)
			u, err := url.Parse(endpoint)
			if err != nil || u.Hostname() == "" || u.Port() == "" {
				bad = append(bad, where+": want http://SERVICE:PORT")
				continue
			}
			svc, ok := find[*corev1.Service](objs, u.Hostname())
			if !ok {
				bad = append(bad, where+": no Service of that name in this build")
				continue
			}
			port, _ := strconv.Atoi(u.Port())
			targets := podsFor(svc, objs)
			if len(targets) == 0 {
				bad = append(bad, where+": the Service selects no pod")
			}
			for _, to := range targets {
				if why := blocked(objs, p.Meta.Labels, to.Meta.Labels, int32(port)); why != "" {
					bad = append(bad, fmt.Sprintf("%s: to %s: %s", where, to.Owner, why))
				}
			}
		}
	}
	return bad
}

// literalEnv is a variable's literal value in c, "" if unset or from a reference.
func literalEnv(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// blocked says why the build's NetworkPolicies drop TCP from a pod labelled
// from to one labelled to on port, or "" if they let it through. Both pods
// are in the build's one namespace: a peer with a namespaceSelector is
// taken to mean another namespace.
func blocked(objs []Object, from, to map[string]string, port int32) string {
	if !allowed(objs, from, to, port, networkingv1.PolicyTypeEgress) {
		return "no NetworkPolicy allows this egress"
	}
	if !allowed(objs, to, from, port, networkingv1.PolicyTypeIngress) {
		return "no NetworkPolicy allows this ingress"
	}
	return ""
}

// allowed applies Kubernetes' rule for one direction: traffic is allowed if
// no policy of that type selects the pod, or if any rule of one that does
// matches the peer and the port.
func allowed(objs []Object, pod, peer map[string]string, port int32, dir networkingv1.PolicyType) bool {
	isolated := false
	for _, o := range objs {
		np, ok := o.Obj.(*networkingv1.NetworkPolicy)
		if !ok || !hasType(np, dir) || !matches(&np.Spec.PodSelector, pod) {
			continue
		}
		isolated = true
		for _, r := range rulesOf(np, dir) {
			if peerMatches(r.peers, peer) && portMatches(r.ports, port) {
				return true
			}
		}
	}
	return !isolated
}

// rule is an ingress or egress rule: whom it lets in or out, on which ports.
type rule struct {
	peers []networkingv1.NetworkPolicyPeer
	ports []networkingv1.NetworkPolicyPort
}

func rulesOf(np *networkingv1.NetworkPolicy, dir networkingv1.PolicyType) []rule {
	var rules []rule
	if dir == networkingv1.PolicyTypeEgress {
		for _, r := range np.Spec.Egress {
			rules = append(rules, rule{r.To, r.Ports})
		}
		return rules
	}
	for _, r := range np.Spec.Ingress {
		rules = append(rules, rule{r.From, r.Ports})
	}
	return rules
}

// hasType: a policy without policyTypes is an Ingress policy, and an
// Egress one too if it has egress rules.
func hasType(np *networkingv1.NetworkPolicy, dir networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return dir == networkingv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		if t == dir {
			return true
		}
	}
	return false
}

// peerMatches: no peers means every peer.
func peerMatches(peers []networkingv1.NetworkPolicyPeer, l map[string]string) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.NamespaceSelector == nil && p.IPBlock == nil && p.PodSelector != nil && matches(p.PodSelector, l) {
			return true
		}
	}
	return false
}

// portMatches: no ports means every port; a named port is not resolved
// here, so it does not match.
func portMatches(ports []networkingv1.NetworkPolicyPort, port int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if proto != corev1.ProtocolTCP {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.IntValue() == int(port) || (p.EndPort != nil && p.Port.IntValue() <= int(port) && int(port) <= int(*p.EndPort)) {
			return true
		}
	}
	return false
}

func matches(sel *metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(l))
}
