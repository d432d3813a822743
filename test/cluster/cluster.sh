#!/usr/bin/env bash
# A real Kubernetes of one or more nodes for kubelab's end-to-end tests, on a
# machine with no Docker engine, no registry and no internet (see
# ../shared/CLUSTER.md for the facts this follows). Every component runs as a
# plain process; each node is a network namespace of its own with its own
# containerd, kubelet, kube-proxy, CNI bridge and pod CIDR, cabled to one
# bridge on the host. Teardown leaves the machine as it was.
#
#   cluster.sh build   compile and package everything it runs (cached)
#   cluster.sh up      build (cached) and start $NODES nodes (default 3)
#   cluster.sh down    stop everything and remove every trace
#   cluster.sh import IMAGE...   load podman images into every node
#   cluster.sh postgres-image TAG...   build the PostgreSQL image (postgres/)
#   cluster.sh node-stop NAME    a worker node dies: its kubelet, runtime and
#                                containers are killed, its link goes down
#   cluster.sh node-start NAME   and comes back
#   cluster.sh node-park         taint every worker node NoExecute: the
#                                single node the course starts on
#   cluster.sh node-add          remove that taint from the next parked node,
#                                where a learner runs `minikube node add`
#   cluster.sh node-unpark       remove it from every node
#   cluster.sh node-exec NAME CMD...   run CMD in the node's network namespace
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.33.13}
CACHE=${KUBELAB_CACHE:-$HOME/.cache/kubelab}
LAB=${KUBELAB_LAB:-$CACHE/lab}
RUN=$LAB/run
PKI=$RUN/pki
BIN=$CACHE/kubernetes-$K8S_VERSION/bin
NS=kubelab
NODE_IP=10.200.0.2
HOST_IP=10.200.0.1
NODES=${NODES:-3}
# The taint that parks a node: see node-park.
PARKED=kubelab.dev/parked=true
here=$(cd "$(dirname "$0")" && pwd)
export KUBECONFIG=$RUN/admin.kubeconfig

log() { printf '%s cluster: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
in_ns() { nsenter --net=/run/netns/$NS "$@"; }
kubectl() { "$BIN/kubectl" "$@"; }

# Node I (1-based) is named as `minikube start --nodes N` names its nodes,
# so the lessons' commands that name a node run here unchanged. Node 1 runs
# the control plane too and keeps the namespace and address of the
# single-node cluster.
node_name() { if (($1 == 1)); then echo minikube; else printf 'minikube-m%02d\n' "$1"; fi; }
node_ip() { echo "10.200.0.$(($1 + 1))"; }
node_ns() { if (($1 == 1)); then echo $NS; else printf '%s-m%02d\n' $NS "$1"; fi; }
node_dir() { echo "$RUN/nodes/$(node_name "$1")"; }
# Zones for topology spread: one node a zone, labelled as a cloud would.
node_zone() { local z=(a b c d e f g h i); echo "zone-${z[$1 - 1]}"; }
# node_index NAME prints I for a node the running cluster has.
node_index() {
  local i
  for i in $(seq "$(cat "$RUN/nodes/count" 2>/dev/null || echo 1)"); do
    [[ $(node_name "$i") == "$1" ]] && { echo "$i"; return 0; }
  done
  die "no node $1 in this cluster"
}

# start NETNS NAME CMD... runs a daemon in the network namespace NETNS,
# logging to $RUN/logs/NAME.log; its pid file records the namespace too.
start() {
  local ns=$1 name=$2; shift 2
  mkdir -p "$RUN/logs" "$RUN/pids"
  nsenter --net=/run/netns/"$ns" "$@" >"$RUN/logs/$name.log" 2>&1 &
  echo "$! $ns" >"$RUN/pids/$name"
}

# diagnostics prints what a failed start needs to be understood: the end of
# every component's log and, once the API answers, the pods and events.
diagnostics() {
  local f
  for f in "$RUN"/logs/*.log; do
    [[ -f $f ]] || continue
    printf '\n--- %s (last 25 lines)\n' "$f" >&2
    tail -n 25 "$f" >&2
  done
  if kubectl get --raw /readyz >/dev/null 2>&1; then
    printf '\n--- kubectl get pods -A -o wide\n' >&2; kubectl get pods -A -o wide >&2 || true
    printf '\n--- kubectl get events -A\n' >&2; kubectl get events -A --sort-by=.lastTimestamp 2>&1 | tail -n 30 >&2 || true
    printf '\n--- pods not Ready\n' >&2
    kubectl get pods -A --no-headers 2>/dev/null | awk '$3 !~ /^([0-9]+)\/\1$/ {print $1, $2}' |
      while read -r n p; do kubectl -n "$n" describe pod "$p" 2>&1 | tail -n 25 >&2; done
  fi
}

# wait_for WHAT SECONDS CMD... polls CMD every half second.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      diagnostics
      die "timed out after ${secs}s waiting for $what (logs in $RUN/logs)"
    fi
    sleep 0.5
  done
}

# require checks the host tools the cluster runs on, naming the Debian
# packages that provide any that are missing.
require() {
  local missing=() pair
  for pair in etcd:etcd-server containerd:containerd ctr:containerd runc:runc podman:podman \
              iptables:iptables conntrack:conntrack openssl:openssl busybox:busybox-static \
              nsenter:util-linux curl:curl ip:iproute2 pgrep:procps sysctl:procps; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
  ((${#missing[@]} == 0)) || die "missing tools; install them with: apt-get install -y ${missing[*]}"
}

kubeconfig() { # NAME CERT
  cat >"$RUN/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: kubelab, cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$PKI/ca.crt"}}]
users: [{name: $1, user: {client-certificate: "$PKI/$2.crt", client-key: "$PKI/$2.key"}}]
contexts: [{name: kubelab, context: {cluster: kubelab, user: $1}}]
current-context: kubelab
KC
}

build() {
  local t=$SECONDS
  METRICS_SERVER=$METRICS_SERVER LOCAL_PATH=$LOCAL_PATH "$here/build-kubernetes.sh" "$CACHE"
  # The pause image: a static Go program, no registry.
  if ! podman image exists localhost/pause:3.10; then
    local d; d=$(mktemp -d)
    (cd "$here/images/pause" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "-s -w" -o "$d/pause" pause.go)
    printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$d/Containerfile"
    podman build -q --network=none -t localhost/pause:3.10 "$d" >/dev/null
    rm -rf "$d"
  fi
  log "binaries and images ready ($((SECONDS - t))s)"
}

# network cables every node's namespace to the bridge kl-br, where the host
# has 10.200.0.1; ClusterIPs are routed to node 1 (its kube-proxy answers
# them from the host), and each node's pod CIDR to that node once the
# controller-manager has given it one (routes).
network() {
  ip link add kl-br type bridge
  ip addr add $HOST_IP/24 dev kl-br
  ip link set kl-br up
  local i ns
  for i in $(seq "$NODES"); do
    ns=$(node_ns "$i")
    ip netns add "$ns"
    ip link add "kl-h$i" type veth peer name kl-node
    ip link set kl-node netns "$ns"
    ip link set "kl-h$i" master kl-br up
    nsenter --net=/run/netns/"$ns" ip link set lo up
    nsenter --net=/run/netns/"$ns" ip addr add "$(node_ip "$i")/24" dev kl-node
    nsenter --net=/run/netns/"$ns" ip link set kl-node up
    nsenter --net=/run/netns/"$ns" sysctl -qw net.ipv4.ip_forward=1
  done
  ip route add 10.96.0.0/16 via $NODE_IP
}

# routes sends each node's pod CIDR to that node, from the host and from
# every other node: the "flat pod network" a CNI plugin builds on a real
# cluster, here as plain routes over one layer-2 segment.
routes() {
  local i j cidr
  for j in $(seq "$NODES"); do
    cidr=$(pod_cidr "$(node_name "$j")")
    ip route replace "$cidr" via "$(node_ip "$j")"
    for i in $(seq "$NODES"); do
      ((i == j)) || nsenter --net=/run/netns/"$(node_ns "$i")" ip route replace "$cidr" via "$(node_ip "$j")"
    done
  done
}

configs() {
  mkdir -p "$RUN/etcd"
  kubeconfig admin admin
  kubeconfig controller-manager controller-manager
  kubeconfig scheduler scheduler
  kubeconfig kube-proxy kube-proxy
  echo "nameserver 10.96.0.10" >"$RUN/resolv.conf"
  echo "$NODES" >"$RUN/nodes/count"
  local i
  for i in $(seq "$NODES"); do node_configs "$i"; done
}

# node_configs I writes node I's containerd, kubelet and kube-proxy
# configuration under its own directory: nothing two nodes share but the
# host's CNI plugins and the kube-proxy identity.
node_configs() {
  local name dir ip
  name=$(node_name "$1") dir=$(node_dir "$1") ip=$(node_ip "$1")
  mkdir -p "$dir"/{cni/net.d,cni/ipam,containerd,kubelet/volume-plugins,podlogs}
  kubeconfig "kubelet-$name" "kubelet-client-$name"
  # The node's own cgroup tree, so that two kubelets never manage the same
  # kubepods (cgroup v1, every hierarchy the kubelet checks).
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ -d $h && $h != */unified/ ]] || continue
    mkdir -p "$h/kubelab-$name"
    if [[ -f $h/cpuset.cpus ]]; then
      cat "$h/cpuset.cpus" >"$h/kubelab-$name/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h/kubelab-$name/cpuset.mems"
    fi
  done
  cat >"$dir/containerd.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$dir/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:3.10"
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
  cat >"$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /kubelab-$name
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
clusterDNS: ["10.96.0.10"]
clusterDomain: cluster.local
resolvConf: $RUN/resolv.conf
podLogsDir: $dir/podlogs
volumePluginDir: $dir/kubelet/volume-plugins
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $PKI/ca.crt}}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-server-$name.crt
tlsPrivateKeyFile: $PKI/kubelet-server-$name.key
address: $ip
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
# Faster than minikube's kubelet (1m): a pod's ConfigMap and Secret volumes
# follow an edit within seconds, not a minute and a half, so the e2e tests
# and lessons that wait for one finish sooner. They still allow for
# minikube's delay; none of them measures it.
syncFrequency: 10s
# The node's heartbeat, a Lease renewed every quarter of its duration: 5 s
# here, 10 s by default. With the controller-manager's 20 s grace period
# (default 50 s) a dead node is NotReady four times sooner, and so are the
# tests that kill one; a live node still misses three renewals before that.
nodeLeaseDurationSeconds: 20
YAML
  cat >"$dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $RUN/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $name
clusterCIDR: 10.244.0.0/16
bindAddress: $ip
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
nodePortAddresses: ["primary"]
YAML
}

# cni CIDR DIR writes a node's CNI configuration for the pod CIDR the
# controller-manager gave it; containerd picks it up as it appears, and the
# node turns Ready.
cni() {
  cat >"$2/cni/net.d/10-kubelab.conflist" <<JSON
{"cniVersion":"0.4.0","name":"kubelab","plugins":[
  {"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,"hairpinMode":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"$1","gateway":"${1%.0/24}.1"}]],
           "routes":[{"dst":"0.0.0.0/0"}],"dataDir":"$2/cni/ipam"}},
  {"type":"portmap","capabilities":{"portMappings":true}}]}
JSON
}

core() {
  start $NS etcd etcd --name kubelab --data-dir "$RUN/etcd" --logger=zap \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster kubelab=http://127.0.0.1:2380 --unsafe-no-fsync
  wait_for etcd 30 in_ns curl -sf http://127.0.0.1:2379/health
  start $NS kube-apiserver "$BIN/kube-apiserver" --advertise-address=$NODE_IP --bind-address=0.0.0.0 --secure-port=6443 \
    --etcd-servers=http://127.0.0.1:2379 --service-cluster-ip-range=10.96.0.0/16 \
    --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP,Hostname \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction,PodSecurity --allow-privileged=true \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true --profiling=false
  wait_for "kube-apiserver /readyz" 60 kubectl get --raw /readyz
  start $NS kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$RUN/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$RUN/controller-manager.kubeconfig" --authorization-kubeconfig="$RUN/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --cluster-name=kubelab \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" --use-service-account-credentials=true \
    --allocate-node-cidrs=true --cluster-cidr=10.244.0.0/16 --node-cidr-mask-size=24 --service-cluster-ip-range=10.96.0.0/16 \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --flex-volume-plugin-dir="$RUN/volume-plugins" --profiling=false \
    --node-monitor-grace-period=20s --node-monitor-period=2s
  start $NS kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$RUN/scheduler.kubeconfig" \
    --authentication-kubeconfig="$RUN/scheduler.kubeconfig" --authorization-kubeconfig="$RUN/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false
  # The kubelet changes these host sysctls; teardown puts them back.
  sysctl -n kernel.panic kernel.panic_on_oops vm.overcommit_memory >"$RUN/sysctl.before"
  local i name dir cidr
  for i in $(seq "$NODES"); do node_start "$i"; done
  for i in $(seq "$NODES"); do
    name=$(node_name "$i") dir=$(node_dir "$i")
    wait_for "node $name registered with a pod CIDR" 60 pod_cidr "$name"
    cni "$(pod_cidr "$name")" "$dir"
  done
  routes
  labels
  for i in $(seq "$NODES"); do
    wait_for "node $(node_name "$i") Ready" 120 kubectl wait --for=condition=Ready "node/$(node_name "$i")" --timeout=2s
  done
}

# pod_cidr NODE prints the pod CIDR the controller-manager gave NODE, and
# fails while it has none.
pod_cidr() {
  local cidr
  cidr=$(kubectl get node "$1" -o jsonpath='{.spec.podCIDR}' 2>/dev/null) && [[ -n $cidr ]] && echo "$cidr"
}

# labels marks the nodes as minikube does (the first is the control plane
# and its add-ons' "primary") and puts each in a zone of its own, as a
# cloud's nodes are.
labels() {
  local i
  kubectl label node minikube --overwrite node-role.kubernetes.io/control-plane= minikube.k8s.io/primary=true >/dev/null
  for i in $(seq 2 "$NODES"); do
    kubectl label node "$(node_name "$i")" --overwrite minikube.k8s.io/primary=false >/dev/null
  done
  for i in $(seq "$NODES"); do
    kubectl label node "$(node_name "$i")" --overwrite topology.kubernetes.io/zone="$(node_zone "$i")" >/dev/null
  done
}

# node_start I starts node I's container runtime, kubelet and kube-proxy in
# its namespace (its link up, should node-stop have taken it down).
node_start() {
  local name dir ip ns
  name=$(node_name "$1") dir=$(node_dir "$1") ip=$(node_ip "$1") ns=$(node_ns "$1")
  ip link set "kl-h$1" up
  # What a failed start left running would hold containerd's database.
  stop_pid "kube-proxy-$name" 0
  stop_pid "kubelet-$name" 0
  stop_pid "containerd-$name" 0
  # A socket a killed containerd left behind answers nothing.
  rm -f "$dir/containerd/containerd.sock"
  start "$ns" "containerd-$name" containerd --config "$dir/containerd.toml"
  wait_for "containerd on $name" 30 ctr --address "$dir/containerd/containerd.sock" version
  import_into "$dir" localhost/pause:3.10
  start "$ns" "kubelet-$name" "$BIN/kubelet" --config="$dir/kubelet.yaml" --kubeconfig="$RUN/kubelet-$name.kubeconfig" \
    --node-ip="$ip" --hostname-override="$name" --root-dir="$dir/kubelet" --v=1
  start "$ns" "kube-proxy-$name" "$BIN/kube-proxy" --config="$dir/kube-proxy.yaml"
}

# node_stop I kills node I as a power cut would: the kubelet and
# kube-proxy, every container of its pods, the runtime, then its link.
# Nothing tells the API server; the node controller finds out when the
# node's Lease stops being renewed.
node_stop() {
  local name dir
  name=$(node_name "$1") dir=$(node_dir "$1")
  stop_pid "kubelet-$name" 0
  stop_pid "kube-proxy-$name" 0
  local pids
  pids=$(find /sys/fs/cgroup/pids/"kubelab-$name" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
  [[ -z $pids ]] || kill -9 $pids 2>/dev/null || true
  kill_shims "$dir"
  stop_pid "containerd-$name" 0
  ip link set "kl-h$1" down
}

# kill_shims DIR kills the containerd shims of the runtime under DIR.
kill_shims() {
  local p
  for p in $(pgrep -f containerd-shim-runc-v2 || true); do
    grep -q "$1" "/proc/$p/cmdline" 2>/dev/null && kill -9 "$p" 2>/dev/null || true
  done
}

# import IMAGE... copies podman images into every node's containerd: each
# is saved once and loaded into the nodes side by side.
import() {
  local tmp img i n=0 jobs=()
  tmp=$(mktemp -d)
  for img in "$@"; do
    podman save -o "$tmp/$n.tar" "$img" >/dev/null
    n=$((n + 1))
  done
  for i in $(seq "$(cat "$RUN/nodes/count")"); do
    import_into "$(node_dir "$i")" "$tmp"/*.tar &
    jobs+=($!)
  done
  # Only these: `up` has the cluster's daemons as background jobs too.
  for i in "${jobs[@]}"; do wait "$i" || { rm -rf "$tmp"; die "importing $* failed"; }; done
  rm -rf "$tmp"
}

# import_into NODEDIR IMAGE|TARFILE... loads images into one node's containerd.
import_into() {
  local dir=$1 img; shift
  for img in "$@"; do
    if [[ -f $img ]]; then
      ctr --address "$dir/containerd/containerd.sock" -n k8s.io images import "$img" >/dev/null
    else
      podman save "$img" | ctr --address "$dir/containerd/containerd.sock" -n k8s.io images import - >/dev/null
    fi
  done
}

# The official postgres image's entrypoint, which the PostgreSQL image
# runs unmodified; kept outside the repository, never copied into it.
OFFICIAL_POSTGRES=$(cd "$here/../../.." && pwd)/shared/upstream/postgres-official

# postgres_image TAG... builds the test cluster's PostgreSQL image under
# every TAG: this machine's PostgreSQL 15 under the official entrypoint
# (see postgres/Containerfile), FROM scratch, offline.
postgres_image() {
  (($#)) || die "usage: cluster.sh postgres-image TAG..."
  local d=$CACHE/images/postgres tag
  "$here/postgres/rootfs.sh" "$OFFICIAL_POSTGRES" "$d" >/dev/null
  podman build -q --network=none -t "$1" "$d" >/dev/null
  for tag in "${@:2}"; do podman tag "$1" "$tag"; done
  log "PostgreSQL image: $*"
}

ADDONS=$CACHE/addons

# scratch_image TAG DIR builds DIR (holding rootfs/ and a Containerfile
# body) into a FROM-scratch image, offline: COPY only, no RUN. The image
# carries a hash of DIR's names and contents, and is built again when they
# change: the tag names the upstream version, not how it was built.
scratch_image() {
  local sum
  sum=$(cd "$2" && { find . \( -type f -o -type l \) -printf '%p %l\n' | sort
                    find . -type f -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
  [[ $(podman image inspect -f '{{index .Labels "dev.kubelab.content"}}' "$1" 2>/dev/null) == "$sum" ]] && return 0
  podman build -q --network=none --label "dev.kubelab.content=$sum" -t "$1" -f "$2/Containerfile" "$2" >/dev/null
}

# Versions of the add-ons, each built from the Go module proxy
# (metrics-server and local-path-provisioner by build-kubernetes.sh).
# CoreDNS: the version addons/coredns/go.mod pins.
COREDNS=$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" {print $3}' "$here/addons/coredns/go.mod")
LOCAL_PATH=v0.0.30
METRICS_SERVER=v0.8.0
TRAEFIK=v3.6.12

# go_get PKG@VERSION adds PKG to the throwaway module in the current
# directory, showing only what is not routine.
go_get() {
  go get "$1" 2>&1 | grep -v '^go: \(downloading\|added\|upgraded\)' || true
}

# build_traefik compiles Traefik in a throwaway module: its go.mod carries
# replace directives, which `go install pkg@version` ignores. One more is
# ours: Traefik's ACME client (lego) links about 150 DNS providers' cloud
# SDKs, a third of Traefik's packages, for certificates no cluster here can
# ask for (it reaches no ACME server). The build replaces lego with a copy
# whose provider table is empty, so a DNS challenge here fails with
# "unrecognized DNS provider"; everything else is Traefik's own code.
traefik_bin=$ADDONS/bin/traefik-$TRAEFIK-without-dns-providers
build_traefik() {
  [[ -x $traefik_bin ]] && return 0
  local t=$SECONDS mod=$ADDONS/traefik-module
  rm -rf "$mod" && mkdir -p "$mod"
  cat >"$mod/go.mod" <<MOD
module kubelab/traefikbuild

go 1.24.0

replace (
	github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e
	github.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59
	github.com/mailgun/minheap => github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595
)

exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible
MOD
  (cd "$mod" && export CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod &&
    go_get github.com/traefik/traefik/v3/cmd/traefik@$TRAEFIK
    cp -r "$(go list -m -f '{{.Dir}}' github.com/go-acme/lego/v4)" lego && chmod -R u+w lego
    cat >lego/providers/dns/zz_gen_dns_providers.go <<'GO'
// Package dns is lego's DNS provider table, emptied for kubelab's test
// cluster (test/cluster/cluster.sh, build_traefik).
package dns

import (
	"fmt"

	"github.com/go-acme/lego/v4/challenge"
)

// NewDNSChallengeProviderByName knows no provider.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("unrecognized DNS provider: %s (none is built into this Traefik)", name)
}
GO
    go mod edit -replace github.com/go-acme/lego/v4=./lego
    go build -trimpath -ldflags "-s -w" -o "$traefik_bin" github.com/traefik/traefik/v3/cmd/traefik)
  log "built traefik $TRAEFIK without lego's DNS providers ($((SECONDS - t))s)"
}

# build_coredns compiles addons/coredns: main.go, CoreDNS with only the
# plugins a cluster here may use, in its own module (go.mod and go.sum pin
# CoreDNS and what it needs), copied out of the repository so that the
# build writes nothing into it. The binary's name carries a hash of the
# module's files, so a changed plugin list or version builds anew.
coredns_bin=$ADDONS/bin/coredns-$COREDNS-$(cat "$here"/addons/coredns/{main.go,go.mod,go.sum} | sha256sum | cut -c1-12)
build_coredns() {
  [[ -x $coredns_bin ]] && return 0
  local t=$SECONDS mod=$ADDONS/coredns-module
  rm -rf "$mod" && mkdir -p "$mod"
  cp "$here"/addons/coredns/{main.go,go.mod,go.sum} "$mod/"
  (cd "$mod" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "-s -w" -o "$coredns_bin" .)
  log "built coredns $COREDNS with kubelab's plugin list ($((SECONDS - t))s)"
}

# addon_image TAG BINARY ENTRYPOINT [USER] packages one static binary as
# ENTRYPOINT (a path in the image).
addon_image() {
  local d=$ADDONS/images/${1//[:\/]/_}
  rm -rf "$d" && mkdir -p "$d/rootfs/tmp"
  chmod 1777 "$d/rootfs/tmp"
  cp "$2" "$d/rootfs$3"
  {
    printf 'FROM scratch\nCOPY rootfs/ /\n'
    [[ -n ${4:-} ]] && printf 'USER %s\n' "$4"
    printf 'ENTRYPOINT ["%s"]\n' "$3"
  } >"$d/Containerfile"
  scratch_image "$1" "$d"
}

# The image the README's `kubectl debug` runs beside a distroless container,
# under the name it gives, as a learner's minikube would pull it from Docker
# Hub. This machine's busybox-static (the helper's rootfs) stands in for
# it, with Docker Hub's default command, sh, for `kubectl debug -it`.
DEBUG_IMAGE=docker.io/library/busybox:1.36
debug_image() {
  local d=$ADDONS/images/debug
  rm -rf "$d" && mkdir -p "$d"
  cp -a "$ADDONS/images/busybox/rootfs" "$d/rootfs"
  printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nCMD ["sh"]\n' >"$d/Containerfile"
  scratch_image $DEBUG_IMAGE "$d"
}

# build_addons makes the add-ons' images, compiling CoreDNS and Traefik first
# where they are not built yet.
build_addons() {
  local t=$SECONDS
  build_coredns
  build_traefik
  local d=$ADDONS/images
  rm -rf "$d" && mkdir -p "$d"/{coredns,local-path,busybox}/rootfs
  mkdir -p "$d/coredns/rootfs/etc/coredns" "$d/local-path/rootfs/usr/bin" "$d/busybox/rootfs/bin" "$d/busybox/rootfs/tmp"
  cp "$coredns_bin" "$d/coredns/rootfs/coredns"
  cp "$here/addons/Corefile" "$d/coredns/rootfs/etc/coredns/Corefile"
  printf 'FROM scratch\nCOPY rootfs/ /\nENTRYPOINT ["/coredns"]\nCMD ["-conf", "/etc/coredns/Corefile"]\n' >"$d/coredns/Containerfile"
  scratch_image localhost/coredns:$COREDNS "$d/coredns"
  cp "$ADDONS/bin/local-path-provisioner-$LOCAL_PATH" "$d/local-path/rootfs/usr/bin/local-path-provisioner"
  printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/bin:/bin\n' >"$d/local-path/Containerfile"
  scratch_image localhost/local-path-provisioner:$LOCAL_PATH "$d/local-path"
  # The provisioner's helper pods run sh, mkdir and rm: busybox-static.
  cp "$(command -v busybox)" "$d/busybox/rootfs/bin/busybox"
  for a in $(busybox --list); do [[ $a == busybox ]] || ln -sf busybox "$d/busybox/rootfs/bin/$a"; done
  chmod 1777 "$d/busybox/rootfs/tmp"
  printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\n' >"$d/busybox/Containerfile"
  scratch_image localhost/busybox-helper:1.35 "$d/busybox"
  debug_image
  addon_image localhost/metrics-server:$METRICS_SERVER "$ADDONS/bin/metrics-server-$METRICS_SERVER" /metrics-server 1000:1000
  addon_image localhost/traefik:$TRAEFIK "$traefik_bin" /traefik 65532:65532
  log "add-ons ready ($((SECONDS - t))s)"
}

addons() {
  import localhost/coredns:$COREDNS localhost/local-path-provisioner:$LOCAL_PATH localhost/busybox-helper:1.35 \
    localhost/metrics-server:$METRICS_SERVER localhost/traefik:$TRAEFIK
  import $DEBUG_IMAGE
  # Every add-on but the per-node ones runs on the first node, as on a
  # minikube whose other nodes came later (coredns.yaml and traefik.yaml
  # say so too), so draining or stopping a worker leaves them alone.
  kubectl apply -f "$here/addons/coredns.yaml" >/dev/null
  # local-path-provisioner's own manifest, pointed at local images, a
  # directory under the lab (one for all nodes: each volume's node
  # affinity, not its directory, ties it to the node it was made on),
  # pinned to the first node and renamed to the class the overlays expect.
  mkdir -p "$RUN/local-path"
  sed -e "s#rancher/local-path-provisioner:$LOCAL_PATH#localhost/local-path-provisioner:$LOCAL_PATH#" \
      -e "s#image: busybox#image: localhost/busybox-helper:1.35#" \
      -e "s#/opt/local-path-provisioner#$RUN/local-path#" \
      -e "s#^  name: local-path\$#  name: standard\n  annotations:\n    storageclass.kubernetes.io/is-default-class: \"true\"#" \
      -e "s#^      serviceAccountName: local-path-provisioner-service-account#&\n      nodeSelector: {minikube.k8s.io/primary: \"true\"}#" \
      "$(go env GOMODCACHE)/github.com/rancher/local-path-provisioner@$LOCAL_PATH/deploy/local-path-storage.yaml" \
    | kubectl apply -f - >/dev/null
  # metrics-server's own kustomize base, with the local image, on the
  # first node; the kubelet's serving certificate has no SAN for
  # metrics-server to check, and its readiness delay is shortened (the HPA
  # needs it, nothing else waits).
  kubectl kustomize "$(go env GOMODCACHE)/sigs.k8s.io/metrics-server@$METRICS_SERVER/manifests/base" 2>/dev/null \
    | sed -e "s#image: .*metrics-server.*#image: localhost/metrics-server:$METRICS_SERVER#" \
          -e "s#- --metric-resolution=15s#- --metric-resolution=15s\n        - --kubelet-insecure-tls#" \
          -e "s#initialDelaySeconds: 20#initialDelaySeconds: 2#" \
          -e "s#^        kubernetes.io/os: linux#&\n        minikube.k8s.io/primary: \"true\"#" \
    | kubectl apply -f - >/dev/null
  kubectl apply -f "$here/addons/traefik.yaml" >/dev/null
  wait_for "CoreDNS" 120 kubectl -n kube-system rollout status deployment/coredns --timeout=2s
  wait_for "local-path-provisioner" 120 kubectl -n local-path-storage rollout status deployment/local-path-provisioner --timeout=2s
  wait_for "Traefik" 120 kubectl -n traefik rollout status deployment/traefik --timeout=2s
  wait_for "metrics-server" 180 kubectl -n kube-system rollout status deployment/metrics-server --timeout=2s
  wait_for "the metrics API" 120 kubectl wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=2s
}

up() {
  [[ $(id -u) == 0 ]] || die "run as root (network namespaces, mounts)"
  if [[ -e /run/netns/$NS ]]; then
    running && die "a cluster is already up (cluster.sh down first)"
    # A machine that stopped with the cluster up (a reboot, a killed
    # session) keeps the namespace, mounts and sysctls but no processes.
    log "a stopped cluster left its state behind: cleaning it up first"
    down
  fi
  require
  local t=$SECONDS
  build
  build_addons
  rm -rf "$RUN" && mkdir -p "$RUN"
  local i nodes=()
  for i in $(seq "$NODES"); do nodes+=("$(node_name "$i")=$(node_ip "$i")"); done
  log "pki"; "$here/pki.sh" "$PKI" "${nodes[@]}"
  log "$NODES nodes: ${nodes[*]}, each in a network namespace on the bridge kl-br"; mkdir -p "$RUN/nodes"; network
  configs
  log "control plane; each node's containerd, kubelet and kube-proxy"; core
  log "add-ons: CoreDNS, local-path-provisioner (StorageClass standard), metrics-server, Traefik (IngressClass nginx)"; addons
  log "up in $((SECONDS - t))s: export KUBECONFIG=$KUBECONFIG; $BIN/kubectl get nodes"
}

# alive NAME succeeds when the process NAME's pid file records is still
# running inside the cluster's namespace; a pid the kernel has since given
# to another program does not count, so teardown never signals it.
alive() {
  local f=$RUN/pids/$1 pid netns ino
  [[ -f $f ]] || return 1
  read -r pid netns <"$f"
  ino=$(stat -Lc %i "/run/netns/${netns:-$NS}" 2>/dev/null) || return 1
  [[ $(stat -Lc %i "/proc/$pid/ns/net" 2>/dev/null) == "$ino" ]]
}

# running succeeds when any of the cluster's processes is alive.
running() {
  local f
  for f in "$RUN"/pids/*; do
    alive "${f##*/}" && return 0
  done
  return 1
}

stop_pid() { # NAME [GRACE], no grace: SIGKILL at once
  local f=$RUN/pids/$1 pid
  alive "$1" || { rm -f "$f"; return 0; }
  read -r pid _ <"$f"
  if [[ ${2:-10} == 0 ]]; then kill -9 "$pid" 2>/dev/null || true; rm -f "$f"; return 0; fi
  kill "$pid" 2>/dev/null || { rm -f "$f"; return 0; }
  for _ in $(seq $((${2:-10} * 5))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

down() {
  local t=$SECONDS f
  stop_pid kube-controller-manager 5
  stop_pid kube-scheduler 5
  if alive kube-apiserver; then
    kubectl delete pods -A --all --grace-period=5 --wait --timeout=60s >/dev/null 2>&1 || true
  fi
  for f in "$RUN"/pids/kube-proxy*; do [[ -e $f ]] && stop_pid "${f##*/}" 5; done
  for f in "$RUN"/pids/kubelet*; do [[ -e $f ]] && stop_pid "${f##*/}" 10; done
  kill_shims "$RUN"
  for f in "$RUN"/pids/containerd*; do [[ -e $f ]] && stop_pid "${f##*/}" 10; done
  stop_pid kube-apiserver 10
  stop_pid etcd 10
  # Mounts under the lab and the pods' network namespaces.
  # (No match is no error: down must run to its end after a failed up.)
  { grep -o " $RUN[^ ]*\| /run/netns/cni-[^ ]*" /proc/mounts || true; } | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -f /run/netns/cni-* 2>/dev/null || true
  for f in /run/netns/$NS /run/netns/$NS-m[0-9][0-9]; do
    [[ -e $f ]] && ip netns del "${f##*/}" 2>/dev/null || true
  done
  ip link del kl-br 2>/dev/null || true
  if mountpoint -q /run/netns && [[ -z $(ls -A /run/netns) ]]; then umount /run/netns && rmdir /run/netns; fi
  for f in /sys/fs/cgroup/*/kubelab-* /sys/fs/cgroup/*/kubepods; do
    [[ -d $f ]] && find "$f" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  if [[ -f $RUN/sysctl.before ]]; then
    mapfile -t v <"$RUN/sysctl.before"
    sysctl -qw kernel.panic="${v[0]}" kernel.panic_on_oops="${v[1]}" vm.overcommit_memory="${v[2]}"
  fi
  rm -rf /var/lib/kubelet /var/log/containers /run/containerd /var/lib/cni /usr/libexec/kubernetes
  rm -rf "$RUN/nodes" "$RUN/containerd" "$RUN/kubelet" "$RUN/etcd" "$RUN/local-path"
  log "down in $((SECONDS - t))s"
}

case ${1:-} in
  # Kubernetes and the add-ons build side by side: much of a cold build is
  # module downloads, which overlap with the other's compiling.
  # metrics-server and local-path-provisioner are compiled after
  # Kubernetes, in its module (build-kubernetes.sh); CoreDNS and Traefik
  # beside it.
  build) require; build & k8s=$!; build_coredns; build_traefik; wait $k8s; build_addons ;;
  up) up ;;
  down) down ;;
  import) shift; import "$@" ;;
  postgres-image) shift; postgres_image "$@" ;;
  node-park)
    for i in $(seq 2 "$(cat "$RUN/nodes/count")"); do
      kubectl taint node "$(node_name "$i")" --overwrite $PARKED:NoExecute >/dev/null
    done ;;
  node-unpark)
    for i in $(seq 2 "$(cat "$RUN/nodes/count")"); do
      kubectl taint node "$(node_name "$i")" ${PARKED%%=*}- >/dev/null 2>&1 || true
    done ;;
  node-add)
    for i in $(seq 2 "$(cat "$RUN/nodes/count")"); do
      name=$(node_name "$i")
      if kubectl get node "$name" -o jsonpath='{.spec.taints[*].key}' | grep -qw "${PARKED%%=*}"; then
        kubectl taint node "$name" ${PARKED%%=*}- >/dev/null
        echo "node $name added (unparked)"
        exit 0
      fi
    done
    die "no parked node left to add: cluster.sh up made $(cat "$RUN/nodes/count") (NODES=...)" ;;
  node-stop|node-start)
    i=$(node_index "${2:?usage: cluster.sh $1 NODE}")
    ((i > 1)) || die "$2 runs the control plane: stop a worker node (minikube-m02, ...)"
    if [[ $1 == node-stop ]]; then
      node_stop "$i"; log "node $2 is down: kubelet, runtime and containers killed, link down"
    else
      node_start "$i"
      wait_for "node $2 Ready" 120 kubectl wait --for=condition=Ready "node/$2" --timeout=2s
      log "node $2 is back"
    fi ;;
  # node-exec NODE CMD... runs CMD in the node's network namespace: what
  # that node's kube-proxy wrote (iptables-save, conntrack -L).
  node-exec)
    i=$(node_index "${2:?usage: cluster.sh node-exec NODE CMD...}")
    shift 2
    exec nsenter --net=/run/netns/"$(node_ns "$i")" "$@" ;;
  *) echo "usage: cluster.sh build|up|down|import IMAGE...|postgres-image TAG...|node-stop NODE|node-start NODE|node-exec NODE CMD..." >&2; exit 2 ;;
esac
