# Container image targets. Included from the top-level Makefile
# (`include deployments/docker.mk`); every image builds with the repository
# root as its context, so run these from the root.
DOCKER         ?= docker
IMAGE_REGISTRY ?= ghcr.io/sluicehq
IMAGE_TAG      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_CREATED  ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
DOCKER_BUILD_FLAGS ?=
DOCKER_SERVICES := ingest-gateway schema-registry s3-sink search-sink kafka-exporter

.PHONY: docker
docker: $(addprefix docker-,$(DOCKER_SERVICES)) ## build every image as IMAGE_REGISTRY/<service>:IMAGE_TAG; docker-<service> builds one

.PHONY: $(addprefix docker-,$(DOCKER_SERVICES))
$(addprefix docker-,$(DOCKER_SERVICES)): docker-%:
	DOCKER_BUILDKIT=1 $(DOCKER) build -f services/$*/Dockerfile \
		--build-arg VERSION=$(IMAGE_TAG) --build-arg REVISION=$(IMAGE_REVISION) --build-arg CREATED=$(IMAGE_CREATED) \
		-t $(IMAGE_REGISTRY)/$*:$(IMAGE_TAG) $(DOCKER_BUILD_FLAGS) .

.PHONY: chart-rules
chart-rules: ## copy deployments/prometheus/rules and deployments/grafana/dashboards into helm/sluice/files (a chart cannot read outside itself)
	@mkdir -p helm/sluice/files/rules helm/sluice/files/dashboards
	@rm -f helm/sluice/files/rules/*.yml helm/sluice/files/dashboards/*.json
	@cp deployments/prometheus/rules/*.yml helm/sluice/files/rules/
	@cp deployments/grafana/dashboards/*.json helm/sluice/files/dashboards/
	@ls helm/sluice/files/rules helm/sluice/files/dashboards
