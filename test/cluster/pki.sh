#!/usr/bin/env bash
# The test cluster's certificates (openssl, RSA 2048, one year): the
# cluster's CA and the aggregation layer's front-proxy CA, a leaf for each
# component below, a client and a serving certificate for each node's
# kubelet, and the service-account key pair.
# Usage: pki.sh DIR NODE=IP... (the first node runs the API server)
set -euo pipefail
dir=${1:?usage: pki.sh DIR NODE=IP...}
shift
(($#)) || { echo "usage: pki.sh DIR NODE=IP..." >&2; exit 2; }
first=${1%%=*} first_ip=${1#*=}
mkdir -p "$dir" && cd "$dir"
ca() { openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$2" -keyout "$1.key" -out "$1.crt" 2>/dev/null; }
# leaf NAME CA SUBJECT EKU [SAN]
leaf() {
  local ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$4"
  [[ -n ${5:-} ]] && ext+="
subjectAltName=$5"
  openssl req -newkey rsa:2048 -nodes -subj "$3" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 365 \
    -extfile <(echo "$ext") -out "$1.crt" 2>/dev/null
  rm -f "$1.csr"
}
ca ca kubelab-ca
ca front-proxy-ca kubelab-front-proxy-ca
leaf apiserver ca /CN=kube-apiserver serverAuth \
  "IP:$first_ip,IP:10.96.0.1,IP:127.0.0.1,DNS:localhost,DNS:$first,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
leaf apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
leaf admin ca "/O=system:masters/CN=kubernetes-admin" clientAuth
leaf controller-manager ca /CN=system:kube-controller-manager clientAuth
leaf scheduler ca /CN=system:kube-scheduler clientAuth
leaf kube-proxy ca /CN=system:kube-proxy clientAuth
# The Node authorizer and NodeRestriction know a kubelet by its client
# certificate's CN, which must match the name the kubelet registers.
for node in "$@"; do
  name=${node%%=*} ip=${node#*=}
  leaf "kubelet-client-$name" ca "/O=system:nodes/CN=system:node:$name" clientAuth
  leaf "kubelet-server-$name" ca "/CN=$name" serverAuth "IP:$ip,DNS:$name"
done
leaf front-proxy-client front-proxy-ca /CN=front-proxy-client clientAuth
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
chmod 600 ./*.key
