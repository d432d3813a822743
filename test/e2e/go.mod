module github.com/kubelab/kubelab/test/e2e

go 1.26.0
