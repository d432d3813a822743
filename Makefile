# kubelab — every workflow is a target here; `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Pinned tool versions, installed by `make tools` into GOBIN.
BUF_VERSION           := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GRPC_VERSION := v1.6.2
GOLANGCI_LINT_VERSION := v2.15.0

GOBIN ?= $(shell go env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/kubelab/kubelab/services/platform/build.Version=$(VERSION) \
            -X github.com/kubelab/kubelab/services/platform/build.Revision=$(REVISION)

SERVICES := imageproc frontend loadgen worker
PACKAGES := ./proto/... ./services/platform/... ./services/imageproc/... ./services/frontend/... ./services/loadgen/... ./services/worker/... ./test/deploy/...
DATA     := .data

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## compile every service into bin/
	@mkdir -p bin
	@for s in $(SERVICES); do CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/$$s ./services/$$s; done
	@echo "built: $(addprefix bin/,$(SERVICES)) ($(VERSION))"

.PHONY: run
run: build ## run imageproc and the frontend locally on the embedded store (no database, no cluster)
	@mkdir -p $(DATA)/imageproc $(DATA)/frontend/config $(DATA)/frontend/secret
	@test -e $(DATA)/frontend/config/title || echo "kubelab photo lab (local)" > $(DATA)/frontend/config/title
	@test -e $(DATA)/frontend/secret/admin-token || echo "local-admin-token" > $(DATA)/frontend/secret/admin-token
	@echo "imageproc: gRPC on 127.0.0.1:50051, probes and /metrics on http://127.0.0.1:9090"
	@echo "frontend:  open http://127.0.0.1:8080  (demo controls token: $$(cat $(DATA)/frontend/secret/admin-token))"
	@echo "  live settings: edit files in $(DATA)/frontend/config (title, banner, accent-color, upload-limit, features)"
	@echo "  Ctrl-C stops both"
	@trap 'kill 0' EXIT; \
	DATA_DIR=$(DATA)/imageproc GRPC_ADDR=127.0.0.1:50051 ADMIN_ADDR=127.0.0.1:9090 \
	  DATABASE_URL= DRAIN_DELAY=0s LOG_LEVEL=info ./bin/imageproc serve & \
	HTTP_ADDR=127.0.0.1:8080 IMAGEPROC_ADDR=dns:///127.0.0.1:50051 DRAIN_DELAY=0s \
	  CONFIG_DIR=$(DATA)/frontend/config SECRET_DIR=$(DATA)/frontend/secret ./bin/frontend & \
	wait -n

IMAGE_PREFIX ?= localhost/kubelab-
IMAGE_TAG    ?= $(VERSION)
PODMAN       ?= podman

.PHONY: rootfs
rootfs: ## the runtime files the prebuilt images copy: users and the host's CA bundle
	@rm -rf docker/rootfs && mkdir -p docker/rootfs/etc/ssl/certs
	@printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > docker/rootfs/etc/passwd
	@printf 'root:x:0:\nnonroot:x:65532:\n' > docker/rootfs/etc/group
	@cp /etc/ssl/certs/ca-certificates.crt docker/rootfs/etc/ssl/certs/

.PHONY: images
images: build rootfs ## package every service, and this machine's PostgreSQL, as images (podman, offline)
	@for s in $(SERVICES); do \
	  $(PODMAN) build -q --network=none -f docker/Dockerfile --target prebuilt \
	    --build-arg SERVICE=$$s --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	    -t $(IMAGE_PREFIX)$$s:$(IMAGE_TAG) . >/dev/null; \
	done
	@docker/postgres/rootfs.sh docker/postgres/rootfs >/dev/null
	@$(PODMAN) build -q --network=none -f docker/postgres/Containerfile -t $(IMAGE_PREFIX)postgres:15-debian docker/postgres >/dev/null
	@$(PODMAN) images --filter reference='$(IMAGE_PREFIX)*' --format '{{.Repository}}:{{.Tag}}  {{.Size}}'

KUBECTL   ?= kubectl
NAMESPACE := kubelab
OVERLAY   ?= kustomize/overlays/minikube
# The version the rollout demo moves to; any tag you have built.
NEW_TAG   ?= 0.2.0

.PHONY: images-minikube
images-minikube: ## build every image inside minikube (compiles in the image: the Dockerfile's "image" target)
	@for s in $(SERVICES); do \
	  minikube image build -f docker/Dockerfile --build-opt=target=image --build-opt=build-arg=SERVICE=$$s \
	    --build-opt=build-arg=VERSION=0.1.0 -t kubelab/$$s:0.1.0 . ; \
	done

.PHONY: deploy-minikube
deploy-minikube: ## apply the minikube overlay and wait for the rollout
	$(KUBECTL) apply -k $(OVERLAY)
	$(KUBECTL) -n $(NAMESPACE) rollout status statefulset/postgres --timeout=180s
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/imageproc --timeout=180s
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/frontend --timeout=180s
	@echo "open: minikube service -n $(NAMESPACE) frontend --url   (or http://kubelab.local with the ingress addon)"

.PHONY: undeploy
undeploy: ## delete everything kubelab deployed, its volumes included
	$(KUBECTL) delete -k $(OVERLAY) --ignore-not-found
	$(KUBECTL) -n $(NAMESPACE) delete pvc --all --ignore-not-found 2>/dev/null || true

.PHONY: demo-scale
demo-scale: ## scale imageproc 2 -> 5 -> 2 and watch the frontend spread its calls
	@echo "watch: kubectl -n $(NAMESPACE) get pods -l app.kubernetes.io/name=imageproc -w"
	@echo "and the 'imageproc:' column of loadgen: every new pod takes a share within MAX_CONNECTION_AGE (30s)"
	@# With an HorizontalPodAutoscaler (the minikube overlay has one), the HPA
	@# owns the replica count and would undo kubectl scale: move its floor.
	@if $(KUBECTL) -n $(NAMESPACE) get hpa imageproc >/dev/null 2>&1; then \
	  echo "an HPA manages imageproc: scaling by its minReplicas"; \
	  $(KUBECTL) -n $(NAMESPACE) patch hpa imageproc -p '{"spec":{"minReplicas":5}}'; \
	  $(KUBECTL) -n $(NAMESPACE) wait deployment/imageproc --for=jsonpath='{.spec.replicas}'=5 --timeout=60s; \
	else \
	  $(KUBECTL) -n $(NAMESPACE) scale deployment/imageproc --replicas=5; \
	fi
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/imageproc --timeout=180s
	sleep 40
	@if $(KUBECTL) -n $(NAMESPACE) get hpa imageproc >/dev/null 2>&1; then \
	  $(KUBECTL) -n $(NAMESPACE) patch hpa imageproc -p '{"spec":{"minReplicas":2}}'; \
	  echo "the HPA scales back to 2 after its scale-down stabilization window (60s)"; \
	else \
	  $(KUBECTL) -n $(NAMESPACE) scale deployment/imageproc --replicas=2; \
	  $(KUBECTL) -n $(NAMESPACE) rollout status deployment/imageproc --timeout=180s; \
	fi

.PHONY: demo-rollout
demo-rollout: ## roll the frontend to kubelab/frontend:$(NEW_TAG) while you watch the versions change
	@echo "watch: kubectl -n $(NAMESPACE) rollout status deployment/frontend, and loadgen's 'v:' column"
	@echo "  (run loadgen first: ./bin/loadgen --target http://\$$(minikube ip):30080 --duration 120s)"
	$(KUBECTL) -n $(NAMESPACE) set image deployment/frontend frontend=kubelab/frontend:$(NEW_TAG)
	@# After set image: the Deployment copies change-cause to its newest
	@# ReplicaSet, so annotating first would label the old revision too.
	$(KUBECTL) -n $(NAMESPACE) annotate deployment/frontend kubernetes.io/change-cause="set image kubelab/frontend:$(NEW_TAG)" --overwrite
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/frontend --timeout=300s
	$(KUBECTL) -n $(NAMESPACE) rollout history deployment/frontend

.PHONY: demo-rollback
demo-rollback: ## undo the last frontend rollout
	@echo "watch: the page colour returns to the previous version's, pod by pod"
	$(KUBECTL) -n $(NAMESPACE) rollout undo deployment/frontend
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/frontend --timeout=300s
	$(KUBECTL) -n $(NAMESPACE) rollout history deployment/frontend

CLUSTER    := test/cluster/cluster.sh
CACHE      := $(HOME)/.cache/kubelab
CLUSTER_ENV := KUBECONFIG=$(CACHE)/lab/run/admin.kubeconfig PATH=$(CACHE)/kubernetes-v1.33.13/bin:$$PATH
# Two versions of every service, for the rollout and rollback tests.
E2E_VERSIONS := 0.1.0 0.2.0
E2E_IMAGES := $(foreach v,$(E2E_VERSIONS),$(foreach s,$(SERVICES),$(IMAGE_PREFIX)$(s):$(v))) $(IMAGE_PREFIX)postgres:15-debian
# The same images under the names the manifests use, as `minikube image
# load` would give them, so the minikube overlay and the demo-* targets run
# on the test cluster as written. PostgreSQL is this machine's own build.
PG_IMAGE   := $(shell sed -n 's/^ *image: \(postgres:.*\)/\1/p' manifests/postgres/statefulset.yaml)
MINIKUBE_IMAGES := $(foreach v,$(E2E_VERSIONS),$(foreach s,$(SERVICES),docker.io/kubelab/$(s):$(v))) docker.io/library/$(PG_IMAGE)

.PHONY: cluster-build
cluster-build: ## compile and package everything the test cluster runs (cached in ~/.cache/kubelab)
	$(CLUSTER) build

.PHONY: cluster-up
cluster-up: ## start a real single-node Kubernetes in its own network namespace, with kubelab's images
	$(CLUSTER) up
	@for v in $(E2E_VERSIONS); do $(MAKE) --no-print-directory images IMAGE_TAG=$$v VERSION=$$v; done
	@for v in $(E2E_VERSIONS); do for s in $(SERVICES); do \
	  $(PODMAN) tag $(IMAGE_PREFIX)$$s:$$v docker.io/kubelab/$$s:$$v; done; done
	@$(PODMAN) tag $(IMAGE_PREFIX)postgres:15-debian docker.io/library/$(PG_IMAGE)
	$(CLUSTER) import $(E2E_IMAGES) $(MINIKUBE_IMAGES)
	@echo 'kubectl: export $(CLUSTER_ENV)'

.PHONY: cluster-down
cluster-down: ## stop the test cluster and remove every trace of it
	$(CLUSTER) down

.PHONY: e2e
e2e: ## end-to-end tests on the test cluster (after make cluster-up)
	cd test/e2e && $(CLUSTER_ENV) go test -tags e2e -count=1 -timeout 45m -v .

.PHONY: test
test: ## everything that needs no cluster: vet, unit, contract (SQLite and PostgreSQL), process, browser and fuzz-seed tests
	go vet $(PACKAGES)
	@mkdir -p out
	go test -race -count=1 -timeout 20m -artifacts -outputdir $(CURDIR)/out $(PACKAGES)
	@echo "test artifacts (browser screenshots): out/_artifacts/"

.PHONY: lint
lint: ## gofmt, go vet and golangci-lint
	@test -z "$$(gofmt -l proto/*.go services test)" || { gofmt -l proto/*.go services test; echo "gofmt: files above need formatting"; exit 1; }
	go vet $(PACKAGES)
	golangci-lint run $(PACKAGES)
	cd test/e2e && go vet -tags e2e . && golangci-lint run --build-tags e2e ./...

.PHONY: proto
proto: ## regenerate proto/gen from proto/*.proto with the pinned local plugins
	cd proto && buf lint && rm -rf gen && buf generate

.PHONY: bench
bench: ## benchmarks, on one core where a figure is per core; figures in docs/benchmarks.md
	GOMAXPROCS=1 taskset -c 0 go test -run '^$$' -bench . -benchmem -benchtime 20x ./services/imageproc/pipeline/
	GOMAXPROCS=1 taskset -c 0 go test -run '^$$' -bench . -benchmem ./services/imageproc/internal/server/
	go test -run '^$$' -bench Claim -benchtime 2000x ./services/imageproc/internal/store/
	GOMAXPROCS=1 taskset -c 0 go test -run '^$$' -bench . -benchmem ./services/frontend/internal/web/
	GOMAXPROCS=1 taskset -c 0 go test -run '^$$' -bench Upload20MB -benchtime 5x ./services/frontend/
	taskset -c 1 go test -run '^$$' -bench FrontendInfo -benchtime 50000x ./services/loadgen/
	go test -run '^$$' -bench . -benchtime 20x ./services/worker/internal/work/

.PHONY: tools
tools: ## install the pinned buf, protoc plugins and golangci-lint (skipped when present)
	@command -v buf >/dev/null && buf --version | grep -qx '$(BUF_VERSION:v%=%)' || go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@command -v protoc-gen-go >/dev/null || go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@command -v protoc-gen-go-grpc >/dev/null || go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)
	@command -v golangci-lint >/dev/null || go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: clean
clean: ## remove build output and local data
	rm -rf bin $(DATA)
