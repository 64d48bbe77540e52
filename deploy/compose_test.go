package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func loadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy", "compose")
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
		cli.WithWorkingDirectory(dir), cli.WithEnv(env), cli.WithInterpolation(true),
		cli.WithNormalization(true), cli.WithConsistency(true), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return p
}

// TestCompose loads deploy/compose/compose.yaml with compose-go (the
// loader of docker compose: schema validation, interpolation, merge keys)
// and checks the cluster it describes.
func TestCompose(t *testing.T) {
	p := loadCompose(t, "EVENT_GATEWAY_TOKEN=s3cret")
	byPrefix := func(prefix string) []types.ServiceConfig {
		var r []types.ServiceConfig
		for _, name := range p.ServiceNames() {
			if strings.HasPrefix(name, prefix) {
				r = append(r, p.Services[name])
			}
		}
		return r
	}

	etcds := byPrefix("etcd-")
	if len(etcds) != 3 {
		t.Fatalf("%d etcd services, want 3", len(etcds))
	}
	var cluster []string
	for _, s := range etcds {
		if !strings.HasPrefix(s.Image, "quay.io/coreos/etcd:v3.") && !strings.HasPrefix(s.Image, "gcr.io/etcd-development/etcd:v3.") {
			t.Errorf("%s: image %q is not an official etcd v3 image", s.Name, s.Image)
		}
		env := func(k string) string {
			if v := s.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		if env("ETCD_NAME") != s.Name || env("ETCD_ADVERTISE_CLIENT_URLS") != "http://"+s.Name+":2379" ||
			env("ETCD_INITIAL_ADVERTISE_PEER_URLS") != "http://"+s.Name+":2380" {
			t.Errorf("%s: ETCD_NAME and advertised URLs do not name the service itself", s.Name)
		}
		cluster = append(cluster, env("ETCD_INITIAL_CLUSTER"))
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s: no health check (the gateways wait for it)", s.Name)
		}
		checkVolume(t, s, "/etcd-data")
	}
	want := "etcd-1=http://etcd-1:2380,etcd-2=http://etcd-2:2380,etcd-3=http://etcd-3:2380"
	for _, c := range cluster {
		if c != want {
			t.Errorf("ETCD_INITIAL_CLUSTER %q, want %q on every member", c, want)
		}
	}

	natss := byPrefix("nats-")
	if len(natss) != 3 {
		t.Fatalf("%d NATS services, want 3", len(natss))
	}
	for _, s := range natss {
		if !strings.HasPrefix(s.Image, "nats:2.") {
			t.Errorf("%s: image %q, want nats:2.x", s.Name, s.Image)
		}
		args := map[string]string{}
		for _, a := range s.Command {
			k, v, _ := strings.Cut(a, "=")
			args[k] = v
		}
		if _, js := args["--jetstream"]; !js {
			t.Errorf("%s: JetStream is not enabled (--jetstream)", s.Name)
		}
		if args["--server_name"] != s.Name || args["--cluster_name"] == "" || args["--cluster"] == "" {
			t.Errorf("%s: a JetStream cluster needs --server_name (the service), --cluster_name and --cluster: %q", s.Name, s.Command)
		}
		if args["--routes"] != "nats://nats-1:6222,nats://nats-2:6222,nats://nats-3:6222" {
			t.Errorf("%s: --routes=%q does not name all three servers", s.Name, args["--routes"])
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s: no health check", s.Name)
		}
		checkVolume(t, s, args["--store_dir"])
		for k := range args {
			if !natsFlags(t)[k] {
				t.Errorf("%s: nats-server has no flag %s", s.Name, k)
			}
		}
	}

	gateways := byPrefix("gateway-")
	if len(gateways) != 2 {
		t.Fatalf("%d gateway services, want 2", len(gateways))
	}
	var targets []string
	for _, s := range gateways {
		if s.Build == nil || s.Build.Dockerfile != "Dockerfile" || s.Build.Context != repoRoot(t) {
			t.Errorf("%s: not built from the repository's Dockerfile: %+v", s.Name, s.Build)
		}
		flags := checkGatewayArgs(t, s.Name, s.Command)
		if flags["db-hosts"] != "etcd-1:2379,etcd-2:2379,etcd-3:2379" {
			t.Errorf("%s: -db-hosts=%q, want all three etcd members", s.Name, flags["db-hosts"])
		}
		if flags["nats-url"] != "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222" {
			t.Errorf("%s: -nats-url=%q, want all three NATS servers", s.Name, flags["nats-url"])
		}
		if flags["nats-replicas"] != "3" {
			t.Errorf("%s: -nats-replicas=%q, want 3", s.Name, flags["nats-replicas"])
		}
		if v := s.Environment["EVENT_GATEWAY_TOKEN"]; v == nil || *v != "s3cret" {
			t.Errorf("%s: EVENT_GATEWAY_TOKEN is not passed from the environment", s.Name)
		}
		for _, dep := range append(etcds, natss...) {
			if d, ok := s.DependsOn[dep.Name]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: does not wait for %s to be healthy", s.Name, dep.Name)
			}
		}
		if s.StopGracePeriod == nil || flags["shutdown-timeout"] == "" {
			t.Errorf("%s: set -shutdown-timeout and a longer stop_grace_period", s.Name)
		}
		targets = append(targets, s.Name+":4001")
	}

	prom, ok := p.Services["prometheus"]
	if !ok {
		t.Fatal("no prometheus service")
	}
	if !strings.HasPrefix(prom.Image, "prom/prometheus:") {
		t.Errorf("prometheus: image %q", prom.Image)
	}
	if v := prom.Environment["EVENT_GATEWAY_TOKEN"]; v == nil || *v != "s3cret" {
		t.Errorf("prometheus: EVENT_GATEWAY_TOKEN is not passed from the environment")
	}
	entry := strings.Join(prom.Entrypoint, " ")
	cfg := checkPrometheusConfig(t, filepath.Join(repoRoot(t), "deploy", "compose", "prometheus.yml"))
	sc := cfg.ScrapeConfigs[0]
	if !strings.Contains(entry, "> "+sc.Authorization.CredentialsFile+" ") || !strings.Contains(entry, "${EVENT_GATEWAY_TOKEN") ||
		!strings.Contains(entry, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus: the entrypoint must write $EVENT_GATEWAY_TOKEN to %s and start Prometheus with the mounted config: %s",
			sc.Authorization.CredentialsFile, entry)
	}
	mounted := false
	for _, v := range prom.Volumes {
		mounted = mounted || (strings.HasSuffix(v.Source, filepath.Join("compose", "prometheus.yml")) && v.Target == "/etc/prometheus/prometheus.yml")
	}
	if !mounted {
		t.Error("prometheus: prometheus.yml is not mounted at /etc/prometheus/prometheus.yml")
	}
	got := sc.StaticConfigs[0].Targets
	slices.Sort(got)
	if !slices.Equal(got, targets) || sc.MetricsPath != "/metrics" {
		t.Errorf("prometheus scrapes %q at %s, want %q at /metrics", got, sc.MetricsPath, targets)
	}

	// Without the variable the file still loads, and the token is empty
	// (no token, the gateways warn).
	p = loadCompose(t)
	if v := p.Services["gateway-1"].Environment["EVENT_GATEWAY_TOKEN"]; v != nil && *v != "" {
		t.Errorf("EVENT_GATEWAY_TOKEN unset: the gateway gets %q", *v)
	}
}

var natsFlagRE = regexp.MustCompile(`(?m)^\s+(?:-[a-z]+, )?(--[a-z_]+)`)

// natsFlags are the long flags of nats-server, of the version the gateway
// embeds (the main module's go.mod), built from the module cache.
func natsFlags(t *testing.T) map[string]bool {
	t.Helper()
	natsOnce.Do(func() {
		bin := filepath.Join(t.TempDir(), "nats-server")
		c := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
		c.Dir = repoRoot(t)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("building nats-server: %v\n%s", err, out)
		}
		out, _ := exec.Command(bin, "--help").CombinedOutput()
		natsFlagSet = map[string]bool{}
		for _, m := range natsFlagRE.FindAllStringSubmatch(string(out), -1) {
			natsFlagSet[m[1]] = true
		}
	})
	if !natsFlagSet["--jetstream"] {
		t.Fatalf("nats-server --help: flags not found (%d)", len(natsFlagSet))
	}
	return natsFlagSet
}

var (
	natsOnce    sync.Once
	natsFlagSet map[string]bool
)

func checkVolume(t *testing.T, s types.ServiceConfig, target string) {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == target && v.Type == types.VolumeTypeVolume {
			return
		}
	}
	t.Errorf("%s: no named volume at its data directory %q", s.Name, target)
}

// promConfig is the part of Prometheus' configuration compose uses;
// strict decoding refuses any other field, so a misspelt one is caught.
type promConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval"`
		EvaluationInterval string `json:"evaluation_interval"`
	} `json:"global"`
	ScrapeConfigs []struct {
		JobName       string `json:"job_name"`
		MetricsPath   string `json:"metrics_path"`
		Scheme        string `json:"scheme"`
		Authorization struct {
			Type            string `json:"type"`
			CredentialsFile string `json:"credentials_file"`
		} `json:"authorization"`
		StaticConfigs []struct {
			Targets []string `json:"targets"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

func checkPrometheusConfig(t *testing.T, name string) promConfig {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var c promConfig
	if err := strictDecode(b, &c); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	if len(c.ScrapeConfigs) != 1 || len(c.ScrapeConfigs[0].StaticConfigs) != 1 {
		t.Fatalf("prometheus.yml: want one scrape config with one static config")
	}
	if a := c.ScrapeConfigs[0].Authorization; a.Type != "Bearer" || !strings.HasPrefix(a.CredentialsFile, "/") {
		t.Errorf("prometheus.yml: authorization %+v, want a Bearer credentials_file", a)
	}
	if !bytes.Contains(b, []byte("job_name: event-gateway")) {
		t.Error("prometheus.yml: the job is not named event-gateway (the dashboard's default)")
	}
	return c
}
