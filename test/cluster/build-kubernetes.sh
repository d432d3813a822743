#!/usr/bin/env bash
# Builds the Kubernetes binaries the test cluster runs, from the Go module
# proxy, into $CACHE/kubernetes-$K8S_VERSION/bin, and the two add-ons made of
# Kubernetes' own libraries, metrics-server and local-path-provisioner, into
# $CACHE/addons/bin (all kept between runs: a warm cluster-up skips this).
# Usage: build-kubernetes.sh CACHE_DIR (METRICS_SERVER and LOCAL_PATH name
# the add-ons' versions).
set -euo pipefail
cache=${1:?usage: build-kubernetes.sh CACHE_DIR}
K8S_VERSION=${K8S_VERSION:-v1.33.13}
METRICS_SERVER=${METRICS_SERVER:?} LOCAL_PATH=${LOCAL_PATH:?}
staging=v0.${K8S_VERSION#v1.}
out=$cache/kubernetes-$K8S_VERSION
cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
metrics_server=$cache/addons/bin/metrics-server-$METRICS_SERVER
local_path=$cache/addons/bin/local-path-provisioner-$LOCAL_PATH
kubernetes_built() { [[ -x $out/bin/kubectl && -x $out/bin/kube-apiserver ]]; }
if kubernetes_built && [[ -x $metrics_server && -x $local_path ]]; then
  echo "kubernetes $K8S_VERSION, metrics-server and local-path-provisioner: cached"
  exit 0
fi
mod=$out/module
export CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod
pkgs=()
for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done

# write_module makes the throwaway module that requires Kubernetes.
# k8s.io/kubernetes requires its staging modules at v0.0.0 and points them
# at ./staging with replace directives, which do not apply to a dependency:
# this module replaces them with the published versions.
write_module() {
  rm -rf "$mod" && mkdir -p "$mod"
  {
    echo "module kubelab/k8sbuild"
    echo "go 1.24.0"
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo "replace ("
    for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
             cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
             cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms \
             kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
             mount-utils pod-security-admission sample-apiserver; do
      echo "  k8s.io/$m => k8s.io/$m $staging"
    done
    echo ")"
  } >"$mod/go.mod"
  (cd "$mod" && go get "${pkgs[@]/%/@$K8S_VERSION}" 2>&1 | grep -v '^go: \(downloading\|upgraded\|added\)' || true)
  # Kubernetes' module as it is, for build_addons to start from.
  cp "$mod/go.mod" "$mod/go.mod.kubernetes" && cp "$mod/go.sum" "$mod/go.sum.kubernetes"
}

build_kubernetes() {
  local start=$SECONDS minor=${K8S_VERSION#v1.} x="" p
  minor=${minor%%.*}
  write_module
  # The version the binaries report (kubectl version, the node's VERSION).
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    x+=" -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  mkdir -p "$out/bin"
  (cd "$mod" && go build -trimpath -ldflags "-s -w$x" -o "$out/bin/" "${pkgs[@]}")
  echo "kubernetes $K8S_VERSION: built in $((SECONDS - start))s into $out/bin"
}

# build_addons compiles metrics-server and local-path-provisioner in
# Kubernetes' module, after Kubernetes, so that the libraries they share
# with it (client-go, apiserver, component-base and what those import, most
# of what the two are made of) come out of the build cache instead of being
# compiled again: a minute instead of a quarter of an hour cold. The build
# cache reuses a package only when its module is selected at the same
# version, and the add-ons' go.mod files would raise several (golang.org/x/*,
# grpc, OpenTelemetry): so each is a copy of its release whose go.mod lists
# nothing, and the module requires, at the versions those go.mod files
# name, only what Kubernetes does not already bring. They then compile
# against Kubernetes' versions of the rest, which `go list -m all` checks
# below; the e2e suite runs them (kubectl top, the HPAs, every PVC).
# modules lists the module graph's dependencies, one "path version" a line.
modules() { go list -m -f '{{if not .Main}}{{.Path}} {{.Version}}{{end}}' all | sort; }

build_addons() {
  local start=$SECONDS before m path copy
  [[ -f $mod/go.mod.kubernetes ]] || write_module
  cd "$mod"
  cp go.mod.kubernetes go.mod && cp go.sum.kubernetes go.sum
  before=$(modules)
  rm -rf src && mkdir src
  for m in sigs.k8s.io/metrics-server@$METRICS_SERVER github.com/rancher/local-path-provisioner@$LOCAL_PATH \
           github.com/prometheus/prometheus@v0.304.2 sigs.k8s.io/sig-storage-lib-external-provisioner/v10@v10.0.1; do
    path=${m%@*} copy=src/${path//\//_}
    cp -r "$(go mod download -json "$m" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" "$copy"
    chmod -R u+w "$copy" && rm -f "$copy/go.sum"
    printf 'module %s\n\ngo 1.24.0\n' "$path" >"$copy/go.mod"
    printf 'require %s %s\nreplace %s => ./%s\n' "$path" "${m#*@}" "$path" "$copy" >>go.mod
  done
  # What the four import that Kubernetes does not bring.
  cat >>go.mod <<'MOD'
require (
	github.com/Sirupsen/logrus v0.11.0
	github.com/grafana/regexp v0.0.0-20240518133315-a468a5bfb3bc
	github.com/miekg/dns v1.1.29
	github.com/urfave/cli v1.19.1
)
MOD
  if changed=$(comm -13 <(modules) <(echo "$before")) && [[ -n $changed ]]; then
    echo "build-kubernetes: the add-ons changed these of Kubernetes' modules, so their packages compile twice:" >&2
    echo "$changed" >&2
  fi
  mkdir -p "$(dirname "$metrics_server")"
  go build -trimpath -ldflags "-s -w" -o "$metrics_server" sigs.k8s.io/metrics-server/cmd/metrics-server
  go build -trimpath -ldflags "-s -w" -o "$local_path" github.com/rancher/local-path-provisioner
  echo "metrics-server $METRICS_SERVER and local-path-provisioner $LOCAL_PATH: built in $((SECONDS - start))s with Kubernetes' libraries"
}

kubernetes_built || build_kubernetes
[[ -x $metrics_server && -x $local_path ]] || build_addons
