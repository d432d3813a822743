// Command coredns is CoreDNS with the plugins a minikube Corefile names and
// a few a learner may add, built the way CoreDNS documents for a custom
// plugin set: coremain plus the chosen plugins, in the order of CoreDNS's
// own plugin.cfg. The stock binary also compiles the cloud DNS providers
// (Route 53, Azure, Cloud DNS), etcd, Nomad and Datadog tracing, which a
// cluster here never uses and which cost the cold test-cluster build
// minutes (test/cluster/README.md). It is its own module, outside
// kubelab's: go.mod pins the CoreDNS version, and cluster.sh builds a copy.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/any"
	_ "github.com/coredns/coredns/plugin/autopath"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/bufsize"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/cancel"
	_ "github.com/coredns/coredns/plugin/chaos"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/k8s_external"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/local"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metadata"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/minimal"
	_ "github.com/coredns/coredns/plugin/pprof"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/template"
	_ "github.com/coredns/coredns/plugin/timeouts"
	_ "github.com/coredns/coredns/plugin/transfer"
	_ "github.com/coredns/coredns/plugin/whoami"
)

// The plugins' order within a server block, a subsequence of CoreDNS's
// plugin.cfg: a plugin sees a query after every plugin listed above it.
func init() {
	dnsserver.Directives = []string{
		"metadata", "cancel", "timeouts", "reload", "bufsize", "bind", "debug", "ready",
		"health", "pprof", "prometheus", "errors", "log", "local", "any", "chaos", "loadbalance",
		"rewrite", "autopath", "cache", "minimal", "template", "transfer", "hosts",
		"k8s_external", "kubernetes", "file", "loop", "forward", "whoami",
	}
}

func main() { coremain.Run() }
