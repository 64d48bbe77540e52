package functions_test

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/functions/awslambda"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/internal/errkind"
)

// registry is what main builds: both provider types, http first.
func registry(t *testing.T) *functions.Registry {
	t.Helper()
	r := functions.NewRegistry(httpfn.New(httpfn.Options{}), awslambda.New(awslambda.Options{}))
	t.Cleanup(func() { r.Close() })
	return r
}

// fn is a function with provider p, given as the API's JSON object.
func fn(t *testing.T, id, provider string) functions.Function {
	t.Helper()
	var p functions.Provider
	if err := json.Unmarshal([]byte(provider), &p); err != nil {
		t.Fatalf("provider %s: %v", provider, err)
	}
	return functions.Function{ID: id, Provider: p}
}

const (
	lambdaP   = `{"type":"awslambda","arn":"arn:aws:lambda:us-east-1:1:function:f","region":"us-east-1"}`
	withKeysP = `{"type":"awslambda","arn":"arn:aws:lambda:us-east-1:1:function:f","region":"us-east-1","awsAccessKeyId":"AKID","awsSecretAccessKey":"secret","awsSessionToken":"token"}`
	httpP     = `{"type":"http","url":"http://127.0.0.1:8080/fn"}`
)

func TestRegistryValidate(t *testing.T) {
	r := registry(t)
	timeout := func(f functions.Function, d string) functions.Function { f.Timeout = d; return f }
	inFlight := func(f functions.Function, n int) functions.Function { f.MaxInFlight = n; return f }
	tests := []struct {
		name    string
		f       functions.Function
		wantErr string // substring; "" means valid
	}{
		{"http", fn(t, "a.b-c_D9", httpP), ""},
		{"https", fn(t, "f", `{"type":"http","url":"https://example.com"}`), ""},
		{"lambda", fn(t, "f", lambdaP), ""},
		{"lambda with keys", fn(t, "f", withKeysP), ""},
		{"field names in another case", fn(t, "f", `{"Type":"http","URL":"http://h"}`), ""},
		{"timeout", timeout(fn(t, "f", httpP), "2500ms"), ""},
		{"bad timeout", timeout(fn(t, "f", httpP), "5"), "timeout"},
		{"zero timeout", timeout(fn(t, "f", httpP), "0s"), "timeout"},
		{"long timeout", timeout(fn(t, "f", httpP), "16m"), "timeout"},
		{"maxInFlight", inFlight(fn(t, "f", httpP), 5), ""},
		{"negative maxInFlight", inFlight(fn(t, "f", httpP), -1), "maxInFlight"},
		{"huge maxInFlight", inFlight(fn(t, "f", httpP), 1_000_000), "maxInFlight"},
		{"no id", fn(t, "", httpP), "functionId is required"},
		{"bad id", fn(t, "a/b", httpP), "may contain only"},
		{"id with space", fn(t, "a b", httpP), "may contain only"},
		{"long id", fn(t, strings.Repeat("a", 257), httpP), "longer than"},
		{"no provider", functions.Function{ID: "f"}, "provider.type is required"},
		{"no type", fn(t, "f", `{"url":"http://h"}`), "provider.type is required"},
		{"unknown type", fn(t, "f", `{"type":"gcf"}`), `provider.type "gcf" is not supported (use "http" or "awslambda")`},
		{"http no url", fn(t, "f", `{"type":"http"}`), "provider.url is required for type http"},
		{"relative url", fn(t, "f", `{"type":"http","url":"/fn"}`), "absolute http"},
		{"ftp url", fn(t, "f", `{"type":"http","url":"ftp://x/y"}`), "absolute http"},
		{"no host", fn(t, "f", `{"type":"http","url":"http://:80/y"}`), "absolute http"},
		{"credentials in url", fn(t, "f", `{"type":"http","url":"http://u:p@h/y"}`), "credentials"},
		{"http with arn", fn(t, "f", `{"type":"http","url":"http://h","arn":"x"}`), `unknown field "provider.arn": provider of type http does not take arn`},
		{"lambda with url", fn(t, "f", `{"type":"awslambda","arn":"a","region":"r","url":"http://h"}`), "provider of type awslambda does not take url"},
		{"url not a string", fn(t, "f", `{"type":"http","url":42}`), "field provider.url must be a JSON string"},
		{"lambda no arn", fn(t, "f", `{"type":"awslambda","region":"us-east-1"}`), "arn is required"},
		{"lambda no region", fn(t, "f", `{"type":"awslambda","arn":"a"}`), "region is required"},
		{"lambda bad region", fn(t, "f", `{"type":"awslambda","arn":"a","region":"US East"}`), "not a region"},
		{"lambda key without secret", fn(t, "f", `{"type":"awslambda","arn":"a","region":"r","awsAccessKeyId":"AKID"}`), "go together"},
		{"lambda token without keys", fn(t, "f", `{"type":"awslambda","arn":"a","region":"r","awsSessionToken":"t"}`), "needs"},
		{"lambda marker as secret", fn(t, "f", `{"type":"awslambda","arn":"a","region":"r","awsAccessKeyId":"AKID","awsSecretAccessKey":"*****"}`), "redaction marker"},
		{"lambda marker as token", fn(t, "f", `{"type":"awslambda","arn":"a","region":"r","awsAccessKeyId":"AKID","awsSecretAccessKey":"s","awsSessionToken":"*****"}`), "redaction marker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Validate(tt.f)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if got.ID != tt.f.ID || got.Timeout != tt.f.Timeout || got.Provider.Type != tt.f.Provider.Type {
					t.Fatalf("Validate() changed the function: %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
			if errkind.Of(err) != errkind.Invalid {
				t.Fatalf("kind = %v, want Invalid", errkind.Of(err))
			}
		})
	}
}

func TestRegistryRedact(t *testing.T) {
	r := registry(t)
	tests := []struct {
		name, provider, want string
	}{
		{"http", httpP, httpP},
		{"lambda without keys", lambdaP, lambdaP},
		{"lambda with keys", withKeysP,
			`{"type":"awslambda","arn":"arn:aws:lambda:us-east-1:1:function:f","region":"us-east-1","awsAccessKeyId":"AKID","awsSecretAccessKey":"*****","awsSessionToken":"*****"}`},
		// Secrets that cannot be told apart are not shown at all.
		{"unknown type", `{"type":"gcf","token":"s3cr3t"}`, `{"type":"gcf"}`},
		{"no provider", `null`, `{"type":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fn(t, "f", tt.provider)
			before := string(f.Provider.Config)
			got, err := json.Marshal(r.Redact(f).Provider)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("Redact shows %s, want %s", got, tt.want)
			}
			if string(f.Provider.Config) != before {
				t.Fatal("Redact changed its argument")
			}
		})
	}
}

func TestRegistryMerge(t *testing.T) {
	r := registry(t)
	stored := fn(t, "f", withKeysP)
	tests := []struct {
		name, old, update string
		want, wantErr     string
	}{
		{"markers keep the stored secrets", withKeysP,
			`{"type":"awslambda","arn":"a","region":"eu-west-1","awsAccessKeyId":"AKID","awsSecretAccessKey":"*****","awsSessionToken":"*****"}`,
			`{"type":"awslambda","arn":"a","region":"eu-west-1","awsAccessKeyId":"AKID","awsSecretAccessKey":"secret","awsSessionToken":"token"}`, ""},
		{"new secrets replace them", withKeysP,
			`{"type":"awslambda","arn":"a","region":"r","awsAccessKeyId":"AKID2","awsSecretAccessKey":"new"}`,
			`{"type":"awslambda","arn":"a","region":"r","awsAccessKeyId":"AKID2","awsSecretAccessKey":"new"}`, ""},
		{"a marker for a secret never stored stands for none", lambdaP,
			`{"type":"awslambda","arn":"a","region":"r","awsSessionToken":"*****"}`,
			`{"type":"awslambda","arn":"a","region":"r"}`, ""},
		{"a change of type keeps no secret", httpP,
			`{"type":"awslambda","arn":"a","region":"r","awsAccessKeyId":"AKID","awsSecretAccessKey":"*****"}`,
			"", "redaction marker"},
		{"http to http", httpP, `{"type":"http","url":"https://example.com/v2"}`, `{"type":"http","url":"https://example.com/v2"}`, ""},
		{"the update is validated", withKeysP, `{"type":"awslambda","arn":"a"}`, "", "region is required"},
		{"strictly", withKeysP, `{"type":"awslambda","arn":"a","region":"r","secret":"x"}`, "", `unknown field "provider.secret"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Merge(fn(t, "f", tt.old), fn(t, "f", tt.update))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errkind.Of(err) != errkind.Invalid {
					t.Fatalf("Merge() = %v, want an Invalid error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := json.Marshal(got.Provider); string(b) != tt.want {
				t.Fatalf("Merge() = %s, want %s", b, tt.want)
			}
		})
	}
	if b, _ := json.Marshal(stored.Provider); string(b) != withKeysP {
		t.Fatalf("Merge changed the stored function: %s", b)
	}
}

// TestStoredJSONCompatible decodes functions exactly as the gateway stored
// them before providers were registered (and as the API showed them) and
// checks that they read, validate and encode again to the same bytes.
func TestStoredJSONCompatible(t *testing.T) {
	r := registry(t)
	for _, stored := range []string{
		// Produced by the previous Function and Provider structs with
		// encoding/json, which escapes &, < and >.
		`{"functionId":"hello","provider":{"type":"http","url":"http://127.0.0.1:9/hello?a=1\u0026b=\u003c2\u003e"}}`,
		`{"functionId":"lam","provider":{"type":"awslambda","arn":"arn:aws:lambda:us-east-1:1:function:f","region":"us-east-1"},"timeout":"2s"}`,
		`{"functionId":"keys","provider":{"type":"awslambda","arn":"arn:aws:lambda:us-east-1:1:function:f","region":"us-east-1","awsAccessKeyId":"AKID","awsSecretAccessKey":"s3cr3t","awsSessionToken":"t0k3n"}}`,
	} {
		var f functions.Function
		if err := json.Unmarshal([]byte(stored), &f); err != nil {
			t.Fatalf("decode %s: %v", stored, err)
		}
		if b, err := json.Marshal(f); err != nil || string(b) != stored {
			t.Fatalf("encode again = %s, %v\nwant %s", b, err, stored)
		}
		v, err := r.Validate(f)
		if err != nil {
			t.Fatalf("stored %s does not validate: %v", stored, err)
		}
		if b, _ := json.Marshal(v); string(b) != stored {
			t.Fatalf("validated = %s\nwant %s", b, stored)
		}
		inv, err := r.Invoker(f)
		if err != nil || inv == nil {
			t.Fatalf("Invoker(%s) = %v, %v", stored, inv, err)
		}
		if c, ok := inv.(io.Closer); ok {
			c.Close()
		}
	}
	// A client's field order and spacing become the canonical form.
	var f functions.Function
	json.Unmarshal([]byte(`{"provider":{ "region":"us-east-1", "arn":"a", "type":"awslambda" },"functionId":"f"}`), &f)
	v, err := r.Validate(f)
	if b, _ := json.Marshal(v); err != nil || string(b) != `{"functionId":"f","provider":{"type":"awslambda","arn":"a","region":"us-east-1"}}` {
		t.Fatalf("canonical form = %s, %v", b, err)
	}
}

func TestProviderJSON(t *testing.T) {
	for _, tt := range []struct{ in, wantType, wantConfig string }{
		{`{"type":"http","url":"u"}`, "http", `{"url":"u"}`},
		{`{"url":"u","type":"http"}`, "http", `{"url":"u"}`},
		{`{"type":"http"}`, "http", `{}`},
		{`{}`, "", `{}`},
		{`{"a":{"type":"x"},"type":"t","b":[1]}`, "t", `{"a":{"type":"x"},"b":[1]}`},
		// As encoding/json matched the former struct's field.
		{`{"Type":"http","URL":"u"}`, "http", `{"URL":"u"}`},
		{`{"type":"a","TYPE":"b"}`, "b", `{}`},
	} {
		var p functions.Provider
		if err := json.Unmarshal([]byte(tt.in), &p); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if string(p.Type) != tt.wantType || string(p.Config) != tt.wantConfig {
			t.Errorf("%s = type %q config %s, want %q %s", tt.in, p.Type, p.Config, tt.wantType, tt.wantConfig)
		}
	}
	// Wrong JSON types are reported with the field's path, as the API's
	// strict decoder reports the rest of a request.
	for in, want := range map[string]string{
		`{"provider":"http"}`:        "provider",
		`{"provider":{"type":42}}`:   "provider.type",
		`{"provider":{"type":null}}`: "",
	} {
		var f functions.Function
		err := json.Unmarshal([]byte(in), &f)
		var te *json.UnmarshalTypeError
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", in, err)
		case want != "" && (!errors.As(err, &te) || te.Field != want):
			t.Errorf("%s: error %v, want a type error on field %s", in, err, want)
		}
	}
	if b, err := json.Marshal(functions.Provider{Type: "http"}); err != nil || string(b) != `{"type":"http"}` {
		t.Errorf("no config = %s, %v", b, err)
	}
	if _, err := json.Marshal(functions.Provider{Type: "http", Config: json.RawMessage(`[1]`)}); err == nil {
		t.Error("a configuration that is not an object encoded")
	}
}

// closerKind is a provider kind that counts Close calls.
type closerKind struct {
	typ    functions.ProviderType
	closed *int
}

func (k closerKind) Type() functions.ProviderType { return k.typ }
func (k closerKind) NewConfig() functions.Config  { return new(httpfn.Config) }
func (k closerKind) Invoker(functions.Function, functions.Config) (functions.Invoker, error) {
	return nil, errors.New("no invoker")
}
func (k closerKind) Close() error { *k.closed++; return errors.New("closed " + string(k.typ)) }

func TestRegistryCloseAndInvoker(t *testing.T) {
	var n int
	r := functions.NewRegistry(closerKind{"a", &n}, closerKind{"b", &n})
	if err := r.Close(); n != 2 || err == nil || !strings.Contains(err.Error(), "closed a") || !strings.Contains(err.Error(), "closed b") {
		t.Fatalf("Close = %v after %d closes, want both closed and both errors", err, n)
	}
	if _, err := r.Invoker(fn(t, "f", `{"type":"c"}`)); err == nil || !strings.Contains(err.Error(), `"c" is not supported`) {
		t.Fatalf("Invoker of an unknown type = %v", err)
	}
	if _, err := r.Invoker(fn(t, "f", `{"type":"a"}`)); err == nil || !strings.Contains(err.Error(), `function "f"`) {
		t.Fatalf("Invoker error = %v, want it to name the function", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a type registered twice did not panic")
		}
	}()
	functions.NewRegistry(closerKind{"a", &n}, closerKind{"a", &n})
}

// TestInvokerReadsStoredLeniently: a field written by a newer gateway does
// not stop this one from invoking the function.
func TestInvokerReadsStoredLeniently(t *testing.T) {
	r := registry(t)
	if _, err := r.Invoker(fn(t, "f", `{"type":"http","url":"http://h/","pool":"new"}`)); err != nil {
		t.Fatal(err)
	}
}

func TestKeys(t *testing.T) {
	for got, want := range map[string]string{
		functions.SpaceRoot(functions.DefaultSpace): "spaces/default/",
		functions.FunctionsPrefix("s1"):             "spaces/s1/functions/",
		functions.FunctionKey("s1", "f"):            "spaces/s1/functions/f",
		functions.UsesPrefix("s1", "f"):             "spaces/s1/uses/f/",
		functions.UseKey("s1", "f", "sub"):          "spaces/s1/uses/f/sub",
	} {
		if got != want {
			t.Errorf("key %q, want %q", got, want)
		}
	}
	for name, ok := range map[string]bool{"default": true, "team-a.prod_1": true, "": false, "a/b": false, strings.Repeat("s", 257): false} {
		if err := functions.ValidateSpace(name); (err == nil) != ok {
			t.Errorf("ValidateSpace(%q) = %v", name, err)
		}
	}
}
