package lambdatest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

type in struct {
	N int `json:"n"`
}

type codeError struct{ code int }

func (e codeError) Error() string { return "code" }

func post(t *testing.T, s *Server, fn, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(s.URL()+"/2015-03-31/functions/"+fn+"/invocations", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestServer(t *testing.T) {
	s := New()
	defer s.Close()
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %s, want loopback", s.URL())
	}
	s.Register("double", func(ctx context.Context, v in) (in, error) {
		lc, ok := lambdacontext.FromContext(ctx)
		if !ok || lc.AwsRequestID == "" {
			return in{}, errors.New("no lambda context")
		}
		return in{N: 2 * v.N}, nil
	})
	s.Register("fail", func(v in) error {
		if v.N == 1 {
			return codeError{1}
		}
		return errors.New("plain")
	})
	s.Register("panic", func() error { panic("kaboom") })

	resp, body := post(t, s, "double", `{"n":21}`)
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" || string(body) != `{"n":42}` {
		t.Fatalf("double: %d %q %s", resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"), body)
	}

	// By ARN, with a qualifier.
	resp, body = post(t, s, "arn:aws:lambda:us-east-1:123456789012:function:double:$LATEST", `{"n":1}`)
	if resp.StatusCode != 200 || string(body) != `{"n":2}` {
		t.Fatalf("double by ARN: %d %s", resp.StatusCode, body)
	}

	for _, tc := range []struct{ fn, body, errType, msg string }{
		{"fail", `{"n":1}`, "codeError", "code"},
		{"fail", `{"n":2}`, "errorString", "plain"},
		{"panic", `{}`, "string", "kaboom"},
		{"double", `not json`, "", ""},
	} {
		resp, body = post(t, s, tc.fn, tc.body)
		if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" {
			t.Fatalf("%s %s: status %d, X-Amz-Function-Error %q", tc.fn, tc.body, resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"))
		}
		var doc struct {
			ErrorMessage string `json:"errorMessage"`
			ErrorType    string `json:"errorType"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.ErrorMessage == "" {
			t.Fatalf("%s: error body %s (%v)", tc.fn, body, err)
		}
		if tc.errType != "" && (doc.ErrorType != tc.errType || doc.ErrorMessage != tc.msg) {
			t.Errorf("%s %s: error %+v, want type %q message %q", tc.fn, tc.body, doc, tc.errType, tc.msg)
		}
	}

	resp, body = post(t, s, "missing", `{}`)
	if resp.StatusCode != 404 || resp.Header.Get("X-Amzn-ErrorType") != "ResourceNotFoundException" || !strings.Contains(string(body), "Function not found") {
		t.Fatalf("missing: %d %q %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body)
	}

	if got := s.Calls("double"); got != 3 {
		t.Errorf("Calls(double) = %d, want 3", got)
	}
	if got := s.Calls("fail"); got != 2 {
		t.Errorf("Calls(fail) = %d, want 2", got)
	}
	if got := s.Calls("missing"); got != 0 {
		t.Errorf("Calls(missing) = %d, want 0", got)
	}
	inv := s.Invocations()
	if len(inv) != 7 || inv[6].FunctionName != "missing" || inv[6].Function != "" || inv[1].Function != "double" {
		t.Errorf("Invocations = %+v", inv)
	}
	if s.Conns() < 1 {
		t.Errorf("Conns = %d", s.Conns())
	}
}

func TestParseAuthorization(t *testing.T) {
	akid, region := parseAuthorization("AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/lambda/aws4_request, SignedHeaders=host, Signature=abc")
	if akid != "AKID" || region != "eu-west-1" {
		t.Fatalf("got %q %q", akid, region)
	}
	if akid, region := parseAuthorization(""); akid != "" || region != "" {
		t.Fatalf("empty header gave %q %q", akid, region)
	}
}

func TestTLS(t *testing.T) {
	s := NewTLS()
	defer s.Close()
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") || !strings.Contains(string(s.CertificatePEM()), "BEGIN CERTIFICATE") {
		t.Fatalf("URL %s, certificate %q", s.URL(), s.CertificatePEM())
	}
	plain := New()
	defer plain.Close()
	if plain.CertificatePEM() != nil {
		t.Fatal("plain server has a certificate")
	}
}
