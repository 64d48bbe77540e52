package deploy

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/kubernetes/*.yaml from the chart")

const releaseName = "event-gateway"

func chartDir(t testing.TB) string {
	return filepath.Join(repoRoot(t), "deploy", "helm", "event-gateway")
}

// render renders the chart as `helm template` does, with the values of the
// given files over the chart's values.yaml; the engine is strict, so a
// template naming a value that does not exist fails. It returns the output
// of each template by file name (templates/x.yaml -> x.yaml), empty
// outputs left out.
func render(t *testing.T, valueFiles ...string) (map[string]string, error) {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	vals := map[string]any{}
	for _, f := range valueFiles {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vals = chartutil.CoalesceTables(v.AsMap(), vals)
	}
	return renderChart(t, ch, vals)
}

func renderChart(t *testing.T, ch *chart.Chart, vals map[string]any) (map[string]string, error) {
	t.Helper()
	opts := chartutil.ReleaseOptions{Name: releaseName, Namespace: "event-gateway", Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValues(ch, vals, opts, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	out, err := engine.Engine{Strict: true}.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	r := map[string]string{}
	for name, s := range out {
		base := filepath.Base(name)
		if strings.TrimSpace(s) == "" || base == "NOTES.txt" || strings.HasPrefix(base, "_") {
			continue
		}
		r[base] = s
	}
	return r, nil
}

// objects is what a rendering holds, decoded strictly into the Kubernetes
// API types (an unknown or misspelt field, or a duplicate key, fails).
type objects struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	pdbs        []policyv1.PodDisruptionBudget
	accounts    []corev1.ServiceAccount
	monitors    []serviceMonitor
}

func decodeAll(t *testing.T, rendered map[string]string) objects {
	t.Helper()
	var o objects
	names := map[string]bool{}
	for file, s := range rendered {
		for _, doc := range releaseutil.SplitManifests(s) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v\n%s", file, err, doc)
			}
			var err error
			var meta metav1.ObjectMeta
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				var d appsv1.Deployment
				err = strictDecode([]byte(doc), &d)
				o.deployments, meta = append(o.deployments, d), d.ObjectMeta
			case "v1 Service":
				var d corev1.Service
				err = strictDecode([]byte(doc), &d)
				o.services, meta = append(o.services, d), d.ObjectMeta
			case "policy/v1 PodDisruptionBudget":
				var d policyv1.PodDisruptionBudget
				err = strictDecode([]byte(doc), &d)
				o.pdbs, meta = append(o.pdbs, d), d.ObjectMeta
			case "v1 ServiceAccount":
				var d corev1.ServiceAccount
				err = strictDecode([]byte(doc), &d)
				o.accounts, meta = append(o.accounts, d), d.ObjectMeta
			case "monitoring.coreos.com/v1 ServiceMonitor":
				var d serviceMonitor
				err = strictDecode([]byte(doc), &d)
				o.monitors, meta = append(o.monitors, d), d.ObjectMeta
			default:
				t.Fatalf("%s: unexpected object %s %s", file, tm.APIVersion, tm.Kind)
			}
			if err != nil {
				t.Fatalf("%s: %s: %v\n%s", file, tm.Kind, err, doc)
			}
			if !regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`).MatchString(meta.Name) {
				t.Errorf("%s: %s name %q is not a DNS label", file, tm.Kind, meta.Name)
			}
			if names[tm.Kind+"/"+meta.Name] {
				t.Errorf("%s: two %s named %s", file, tm.Kind, meta.Name)
			}
			names[tm.Kind+"/"+meta.Name] = true
		}
	}
	return o
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) the chart uses; strict decoding refuses any
// other field.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Scheme        string `json:"scheme"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
			Authorization *struct {
				Type        string                   `json:"type"`
				Credentials corev1.SecretKeySelector `json:"credentials"`
			} `json:"authorization,omitempty"`
			TLSConfig *struct {
				CA *struct {
					Secret    *corev1.SecretKeySelector    `json:"secret,omitempty"`
					ConfigMap *corev1.ConfigMapKeySelector `json:"configMap,omitempty"`
				} `json:"ca,omitempty"`
				ServerName         string `json:"serverName,omitempty"`
				InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
			} `json:"tlsConfig,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// checkObjects checks what the types alone cannot: the objects fit
// together (selectors, ports, volumes, Secrets) and the gateway runs as
// the chart promises.
func checkObjects(t *testing.T, o objects) {
	t.Helper()
	if len(o.deployments) != 1 || len(o.services) != 2 || len(o.accounts) > 1 {
		t.Fatalf("want 1 Deployment and 2 Services, have %d and %d", len(o.deployments), len(o.services))
	}
	d := o.deployments[0]
	pod := d.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("Deployment: selector %v does not match its pod labels %v", d.Spec.Selector, pod.Labels)
	}
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Error("Deployment: a rolling update should not take a ready pod away before its successor is ready")
	}
	ps := pod.Spec
	if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
		t.Error("pod: runAsNonRoot is not set")
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("pod: the service account token is mounted; the gateway does not call the API server")
	}
	if len(o.accounts) == 1 && ps.ServiceAccountName != o.accounts[0].Name {
		t.Errorf("pod: service account %q, the chart creates %q", ps.ServiceAccountName, o.accounts[0].Name)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("pod: %d containers", len(ps.Containers))
	}
	c := ps.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		(sc.Privileged != nil && *sc.Privileged) {
		t.Errorf("container: securityContext %+v, want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("container: CPU and memory requests and a memory limit are expected")
	}

	// Every argument is a flag of the gateway; $(VAR) references name
	// variables of the container.
	args := checkGatewayArgs(t, "Deployment", c.Args)
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for _, a := range c.Args {
		for _, m := range regexp.MustCompile(`\$\(([A-Za-z_0-9]+)\)`).FindAllStringSubmatch(a, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Errorf("argument %q refers to $(%s), not a variable of the container", a, m[1])
			}
		}
	}
	if _, ok := args["db-password"]; ok {
		t.Error("the etcd password is on the command line; use $EVENT_GATEWAY_DB_PASSWORD")
	}
	if _, ok := args["config-token"]; ok {
		t.Error("the config token is on the command line; use $EVENT_GATEWAY_TOKEN")
	}
	if args["nats-url"] == "" || args["db-hosts"] == "" {
		t.Error("-nats-url and -db-hosts must be set")
	}
	if args["config-port"] != "4001" || args["events-port"] != "4000" {
		t.Errorf("ports -config-port=%s -events-port=%s, want 4001 and 4000", args["config-port"], args["events-port"])
	}
	if (args["db-username"] == "") != (env["EVENT_GATEWAY_DB_PASSWORD"].ValueFrom == nil) {
		t.Error("-db-username and $EVENT_GATEWAY_DB_PASSWORD (from a Secret) go together")
	}
	for name, e := range env {
		if strings.HasPrefix(name, "EVENT_GATEWAY_") && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("env %s: not taken from a Secret", name)
		}
	}

	// Files the flags name are in mounted volumes.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		volumes[v.Name] = v
		if _, ok := mounts[v.Name]; !ok {
			t.Errorf("volume %s is not mounted", v.Name)
		}
	}
	for name := range mounts {
		if _, ok := volumes[name]; !ok {
			t.Errorf("volume mount %s has no volume", name)
		}
	}
	for flagName, file := range args {
		if !regexp.MustCompile(`-(cert|key|ca|creds)$`).MatchString(flagName) {
			continue
		}
		found := false
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(file, m.MountPath+"/") {
				found = true
				if v := volumes[m.Name]; v.Secret == nil || !m.ReadOnly {
					t.Errorf("-%s=%s: volume %s is not a read-only Secret", flagName, file, m.Name)
				}
			}
		}
		if !found {
			t.Errorf("-%s=%s: no volume is mounted there", flagName, file)
		}
	}

	// Probes: liveness /v1/status, readiness /v1/status/ready, on the
	// config port, over TLS when the config API has it.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["events"] != 4000 || ports["config"] != 4001 {
		t.Errorf("container ports %v, want events 4000 and config 4001", ports)
	}
	scheme := corev1.URISchemeHTTP
	if args["config-tls-cert"] != "" {
		scheme = corev1.URISchemeHTTPS
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/v1/status"}, {"readiness", c.ReadinessProbe, "/v1/status/ready"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: not an HTTP GET", p.name)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || g.Port != intstr.FromString("config") || g.Scheme != scheme {
			t.Errorf("%s probe: %s %s on %s, want %s %s on config", p.name, g.Scheme, g.Path, g.Port.String(), scheme, p.path)
		}
	}
	if grace := ps.TerminationGracePeriodSeconds; grace == nil || args["shutdown-timeout"] == "" ||
		fmt.Sprintf("%ds", *grace-10) != args["shutdown-timeout"] {
		t.Errorf("terminationGracePeriodSeconds should be -shutdown-timeout (%s) plus 10s", args["shutdown-timeout"])
	}

	// Services select the pods and target named container ports.
	svcPorts := map[string]corev1.Service{}
	for _, s := range o.services {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) || len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s: selector %v does not match the pods", s.Name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			if _, ok := ports[p.TargetPort.String()]; !ok {
				t.Errorf("Service %s: targetPort %s is not a container port", s.Name, p.TargetPort.String())
			}
			svcPorts[p.Name] = s
		}
	}
	if _, ok := svcPorts["events"]; !ok {
		t.Error("no Service for the events port")
	}
	if _, ok := svcPorts["config"]; !ok {
		t.Error("no Service for the config port")
	}

	for _, p := range o.pdbs {
		s, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || s.Empty() || !s.Matches(labels.Set(pod.Labels)) {
			t.Errorf("PodDisruptionBudget %s: selector does not match the pods", p.Name)
		}
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			t.Errorf("PodDisruptionBudget %s: set one of minAvailable and maxUnavailable", p.Name)
		}
	}

	for _, m := range o.monitors {
		s, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
		cfg := svcPorts["config"]
		if err != nil || !s.Matches(labels.Set(cfg.Labels)) || s.Matches(labels.Set(svcPorts["events"].Labels)) {
			t.Errorf("ServiceMonitor %s: should select the config Service only", m.Name)
		}
		for _, e := range m.Spec.Endpoints {
			if e.Port != "config" || e.Path != "/metrics" || !strings.EqualFold(e.Scheme, string(scheme)) {
				t.Errorf("ServiceMonitor %s: scrapes %s %s on %s", m.Name, e.Scheme, e.Path, e.Port)
			}
			tok := env["EVENT_GATEWAY_TOKEN"].ValueFrom
			switch {
			case tok == nil && e.Authorization != nil:
				t.Errorf("ServiceMonitor %s: authorization without a config token", m.Name)
			case tok != nil && (e.Authorization == nil || e.Authorization.Type != "Bearer" ||
				e.Authorization.Credentials.Name != tok.SecretKeyRef.Name || e.Authorization.Credentials.Key != tok.SecretKeyRef.Key):
				t.Errorf("ServiceMonitor %s: does not scrape with the config token's Secret", m.Name)
			}
		}
	}
}

// TestChart renders the chart with its defaults, with the values of the
// plain manifests and with every option on, and checks each rendering.
func TestChart(t *testing.T) {
	for _, tc := range []struct{ name, values string }{
		{"defaults", ""},
		{"kubernetes", "kubernetes.values.yaml"},
		{"full", "testdata/full-values.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var files []string
			if tc.values != "" {
				files = append(files, tc.values)
			}
			out, err := render(t, files...)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			o := decodeAll(t, out)
			checkObjects(t, o)
			if tc.name == "full" {
				if len(o.monitors) != 1 || len(o.pdbs) != 1 || o.pdbs[0].Spec.MinAvailable == nil {
					t.Errorf("full: want a ServiceMonitor and a PDB with minAvailable")
				}
				args := strings.Join(o.deployments[0].Spec.Template.Spec.Containers[0].Args, " ")
				for _, f := range []string{"-db-ca=", "-db-cert=", "-db-username=", "-nats-ca=", "-nats-creds=", "-events-tls-cert=", "-config-tls-cert=", "-access-log", "-workers=400"} {
					if !strings.Contains(args, f) {
						t.Errorf("full: %s missing from %s", f, args)
					}
				}
				if strings.Contains(args, "-nats-cert=") {
					t.Error("full: nats.tls.clientCert is false, yet -nats-cert is set")
				}
			}
		})
	}
}

// TestChartRefuses checks the chart fails, with a clear message, where a
// rendering would give gateways that cannot work together.
func TestChartRefuses(t *testing.T) {
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		vals map[string]any
		want string
	}{
		{map[string]any{"nats": map[string]any{"urls": []any{}}}, "nats.urls"},
		{map[string]any{"etcd": map[string]any{"endpoints": []any{}}}, "etcd.endpoints"},
	} {
		_, err := renderChart(t, ch, tc.vals)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.vals, err, tc.want)
		}
	}
}

// TestChartLint runs helm lint's rules (Chart.yaml, values, templates,
// deprecated APIs) on the chart.
func TestChartLint(t *testing.T) {
	l := lint.All(chartDir(t), nil, "event-gateway", false)
	for _, m := range l.Messages {
		if m.Severity >= support.InfoSev {
			// Info: e.g. "icon is recommended"; warnings and errors fail.
			if m.Severity > support.InfoSev {
				t.Errorf("helm lint: %s", m)
			} else {
				t.Logf("helm lint: %s", m)
			}
		}
	}
}

const generatedHeader = "# Generated from deploy/helm/event-gateway with deploy/kubernetes.values.yaml\n" +
	"# (release name event-gateway) by `cd deploy && go test -run TestManifests -update`.\n" +
	"# Do not edit: change the chart and re-render.\n"

// TestManifests checks deploy/kubernetes/*.yaml are the chart rendered
// with deploy/kubernetes.values.yaml; with -update it rewrites them.
func TestManifests(t *testing.T) {
	out, err := render(t, "kubernetes.values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repoRoot(t), "deploy", "kubernetes")
	want := map[string][]byte{}
	for name, s := range out {
		want[name] = []byte(generatedHeader + "---\n" + strings.TrimLeft(s, "\n"))
	}
	have, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if *update {
		for _, f := range have {
			if _, ok := want[filepath.Base(f)]; !ok {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	var names []string
	for _, f := range have {
		names = append(names, filepath.Base(f))
	}
	var wantNames []string
	for n := range want {
		wantNames = append(wantNames, n)
	}
	sort.Strings(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("deploy/kubernetes holds %v, the chart renders %v; run: cd deploy && go test -run TestManifests -update", names, wantNames)
	}
	for _, n := range wantNames {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err == nil && !bytes.Equal(b, want[n]) {
			t.Errorf("deploy/kubernetes/%s is not the chart's rendering; run: cd deploy && go test -run TestManifests -update", n)
		}
	}
}
