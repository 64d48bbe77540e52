// Package deploy holds no code of the gateway: its tests check the
// deployment files of the repository (the Dockerfile, the compose cluster,
// the Helm chart and the manifests rendered from it, the Grafana
// dashboard) without a container engine or a Kubernetes cluster. It is a
// module of its own so that the Helm and Kubernetes libraries stay out of
// the gateway's module. Run it with `cd deploy && go test ./...`; see
// docs/deployment.md.
package deploy
