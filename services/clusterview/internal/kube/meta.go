package kube

import "time"

// ObjectMeta is the metadata every object has, as far as clusterview
// reads it (metav1.ObjectMeta has many more fields; JSON decoding skips
// what a struct does not name). Each kind embeds it under "metadata", so
// pod.Name reads as it does with client-go's types.
type ObjectMeta struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	UID       string `json:"uid,omitempty"`
	// ResourceVersion is where this version of the object sits in the
	// API server's history: a watch resumes from one.
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	OwnerReferences   []OwnerReference  `json:"ownerReferences,omitempty"`
	CreationTimestamp time.Time         `json:"creationTimestamp"`
	// DeletionTimestamp is set once the object is being deleted: a pod
	// shown as Terminating.
	DeletionTimestamp *time.Time `json:"deletionTimestamp,omitempty"`
}

// OwnerReference names an object's owner: a pod's ReplicaSet, a
// ReplicaSet's Deployment.
type OwnerReference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	// Controller marks the one owner that manages the object.
	Controller *bool `json:"controller,omitempty"`
}

// GetName is the object's name, its key in an Informer.
func (m ObjectMeta) GetName() string { return m.Name }

// GetResourceVersion is the object's version.
func (m ObjectMeta) GetResourceVersion() string { return m.ResourceVersion }

// ControllerOf names the controller of kind that owns the object, or "".
func (m ObjectMeta) ControllerOf(kind string) string {
	for _, ref := range m.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			if ref.Kind == kind {
				return ref.Name
			}
			return ""
		}
	}
	return ""
}

// Object is what an Informer needs of every kind it holds.
type Object interface {
	GetName() string
	GetResourceVersion() string
}

// ObjectReference points at another object: an event's subject, an
// endpoint's pod.
type ObjectReference struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// Condition is one entry of an object's status.conditions: a type, True
// or False, and why.
type Condition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}
