# syntax=docker/dockerfile:1
#
# Event Gateway container image: a static binary on distroless, run as a
# non-root user. Build from the repository root:
#
#   docker build -t event-gateway:dev --build-arg VERSION=$(git describe --tags --always) .
#
# deploy/dockerfile_test.go runs this file's `go build` command and checks
# the rest of it; see docs/deployment.md.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that a change of the sources does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/event-gateway ./cmd/event-gateway

# distroless/static: CA certificates, /etc/passwd with nonroot (65532),
# tzdata; no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/event-gateway /usr/local/bin/event-gateway
USER 65532:65532
# Only the embedded stores (-dev, or no -nats-url) write; they write below
# the working directory. Mount a volume here for them.
WORKDIR /home/nonroot
# Events API, Configuration API (also /metrics, /v1/status, /v1/status/ready).
EXPOSE 4000 4001
# The image has no shell and no HTTP client, and the binary has no probe
# command, so a Docker HEALTHCHECK cannot ask GET /v1/status. Use the
# orchestrator's HTTP probes instead (Kubernetes: liveness /v1/status,
# readiness /v1/status/ready on port 4001); docs/deployment.md explains.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/event-gateway"]
