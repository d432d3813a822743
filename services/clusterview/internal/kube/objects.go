package kube

import "time"

// The kinds clusterview watches, holding only the fields the live view
// shows, under the API's JSON names (k8s.io/api's types.go files are the
// reference: apps/v1, core/v1, discovery/v1, autoscaling/v2, batch/v1).

// Deployment is an apps/v1 Deployment.
type Deployment struct {
	ObjectMeta `json:"metadata"`
	Spec       struct {
		Replicas *int32 `json:"replicas,omitempty"`
		Paused   bool   `json:"paused,omitempty"`
		Strategy struct {
			Type string `json:"type"` // RollingUpdate or Recreate
		} `json:"strategy"`
	} `json:"spec"`
	Status struct {
		ReadyReplicas   int32       `json:"readyReplicas,omitempty"`
		UpdatedReplicas int32       `json:"updatedReplicas,omitempty"`
		Conditions      []Condition `json:"conditions,omitempty"`
	} `json:"status"`
}

// ReplicaSet is an apps/v1 ReplicaSet.
type ReplicaSet struct {
	ObjectMeta `json:"metadata"`
	Spec       struct {
		Replicas *int32      `json:"replicas,omitempty"`
		Template PodTemplate `json:"template"`
	} `json:"spec"`
	Status struct {
		ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	} `json:"status"`
}

// PodTemplate is the pod a ReplicaSet makes, as far as its containers.
type PodTemplate struct {
	Spec struct {
		Containers []Container `json:"containers"`
	} `json:"spec"`
}

// Container is one container of a pod's spec.
type Container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

// Pod is a v1 Pod.
type Pod struct {
	ObjectMeta `json:"metadata"`
	Spec       struct {
		NodeName string `json:"nodeName,omitempty"`
	} `json:"spec"`
	Status struct {
		Phase             string            `json:"phase,omitempty"` // Pending, Running, Succeeded, Failed
		Conditions        []Condition       `json:"conditions,omitempty"`
		ContainerStatuses []ContainerStatus `json:"containerStatuses,omitempty"`
	} `json:"status"`
}

// ContainerStatus is one container's state in a pod's status.
type ContainerStatus struct {
	Name         string `json:"name"`
	RestartCount int32  `json:"restartCount"`
}

// Event is a v1 Event (core/v1, which kubectl get events lists).
type Event struct {
	ObjectMeta     `json:"metadata"`
	InvolvedObject ObjectReference `json:"involvedObject"`
	Type           string          `json:"type,omitempty"` // Normal or Warning
	Reason         string          `json:"reason,omitempty"`
	Message        string          `json:"message,omitempty"`
	Count          int32           `json:"count,omitempty"`
	// Which of the three times is set depends on who reported the
	// event; "null" decodes as the zero time.
	FirstTimestamp time.Time `json:"firstTimestamp"`
	LastTimestamp  time.Time `json:"lastTimestamp"`
	EventTime      time.Time `json:"eventTime"`
}

// LabelServiceName is the label that names an EndpointSlice's Service.
const LabelServiceName = "kubernetes.io/service-name"

// EndpointSlice is a discovery.k8s.io/v1 EndpointSlice: some of a
// Service's endpoints.
type EndpointSlice struct {
	ObjectMeta `json:"metadata"`
	Endpoints  []Endpoint `json:"endpoints"`
}

// Endpoint is one address of a Service, with the conditions kube-proxy
// reads. An unset condition means ready and serving, not terminating.
type Endpoint struct {
	Addresses  []string `json:"addresses"`
	Conditions struct {
		Ready       *bool `json:"ready,omitempty"`
		Serving     *bool `json:"serving,omitempty"`
		Terminating *bool `json:"terminating,omitempty"`
	} `json:"conditions"`
	TargetRef *ObjectReference `json:"targetRef,omitempty"`
}

// HorizontalPodAutoscaler is an autoscaling/v2 HorizontalPodAutoscaler.
type HorizontalPodAutoscaler struct {
	ObjectMeta `json:"metadata"`
	Spec       struct {
		ScaleTargetRef ObjectReference `json:"scaleTargetRef"`
		MinReplicas    *int32          `json:"minReplicas,omitempty"`
		MaxReplicas    int32           `json:"maxReplicas"`
		Metrics        []MetricSpec    `json:"metrics,omitempty"`
	} `json:"spec"`
	Status struct {
		CurrentReplicas int32          `json:"currentReplicas,omitempty"`
		DesiredReplicas int32          `json:"desiredReplicas"`
		CurrentMetrics  []MetricStatus `json:"currentMetrics,omitempty"`
	} `json:"status"`
}

// MetricSpec is one metric an HPA scales on; only Resource metrics (cpu,
// memory) are read further.
type MetricSpec struct {
	Type     string          `json:"type"` // Resource, Pods, Object, External, ContainerResource
	Resource *ResourceMetric `json:"resource,omitempty"`
}

// ResourceMetric is a Resource metric's target in a spec
// (ResourceMetricSource) or its measurement in a status
// (ResourceMetricStatus): the two share the name, and each has one of
// target and current.
type ResourceMetric struct {
	Name    string      `json:"name"` // cpu, memory
	Target  MetricValue `json:"target"`
	Current MetricValue `json:"current"`
}

// MetricStatus is a metric's last measured value, in the spec's order.
type MetricStatus struct {
	Type     string          `json:"type"`
	Resource *ResourceMetric `json:"resource,omitempty"`
}

// MetricValue is a target or a measurement, as a percentage of the pods'
// requests.
type MetricValue struct {
	AverageUtilization *int32 `json:"averageUtilization,omitempty"`
}

// Job is a batch/v1 Job.
type Job struct {
	ObjectMeta `json:"metadata"`
	Spec       struct {
		Completions *int32 `json:"completions,omitempty"`
	} `json:"spec"`
	Status struct {
		Active     int32       `json:"active,omitempty"`
		Succeeded  int32       `json:"succeeded,omitempty"`
		Failed     int32       `json:"failed,omitempty"`
		Conditions []Condition `json:"conditions,omitempty"`
	} `json:"status"`
}
