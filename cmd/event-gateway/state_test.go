package main

import (
	"strings"
	"testing"
)

func TestPrepareStateResolvesSecretsFromTheEnvironment(t *testing.T) {
	env := map[string]string{"SECRET": "s3cr3t", "TOKEN": "t0k"}
	getenv := func(k string) string { return env[k] }
	yaml := `space: shop
functions:
  - functionId: f
    provider:
      type: awslambda
      awsSecretAccessKey: {fromEnv: SECRET}
      awsSessionToken:
        fromEnv: TOKEN
      notASecret: {fromEnv: SECRET, other: 1}
`
	body, space, err := prepareState([]byte(yaml), getenv)
	if err != nil {
		t.Fatal(err)
	}
	if space != "shop" {
		t.Fatalf("space %q", space)
	}
	for _, want := range []string{`"awsSecretAccessKey":"s3cr3t"`, `"awsSessionToken":"t0k"`, `"notASecret":{"fromEnv":"SECRET","other":1}`} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("%s lacks %s", body, want)
		}
	}
	// JSON is taken as it is, numbers intact.
	body, _, err = prepareState([]byte(`{"functions":[{"functionId":"f","maxInFlight":12345678901,"provider":{"key":{"fromEnv":"SECRET"}}}]}`), getenv)
	if err != nil || !strings.Contains(string(body), `"maxInFlight":12345678901`) || !strings.Contains(string(body), `"key":"s3cr3t"`) {
		t.Fatalf("JSON state: %s %v", body, err)
	}
	for _, tc := range []struct{ in, msg string }{
		{`{"functions":[{"provider":{"k":{"fromEnv":"MISSING"}}}]}`, "functions[0].provider.k: environment variable MISSING is not set"},
		{`{"functions":[{"provider":{"k":{"fromEnv":3}}}]}`, "functions[0].provider.k: fromEnv must name an environment variable"},
		{"- a\n- b\n", "must be an object"},
		{"functions: [\n", "yaml: line"},
	} {
		if _, _, err := prepareState([]byte(tc.in), getenv); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: error %v, want one saying %q", tc.in, err, tc.msg)
		}
	}
}

func TestStateCommandsNeedTheirArguments(t *testing.T) {
	getenv := func(string) string { return "" }
	var out, errOut strings.Builder
	for _, tc := range []struct {
		run  func([]string, *strings.Builder, *strings.Builder) int
		args []string
		code int
		msg  string
	}{
		{func(a []string, o, e *strings.Builder) int { return applyCommand(a, o, e, getenv) }, nil, 1, "-f FILE is required"},
		{func(a []string, o, e *strings.Builder) int { return exportCommand(a, o, e, getenv) }, nil, 1, "-space is required"},
		{func(a []string, o, e *strings.Builder) int { return rollbackCommand(a, o, e, getenv) }, []string{"-space", "s"}, 1, "-space and -revision are required"},
		{func(a []string, o, e *strings.Builder) int { return historyCommand(a, o, e, getenv) }, []string{"-space", "s", "extra"}, 2, "unexpected arguments: extra"},
	} {
		errOut.Reset()
		if code := tc.run(tc.args, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.msg) {
			t.Errorf("%v: code %d, %q; want %d, %q", tc.args, code, errOut.String(), tc.code, tc.msg)
		}
	}
}
