// Package kube is the little of a Kubernetes client that clusterview
// needs, written out so it can be read: how a program in a pod reaches the
// API server, and how an informer keeps a copy of some objects current.
//
//   - config.go: where a pod finds the API server (KUBERNETES_SERVICE_HOST
//     and _PORT) and its credentials (the ServiceAccount volume: the
//     cluster's CA and a token).
//   - token.go: the token is read again every minute, because the kubelet
//     replaces a bound token before it expires.
//   - client.go, status.go: GET with that token over TLS; a failure is the
//     API server's Status, whose message says what was refused and why.
//   - informer.go: LIST once, then WATCH from the list's resourceVersion,
//     applying ADDED, MODIFIED and DELETED events to a cache; BOOKMARKs move
//     the resourceVersion on, 410 Gone means list again, and any other
//     failure is retried with backoff.go's jittered, bounded waits.
//   - objects.go, meta.go: the kinds clusterview reads, with only the
//     fields it shows, under the API's JSON names.
//
// client-go does all of this for every kind and much more (shared
// caches, indexers, resyncs, protobuf, every verb), and was 21 of this
// binary's 31.6 MB; this does what the live view needs, for seven kinds,
// read-only. kubetest is a fake API server to test it against.
package kube
