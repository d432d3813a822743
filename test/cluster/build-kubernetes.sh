#!/usr/bin/env bash
# Builds the Kubernetes binaries the test cluster runs, from the Go module
# proxy, into $CACHE/kubernetes-$K8S_VERSION/bin (kept between runs: a warm
# cluster-up skips this). Usage: build-kubernetes.sh CACHE_DIR
set -euo pipefail
cache=${1:?usage: build-kubernetes.sh CACHE_DIR}
K8S_VERSION=${K8S_VERSION:-v1.33.13}
staging=v0.${K8S_VERSION#v1.}
out=$cache/kubernetes-$K8S_VERSION
cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
if [[ -x $out/bin/kubectl && -x $out/bin/kube-apiserver ]]; then
  echo "kubernetes $K8S_VERSION: cached in $out/bin"
  exit 0
fi
mod=$out/module
rm -rf "$mod" && mkdir -p "$mod" "$out/bin"
# k8s.io/kubernetes requires its staging modules at v0.0.0 and points them
# at ./staging with replace directives, which do not apply to a dependency:
# this throwaway module replaces them with the published versions.
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
} > "$mod/go.mod"
cd "$mod"
export CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod
pkgs=()
for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
start=$SECONDS
go get "${pkgs[@]/%/@$K8S_VERSION}" 2>&1 | grep -v '^go: \(downloading\|upgraded\|added\)' || true
# The version the binaries report (kubectl version, the node's VERSION).
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
x=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  x+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  x+=" -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.buildDate=2026-01-01T00:00:00Z"
done
go build -trimpath -ldflags "-s -w$x" -o "$out/bin/" "${pkgs[@]}"
echo "kubernetes $K8S_VERSION: built in $((SECONDS - start))s into $out/bin"
