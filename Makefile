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

SERVICES := imageproc frontend clusterview loadgen worker
APP_PACKAGES := ./proto/... ./services/...
PACKAGES     := $(APP_PACKAGES) ./test/deploy/...
NOCGO        := CGO_ENABLED=0
# grpcnotrace: gRPC without golang.org/x/net/trace, which kubelab never
# uses (traces are OpenTelemetry's) and whose HTML templates keep every
# exported method linked: 3 MB of imageproc and of the worker. vet compiles
# with it, as the images' binaries are built (IMAGE_TAGS), so that build
# then recompiles only imageproc's store and links.
VET          := $(NOCGO) go vet -trimpath -tags grpcnotrace $(PACKAGES)
DATA     := .data

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## compile every service into bin/
	@mkdir -p bin
	@for s in $(SERVICES); do $(NOCGO) go build -trimpath -ldflags "$(LDFLAGS)" -o bin/$$s ./services/$$s; done
	@echo "built: $(addprefix bin/,$(SERVICES)) ($(VERSION))"

.PHONY: run
run: build ## run imageproc and the frontend locally on the embedded store (no database, no cluster; bin/, not the images' binaries)
	@mkdir -p $(DATA)/imageproc $(DATA)/frontend/config $(DATA)/frontend/secret
	@test -e $(DATA)/frontend/config/title || echo "kubelab photo lab (local)" > $(DATA)/frontend/config/title
	@test -e $(DATA)/frontend/secret/admin-token || echo "local-admin-token" > $(DATA)/frontend/secret/admin-token
	@echo "imageproc: gRPC on 127.0.0.1:50051, probes and /metrics on http://127.0.0.1:9090"
	@echo "frontend:  open http://127.0.0.1:8080  (demo controls token: $$(cat $(DATA)/frontend/secret/admin-token)), /metrics on http://127.0.0.1:9091"
	@echo "  live settings: edit files in $(DATA)/frontend/config (title, banner, accent-color, upload-limit, features)"
	@echo "  Ctrl-C stops both"
	@trap 'kill 0' EXIT; \
	DATA_DIR=$(DATA)/imageproc GRPC_ADDR=127.0.0.1:50051 ADMIN_ADDR=127.0.0.1:9090 \
	  DATABASE_URL= DRAIN_DELAY=0s LOG_LEVEL=info ./bin/imageproc serve & \
	HTTP_ADDR=127.0.0.1:8080 METRICS_ADDR=127.0.0.1:9091 IMAGEPROC_ADDR=dns:///127.0.0.1:50051 DRAIN_DELAY=0s \
	  CONFIG_DIR=$(DATA)/frontend/config SECRET_DIR=$(DATA)/frontend/secret ./bin/frontend & \
	wait -n

IMAGE_PREFIX ?= localhost/kubelab-
IMAGE_TAG    ?= $(VERSION)
PODMAN       ?= podman

# The images' binaries: make build's flags plus two tags. nosqlite leaves
# imageproc's embedded SQLite store out (4 MB; the cluster always sets
# DATABASE_URL), grpcnotrace gRPC's unused x/net/trace (see VET). They go
# to their own directory, so bin/imageproc keeps SQLite for make run.
# test/deploy's TestImagesStayUnder20MB builds through these targets.
IMAGE_TAGS := nosqlite,grpcnotrace
IMAGE_BIN  ?= bin/image
# docker/Dockerfile's prebuilt target copies these two paths; another
# ROOTFS or IMAGE_BIN is for measuring, not for images.
ROOTFS     ?= docker/rootfs

.PHONY: image-binaries
image-binaries: ## compile every service as the images carry it (IMAGE_TAGS: no SQLite) into bin/image/
	@mkdir -p $(IMAGE_BIN)
	@for s in $(SERVICES); do $(NOCGO) go build -trimpath -tags $(IMAGE_TAGS) -ldflags "$(LDFLAGS)" -o $(IMAGE_BIN)/$$s ./services/$$s; done

.PHONY: rootfs
rootfs: ## the runtime files the prebuilt images copy: users and the host's CA bundle
	@rm -rf $(ROOTFS) && mkdir -p $(ROOTFS)/etc/ssl/certs
	@printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > $(ROOTFS)/etc/passwd
	@printf 'root:x:0:\nnonroot:x:65532:\n' > $(ROOTFS)/etc/group
	@cp /etc/ssl/certs/ca-certificates.crt $(ROOTFS)/etc/ssl/certs/

.PHONY: images
images: image-binaries rootfs ## package every service as an image (podman, offline; without SQLite: DATABASE_URL required) and print their sizes
	@for s in $(SERVICES); do \
	  $(PODMAN) build -q --network=none -f docker/Dockerfile --target prebuilt \
	    --build-arg SERVICE=$$s --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	    -t $(IMAGE_PREFIX)$$s:$(IMAGE_TAG) . >/dev/null; \
	done
	@for s in $(SERVICES); do \
	  echo "$(IMAGE_PREFIX)$$s:$(IMAGE_TAG)  $$($(PODMAN) image inspect --format '{{.Size}}' $(IMAGE_PREFIX)$$s:$(IMAGE_TAG) | numfmt --to=si --round=nearest --suffix=B --format=%.1f)"; \
	done

KUBECTL   ?= kubectl
NAMESPACE := kubelab
OVERLAY   ?= kustomize/overlays/minikube
# The version the rollout demo moves to; any tag you have built.
NEW_TAG   ?= 0.2.0

# The images the minikube path runs, as service:tag: every service at the
# tag the manifests name, and the frontend at NEW_TAG too, for
# demo-rollout. The minikube overlay never pulls them, so one missing here
# leaves its pod in ErrImageNeverPull. Each is built with VERSION set to
# its tag, so the pages show the version changing.
MINIKUBE_BUILDS = $(sort $(foreach s,$(SERVICES),$(s):0.1.0) frontend:$(NEW_TAG))
# One recipe line per image, not a shell loop, so `make -n images-minikube`
# shows exactly what is built (test/deploy reads it and checks that the
# overlay, the Jobs and the demos use nothing else).
# --all builds on every node: a minikube of several nodes (lesson 21) runs
# pods on each, and an image only the primary node has leaves them in
# ErrImageNeverPull there.
define minikube-image-build
minikube image build --all -f docker/Dockerfile --build-opt=target=image --build-opt=build-arg=SERVICE=$(firstword $(subst :, ,$(1))) --build-opt=build-arg=VERSION=$(lastword $(subst :, ,$(1))) -t kubelab/$(1) .

endef

.PHONY: images-minikube
images-minikube: ## build, inside minikube, every image the minikube overlay and the demos run (compiles in the image: the Dockerfile's "image" target)
	$(foreach i,$(MINIKUBE_BUILDS),$(call minikube-image-build,$(i)))

.PHONY: deploy-minikube
deploy-minikube: ## apply the minikube overlay, wait for the rollout, record the change-cause of each revision it made
	@# One shell, to compare each Deployment's revision before and after the
	@# apply. The manifests carry no change-cause (it would be copied to
	@# every later revision), so a revision this apply made is annotated
	@# here with what made it; a Deployment it left alone keeps its history.
	@revision() { $(KUBECTL) -n $(NAMESPACE) get deployment/$$1 --ignore-not-found \
	    -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}'; }; \
	run() { echo "$$*"; "$$@"; }; \
	before=$$(for d in imageproc frontend; do echo "$$d@$$(revision $$d)"; done); \
	run $(KUBECTL) apply -k $(OVERLAY); \
	for d in imageproc frontend; do \
	  floor=$$($(KUBECTL) -n $(NAMESPACE) get hpa/$$d --ignore-not-found -o jsonpath='{.spec.minReplicas}'); \
	  [ -n "$$floor" ] || continue; \
	  echo "an HPA owns $$d's replica count (a new Deployment starts at 1): waiting, at most 60s, for its floor of $$floor"; \
	  for i in $$(seq 30); do \
	    [ "$$($(KUBECTL) -n $(NAMESPACE) get deployment/$$d -o jsonpath='{.spec.replicas}')" -ge "$$floor" ] && break; sleep 2; \
	  done; \
	done; \
	run $(KUBECTL) -n $(NAMESPACE) rollout status statefulset/postgres --timeout=180s; \
	for d in imageproc frontend; do \
	  run $(KUBECTL) -n $(NAMESPACE) rollout status deployment/$$d --timeout=180s; \
	  grep -qx "$$d@$$(revision $$d)" <<<"$$before" && continue; \
	  image=$$($(KUBECTL) -n $(NAMESPACE) get deployment/$$d -o jsonpath='{.spec.template.spec.containers[0].image}'); \
	  run $(KUBECTL) -n $(NAMESPACE) annotate deployment/$$d kubernetes.io/change-cause="make deploy-minikube: $$image" --overwrite; \
	done
	@echo "open: minikube service -n $(NAMESPACE) frontend --url   (or http://kubelab.local with the ingress addon)"

.PHONY: undeploy
undeploy: ## delete everything kubelab deployed, its volumes included
	$(KUBECTL) delete -k $(OVERLAY) --ignore-not-found
	$(KUBECTL) -n $(NAMESPACE) delete pvc --all --ignore-not-found 2>/dev/null || true

.PHONY: demo-scale
demo-scale: ## scale imageproc 2 -> 5 -> 2 and watch the frontend spread its calls (with an HPA: first see it undo kubectl scale)
	@echo "watch: kubectl -n $(NAMESPACE) get pods -l app.kubernetes.io/name=imageproc -w"
	@echo "and the 'imageproc:' column of loadgen: every new pod takes a share within seconds (the frontend re-resolves imageproc-headless every 2s)"
	@# With a HorizontalPodAutoscaler (the minikube overlay has one), the HPA
	@# owns the replica count. First the lesson: kubectl scale does not stick.
	@# Below the HPA's floor, the HPA restores the floor at its next sync
	@# (every 15s), metrics or not; above it, it would take the count back
	@# only after its scale-down window, so the demo goes below. Then scale
	@# the HPA's way, by moving its floor (minReplicas), and put it back.
	@run() { echo "$$*"; "$$@"; }; \
	if floor=$$($(KUBECTL) -n $(NAMESPACE) get hpa imageproc -o jsonpath='{.spec.minReplicas}' 2>/dev/null); then \
	  echo "an HPA owns imageproc's replica count (floor $$floor); kubectl scale to 1 and watch it put the floor back:"; \
	  run $(KUBECTL) -n $(NAMESPACE) scale deployment/imageproc --replicas=1; \
	  run $(KUBECTL) -n $(NAMESPACE) wait deployment/imageproc --for=jsonpath='{.spec.replicas}'="$$floor" --timeout=60s; \
	  $(KUBECTL) -n $(NAMESPACE) get events --field-selector involvedObject.kind=HorizontalPodAutoscaler,reason=SuccessfulRescale \
	    --sort-by=.lastTimestamp -o custom-columns=HPA:.involvedObject.name,MESSAGE:.message | tail -n 1; \
	  echo "so scale through the HPA: its floor (minReplicas) to 5"; \
	  run $(KUBECTL) -n $(NAMESPACE) patch hpa imageproc -p '{"spec":{"minReplicas":5}}'; \
	  run $(KUBECTL) -n $(NAMESPACE) wait deployment/imageproc --for=jsonpath='{.spec.replicas}'=5 --timeout=60s; \
	  run $(KUBECTL) -n $(NAMESPACE) rollout status deployment/imageproc --timeout=180s; \
	  run sleep 40; \
	  run $(KUBECTL) -n $(NAMESPACE) patch hpa imageproc -p "{\"spec\":{\"minReplicas\":$$floor}}"; \
	  echo "the HPA now scales imageproc back to $$floor, or to what CPU use asks for: kubectl -n $(NAMESPACE) get hpa imageproc -w"; \
	else \
	  run $(KUBECTL) -n $(NAMESPACE) scale deployment/imageproc --replicas=5; \
	  run $(KUBECTL) -n $(NAMESPACE) rollout status deployment/imageproc --timeout=180s; \
	  run sleep 40; \
	  run $(KUBECTL) -n $(NAMESPACE) scale deployment/imageproc --replicas=2; \
	  run $(KUBECTL) -n $(NAMESPACE) rollout status deployment/imageproc --timeout=180s; \
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
	@# No annotate here: rollout undo copies the restored ReplicaSet's
	@# annotations, its change-cause included, back to the Deployment, so
	@# the history lists that revision under its own cause, with the newest number.
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
# on the test cluster as written. PostgreSQL is this machine's PostgreSQL 15
# under the official image's entrypoint (test/cluster/postgres), under both.
PG_IMAGE   := $(shell sed -n 's/^ *image: \(postgres:.*\)/\1/p' manifests/postgres/statefulset.yaml)
# Exactly what `make images-minikube` builds, no more: an image the
# minikube path needs but that target misses must fail here too.
MINIKUBE_IMAGES = $(addprefix docker.io/kubelab/,$(MINIKUBE_BUILDS)) docker.io/library/$(PG_IMAGE)

.PHONY: cluster-build
cluster-build: ## compile and package everything the test cluster runs (cached in ~/.cache/kubelab)
	$(CLUSTER) build

# Nodes of the test cluster: the first runs the control plane too.
NODES ?= 3

.PHONY: cluster-up
cluster-up: ## start a real Kubernetes of NODES nodes (default 3), each in its own network namespace, with kubelab's images
	NODES=$(NODES) $(CLUSTER) up
	@$(MAKE) --no-print-directory cluster-images

.PHONY: cluster-images
cluster-images: ## build kubelab's images (two versions) and load them into every node of the running test cluster
	@for v in $(E2E_VERSIONS); do $(MAKE) --no-print-directory images IMAGE_TAG=$$v VERSION=$$v; done
	@$(foreach i,$(MINIKUBE_BUILDS),$(PODMAN) tag $(IMAGE_PREFIX)$(i) docker.io/kubelab/$(i);)
	$(CLUSTER) postgres-image $(IMAGE_PREFIX)postgres:15-debian docker.io/library/$(PG_IMAGE)
	$(CLUSTER) import $(E2E_IMAGES) $(MINIKUBE_IMAGES)
	@echo 'kubectl: export $(CLUSTER_ENV)'

.PHONY: cluster-down
cluster-down: ## stop the test cluster and remove every trace of it
	$(CLUSTER) down

.PHONY: e2e
e2e: ## end-to-end tests on the test cluster (after make cluster-up)
	# -parallel: the lessons run beside the suite's other tests, and those
	# that only read kubelab beside each other; most wait on the cluster,
	# not on the CPU, and the tests take turns where they must
	# (test/e2e/e2e_test.go). It counts the tests waiting for a turn too.
	# The log is kept in out/e2e.log; on a failure, each failed test's last
	# lines are printed again at the end, where CI's kept tail shows them.
	@mkdir -p out
	cd test/e2e && $(CLUSTER_ENV) go test -tags e2e -count=1 -timeout 45m -parallel 40 -v . 2>&1 \
	  | tee $(CURDIR)/out/e2e.log || { awk -v keep=40 -f failures.awk $(CURDIR)/out/e2e.log; exit 1; }

.PHONY: test
test: ## everything that needs no cluster: vet, unit, contract (SQLite and PostgreSQL), process, browser and fuzz-seed tests
	@# vet compiles every package with the images' flags (no cgo,
	@# -trimpath, grpcnotrace), so their build then only links: on a cold
	@# machine that takes minutes off make cluster-up.
	$(VET)
	@mkdir -p out
	go test -race -count=1 -timeout 20m -artifacts -outputdir $(CURDIR)/out $(APP_PACKAGES)
	@# test/deploy reads manifests and runs kustomize and Starlark: no
	@# shared memory worth the race detector, whose build of kustomize and
	@# Kubernetes' API costs two CPU-minutes cold. Built as vet built it.
	$(NOCGO) go test -trimpath -count=1 -timeout 10m ./test/deploy/...
	@echo "test artifacts (browser screenshots): out/_artifacts/"

.PHONY: lint
lint: ## gofmt, go vet and golangci-lint
	@test -z "$$(gofmt -l proto/*.go services test)" || { gofmt -l proto/*.go services test; echo "gofmt: files above need formatting"; exit 1; }
	$(VET)
	@# imageproc's other side: the images' build leaves SQLite out (nosqlite.go).
	$(NOCGO) go vet -trimpath -tags $(IMAGE_TAGS) ./services/imageproc/...
	golangci-lint run $(PACKAGES)
	cd test/e2e && go vet -tags e2e . && golangci-lint run --build-tags e2e ./...

.PHONY: proto
proto: ## regenerate proto/gen from proto/*.proto with the pinned local plugins
	cd proto && buf lint && rm -rf gen && buf generate

.PHONY: bench
bench: ## benchmarks, on one core where a figure is per core; figures in docs/benchmarks.md
	GOMAXPROCS=1 taskset -c 0 go test -run '^$$' -bench . -benchmem -benchtime 20x ./services/imageproc/pipeline/
	GOMAXPROCS=1 taskset -c 0 go test -run '^$$' -bench . -benchmem -benchtime 10x ./services/imageproc/pipeline/jpegscale/
	GOMAXPROCS=1 taskset -c 0 go test -run '^$$' -bench . -benchmem ./services/imageproc/internal/server/
	go test -run '^$$' -bench Claim -benchtime 2000x ./services/imageproc/internal/store/
	GOMAXPROCS=1 taskset -c 0 go test -run '^$$' -bench . -benchmem ./services/frontend/internal/web/
	GOMAXPROCS=1 taskset -c 0 go test -run '^$$' -bench Upload20MB -benchtime 5x ./services/frontend/
	GOMAXPROCS=1 taskset -c 0 go test -run '^$$' -bench . -benchmem -benchtime 200x ./services/clusterview/internal/stream/
	taskset -c 1 go test -run '^$$' -bench FrontendInfo -benchtime 50000x ./services/loadgen/
	go test -run '^$$' -bench . -benchtime 20x ./services/worker/internal/work/

.PHONY: tools
tools: tools-proto tools-lint ## install the pinned buf, protoc plugins and golangci-lint (skipped when present)

.PHONY: tools-proto tools-lint
tools-proto: ## install what make proto and its test need: buf and the protoc plugins
	@command -v buf >/dev/null && buf --version | grep -qx '$(BUF_VERSION:v%=%)' || go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@command -v protoc-gen-go >/dev/null || go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@command -v protoc-gen-go-grpc >/dev/null || go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)

tools-lint: ## install what make lint needs: golangci-lint
	@command -v golangci-lint >/dev/null || go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: clean
clean: ## remove build output and local data
	rm -rf bin $(DATA)
