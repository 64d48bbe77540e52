package functions_test

import (
	"strings"
	"testing"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
)

func TestValidate(t *testing.T) {
	lambda := functions.Provider{Type: functions.AWSLambda, ARN: "arn:aws:lambda:us-east-1:1:function:f", Region: "us-east-1"}
	withKeys := lambda
	withKeys.AWSAccessKeyID, withKeys.AWSSecretAccessKey, withKeys.AWSSessionToken = "AKID", "secret", "token"
	onlyKeyID := lambda
	onlyKeyID.AWSAccessKeyID = "AKID"
	tokenOnly := lambda
	tokenOnly.AWSSessionToken = "t"
	badRegion := lambda
	badRegion.Region = "US East"
	httpP := functions.Provider{Type: functions.HTTP, URL: "http://127.0.0.1:8080/fn"}

	tests := []struct {
		name    string
		f       functions.Function
		wantErr string // substring; "" means valid
	}{
		{"http", functions.Function{ID: "a.b-c_D9", Provider: httpP}, ""},
		{"https", functions.Function{ID: "f", Provider: functions.Provider{Type: "http", URL: "https://example.com"}}, ""},
		{"lambda", functions.Function{ID: "f", Provider: lambda}, ""},
		{"lambda with keys", functions.Function{ID: "f", Provider: withKeys}, ""},
		{"timeout", functions.Function{ID: "f", Provider: httpP, Timeout: "2500ms"}, ""},
		{"bad timeout", functions.Function{ID: "f", Provider: httpP, Timeout: "5"}, "timeout"},
		{"zero timeout", functions.Function{ID: "f", Provider: httpP, Timeout: "0s"}, "timeout"},
		{"long timeout", functions.Function{ID: "f", Provider: httpP, Timeout: "16m"}, "timeout"},
		{"no id", functions.Function{Provider: httpP}, "functionId is required"},
		{"bad id", functions.Function{ID: "a/b", Provider: httpP}, "may contain only"},
		{"id with space", functions.Function{ID: "a b", Provider: httpP}, "may contain only"},
		{"long id", functions.Function{ID: strings.Repeat("a", 257), Provider: httpP}, "longer than"},
		{"no provider", functions.Function{ID: "f"}, "provider.type is required"},
		{"unknown type", functions.Function{ID: "f", Provider: functions.Provider{Type: "gcf"}}, "not supported"},
		{"http no url", functions.Function{ID: "f", Provider: functions.Provider{Type: "http"}}, "url is required"},
		{"relative url", functions.Function{ID: "f", Provider: functions.Provider{Type: "http", URL: "/fn"}}, "absolute http"},
		{"ftp url", functions.Function{ID: "f", Provider: functions.Provider{Type: "http", URL: "ftp://x/y"}}, "absolute http"},
		{"no host", functions.Function{ID: "f", Provider: functions.Provider{Type: "http", URL: "http://:80/y"}}, "absolute http"},
		{"credentials in url", functions.Function{ID: "f", Provider: functions.Provider{Type: "http", URL: "http://u:p@h/y"}}, "credentials"},
		{"http with arn", functions.Function{ID: "f", Provider: functions.Provider{Type: "http", URL: "http://h", ARN: "x"}}, "only url"},
		{"lambda no arn", functions.Function{ID: "f", Provider: functions.Provider{Type: "awslambda", Region: "us-east-1"}}, "arn is required"},
		{"lambda no region", functions.Function{ID: "f", Provider: functions.Provider{Type: "awslambda", ARN: "a"}}, "region is required"},
		{"lambda bad region", functions.Function{ID: "f", Provider: badRegion}, "not a region"},
		{"lambda key without secret", functions.Function{ID: "f", Provider: onlyKeyID}, "go together"},
		{"lambda token without keys", functions.Function{ID: "f", Provider: tokenOnly}, "needs"},
		{"lambda with url", functions.Function{ID: "f", Provider: functions.Provider{Type: "awslambda", ARN: "a", Region: "r", URL: "http://h"}}, "does not take url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
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

func TestRedact(t *testing.T) {
	f := functions.Function{ID: "f", Provider: functions.Provider{Type: "awslambda", ARN: "a", Region: "r",
		AWSAccessKeyID: "AKID", AWSSecretAccessKey: "s3cr3t", AWSSessionToken: "t0k3n"}}
	r := f.Redact()
	if r.Provider.AWSSecretAccessKey != functions.Redacted || r.Provider.AWSSessionToken != functions.Redacted {
		t.Fatalf("secrets not redacted: %+v", r.Provider)
	}
	if r.Provider.AWSAccessKeyID != "AKID" {
		t.Fatalf("access key id should stay visible, got %q", r.Provider.AWSAccessKeyID)
	}
	if f.Provider.AWSSecretAccessKey != "s3cr3t" {
		t.Fatal("Redact changed its receiver")
	}
	if got := (functions.Function{}).Redact(); got.Provider.AWSSecretAccessKey != "" {
		t.Fatal("Redact invented a secret")
	}
}
