package kube

// Resource names a kind of object the way the API's URLs do.
type Resource struct {
	// Group is the API group, "" for the core group (pods, events).
	Group string
	// Version is the group's version: v1, v2.
	Version string
	// Name is the plural the URL and RBAC rules use: deployments.
	Name string
}

// The resources clusterview watches, at the versions it decodes.
var (
	Deployments              = Resource{Group: "apps", Version: "v1", Name: "deployments"}
	ReplicaSets              = Resource{Group: "apps", Version: "v1", Name: "replicasets"}
	Pods                     = Resource{Version: "v1", Name: "pods"}
	Events                   = Resource{Version: "v1", Name: "events"}
	EndpointSlices           = Resource{Group: "discovery.k8s.io", Version: "v1", Name: "endpointslices"}
	HorizontalPodAutoscalers = Resource{Group: "autoscaling", Version: "v2", Name: "horizontalpodautoscalers"}
	Jobs                     = Resource{Group: "batch", Version: "v1", Name: "jobs"}
)

// Path is the URL path of the resource's objects in namespace:
// /api/v1/namespaces/kubelab/pods for the core group,
// /apis/apps/v1/namespaces/kubelab/deployments for the others.
func (r Resource) Path(namespace string) string {
	prefix := "/apis/" + r.Group + "/" + r.Version
	if r.Group == "" {
		prefix = "/api/" + r.Version
	}
	return prefix + "/namespaces/" + namespace + "/" + r.Name
}
