// Package lambdatest runs a local stand-in for the AWS Lambda Invoke API, so
// that tests can drive the real AWS SDK (and the gateway binary) against real
// Go Lambda handlers without an AWS account or network access.
//
// The server listens on 127.0.0.1 on a random port and implements
//
//	POST /2015-03-31/functions/{name}/invocations
//
// for synchronous (RequestResponse) invocations. Each registered handler is
// run through github.com/aws/aws-lambda-go/lambda.NewHandler, the same
// reflection and JSON layer a deployed Go function uses, and errors are
// reported the way Lambda reports them: status 200, header
// X-Amz-Function-Error: Unhandled and an {"errorMessage","errorType"} body.
// An unknown function gets Lambda's 404 ResourceNotFoundException.
//
// Point the SDK at it with AWS_ENDPOINT_URL_LAMBDA=<URL()> (or
// config.WithBaseEndpoint) and any static credentials: requests are not
// signature-checked, but the access key id and region the client signed
// with are recorded, so tests can see which credentials were used.
package lambdatest

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Invocation records one request the server received for a registered or
// unknown function.
type Invocation struct {
	// Function is the name the handler is registered under ("" when no
	// function matched), and FunctionName the name or ARN in the URL.
	Function     string
	FunctionName string
	// AccessKeyID and Region come from the SigV4 Authorization header;
	// SessionToken from X-Amz-Security-Token.
	AccessKeyID  string
	Region       string
	SessionToken string
	Payload      []byte
}

// Server is a running Lambda stand-in. Its methods are safe for concurrent
// use. Create it with New and stop it with Close.
type Server struct {
	srv   *httptest.Server
	seq   atomic.Int64
	conns atomic.Int64

	mu          sync.Mutex
	handlers    map[string]any
	calls       map[string]int
	invocations []Invocation
}

// New starts a plain-HTTP server on 127.0.0.1:0.
func New() *Server { return start(false) }

// NewTLS starts an HTTPS server on 127.0.0.1:0 with a self-signed
// certificate; CertificatePEM returns it for AWS_CA_BUNDLE.
func NewTLS() *Server { return start(true) }

func start(tls bool) *Server {
	s := &Server{
		handlers: map[string]any{},
		calls:    map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", s.invoke)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeAPIError(w, http.StatusNotFound, "UnknownOperationException",
			fmt.Sprintf("%s %s is not an operation this stand-in implements", r.Method, r.URL.Path))
	})
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	if tls {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	return s
}

// URL is the endpoint to give the SDK, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.srv.URL }

// CertificatePEM returns the server's certificate in PEM form, or nil for
// a plain-HTTP server.
func (s *Server) CertificatePEM() []byte {
	c := s.srv.Certificate()
	if c == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Conns reports how many connections the server has accepted, so tests
// can check that clients reuse them.
func (s *Server) Conns() int { return int(s.conns.Load()) }

// Close stops the server, waiting for requests in flight to finish.
func (s *Server) Close() { s.srv.Close() }

// Register installs handler under name, replacing any earlier one. handler
// is anything lambda.NewHandler accepts, typically a
// func(context.Context, In) (Out, error). An invalid handler makes every
// invocation of name fail as an Unhandled function error, as it would on
// Lambda.
//
// A request addressed by function ARN (arn:aws:lambda:REGION:ACCOUNT:
// function:NAME[:QUALIFIER]) reaches the handler registered under the
// full ARN if there is one, and otherwise the one under NAME.
func (s *Server) Register(name string, handler any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[name] = handler
}

// Calls reports how many invocations reached the handler registered under
// name (as given to Register).
func (s *Server) Calls(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[name]
}

// Invocations returns a copy of every request received so far, in order,
// including those for unknown functions.
func (s *Server) Invocations() []Invocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Invocation, len(s.invocations))
	copy(out, s.invocations)
	return out
}

// lookup finds the handler for the name or ARN in a request.
func (s *Server) lookup(fn string) (string, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.handlers[fn]; ok {
		return fn, h
	}
	// arn:aws:lambda:us-east-1:123456789012:function:NAME[:QUALIFIER]
	if parts := strings.Split(fn, ":"); len(parts) >= 7 && parts[0] == "arn" && parts[5] == "function" {
		if h, ok := s.handlers[parts[6]]; ok {
			return parts[6], h
		}
	}
	return "", nil
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request) {
	fn := r.PathValue("name")
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		s.writeAPIError(w, http.StatusBadRequest, "InvalidRequestContentException", "could not read request body: "+err.Error())
		return
	}
	name, h := s.lookup(fn)
	akid, region := parseAuthorization(r.Header.Get("Authorization"))
	s.mu.Lock()
	s.invocations = append(s.invocations, Invocation{
		Function:     name,
		FunctionName: fn,
		AccessKeyID:  akid,
		Region:       region,
		SessionToken: r.Header.Get("X-Amz-Security-Token"),
		Payload:      payload,
	})
	if h != nil {
		s.calls[name]++
	}
	s.mu.Unlock()

	if h == nil {
		s.writeAPIError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+fn)
		return
	}
	if t := r.Header.Get("X-Amz-Invocation-Type"); t != "" && t != "RequestResponse" {
		s.writeAPIError(w, http.StatusBadRequest, "InvalidParameterValueException",
			"this stand-in supports only the RequestResponse invocation type, not "+t)
		return
	}

	requestID := s.requestID()
	ctx := lambdacontext.NewContext(r.Context(), &lambdacontext.LambdaContext{
		AwsRequestID:       requestID,
		InvokedFunctionArn: fn,
	})
	// A fresh lambda.Handler per call: the one NewHandler returns hands
	// back bytes of a pooled buffer that its next Invoke reuses, which is
	// fine for the runtime's one-at-a-time loop but a data race here,
	// where calls to one function run concurrently.
	out, ierr := call(ctx, lambda.NewHandler(h), payload)

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	if ierr != nil {
		out, _ = json.Marshal(ierr)
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// requestID returns a new request id shaped like Lambda's (a UUID).
func (s *Server) requestID() string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", s.seq.Add(1))
}

// call runs h the way the Go runtime does, turning a returned error or a
// panic into Lambda's error document.
func call(ctx context.Context, h lambda.Handler, payload []byte) (out []byte, ierr *messages.InvokeResponse_Error) {
	defer func() {
		if v := recover(); v != nil {
			ierr = &messages.InvokeResponse_Error{Message: fmt.Sprint(v), Type: typeName(v)}
		}
	}()
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		if e, ok := err.(messages.InvokeResponse_Error); ok {
			return nil, &e
		}
		return nil, &messages.InvokeResponse_Error{Message: err.Error(), Type: typeName(err)}
	}
	return out, nil
}

// typeName names an error's type as the Go runtime's errorType does:
// errors.New gives "errorString", a *MyError gives "MyError".
func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// writeAPIError writes an error the way the Lambda API does: the code in
// the x-amzn-ErrorType header, which the SDK reads, and a JSON body.
func (s *Server) writeAPIError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Requestid", s.requestID())
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Type    string `json:"Type"`
		Message string `json:"message"`
	}{"User", message})
}

// parseAuthorization extracts the access key id and region from a SigV4
// header: "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/lambda/aws4_request, ...".
func parseAuthorization(h string) (akid, region string) {
	_, rest, ok := strings.Cut(h, "Credential=")
	if !ok {
		return "", ""
	}
	cred, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) < 3 {
		return "", ""
	}
	return parts[0], parts[2]
}
