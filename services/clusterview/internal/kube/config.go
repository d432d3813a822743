package kube

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// serviceAccountDir is where the kubelet mounts a pod's ServiceAccount
// credentials (kustomize/components/live-view mounts them into the
// sidecar alone).
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Config says which API server to ask and how to prove who is asking.
type Config struct {
	// Host is the API server's base URL, https://10.96.0.1:443.
	Host string
	// CAFile holds the certificate authority that signed the API server's
	// certificate: the cluster's own, not one a browser would know.
	CAFile string
	// TokenFile holds the ServiceAccount's token. The kubelet replaces it
	// before it expires, so it is read again now and then, never once.
	TokenFile string
	// UserAgent names the caller in the API server's logs and audit
	// events: service/version.
	UserAgent string
}

// ErrNotInCluster says there is no API server to ask: the process is not
// in a pod (make run), or its pod has no ServiceAccount token mounted.
var ErrNotInCluster = errors.New("not running in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")

// InClusterConfig is the configuration every pod is given: the API
// server's address in the environment (the kubelet sets it from the
// default namespace's kubernetes Service), and the token and CA in the
// ServiceAccount volume.
func InClusterConfig(userAgent string) (Config, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return Config{}, ErrNotInCluster
	}
	c := Config{
		Host:      "https://" + net.JoinHostPort(host, port),
		CAFile:    serviceAccountDir + "/ca.crt",
		TokenFile: serviceAccountDir + "/token",
		UserAgent: userAgent,
	}
	// Fail now, with the reason, rather than on every request: a pod
	// whose ServiceAccount token is not mounted has nothing to send.
	if _, err := os.Stat(c.TokenFile); err != nil {
		return Config{}, fmt.Errorf("no ServiceAccount token: %w", err)
	}
	return c, nil
}

// InCluster is a client of the API server of the pod this runs in, or
// why there is none.
func InCluster(userAgent string) (*Client, error) {
	c, err := InClusterConfig(userAgent)
	if err != nil {
		return nil, err
	}
	return NewClient(c)
}
