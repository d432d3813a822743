module github.com/kubelab/kubelab/proto

go 1.26
