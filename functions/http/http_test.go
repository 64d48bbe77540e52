package httpfn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/event-gateway/event-gateway/functions"
)

// server starts an httptest server on 127.0.0.1 that counts the
// connections it accepts.
func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func provider(t *testing.T, opts Options) *Provider {
	t.Helper()
	p := New(opts)
	t.Cleanup(func() { p.Close() })
	return p
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func echo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method "+r.Method, http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		http.Error(w, "content-type "+ct, http.StatusUnsupportedMediaType)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.Copy(w, r.Body)
}

func TestInvokeRoundTrip(t *testing.T) {
	t.Parallel()
	srv, _ := server(t, echo)
	p := provider(t, Options{})

	in := []byte(`{"event":"user.created","data":{"id":7}}`)
	out, err := p.URLInvoker(srv.URL+"/fn?x=1").Invoke(ctxTimeout(t, 5*time.Second), in)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("response = %q, want %q", out, in)
	}
}

func TestInvokeEmptyPayloadAndResponse(t *testing.T) {
	t.Parallel()
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			t.Errorf("ContentLength = %d, want 0", r.ContentLength)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	p := provider(t, Options{})
	out, err := p.URLInvoker(srv.URL).Invoke(ctxTimeout(t, 5*time.Second), nil)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if len(out) != 0 {
		t.Fatalf("response = %q, want empty", out)
	}
}

func TestInvokeNon2xxIsFunctionFailed(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusInternalServerError, http.StatusBadRequest, http.StatusFound} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(code)
				_, _ = w.Write([]byte(`{"error":"boom"}`))
			})
			p := provider(t, Options{})
			out, err := p.URLInvoker(srv.URL).Invoke(ctxTimeout(t, 5*time.Second), []byte(`{}`))
			if !errors.Is(err, functions.ErrFunctionFailed) {
				t.Fatalf("err = %v, want ErrFunctionFailed", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(code)) {
				t.Errorf("error %q does not name status %d", err, code)
			}
			if out != nil {
				t.Errorf("response = %q, want nil", out)
			}
		})
	}
}

func TestInvokeTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release) // before srv.Close, which waits for handlers
	p := provider(t, Options{})

	start := time.Now()
	_, err := p.URLInvoker(srv.URL).Invoke(ctxTimeout(t, 100*time.Millisecond), []byte(`{}`))
	if !errors.Is(err, functions.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if errors.Is(err, functions.ErrFunctionFailed) {
		t.Fatalf("err = %v, must not be ErrFunctionFailed", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Invoke took %v after a 100ms deadline", d)
	}
}

func TestInvokeTimeoutWhileReadingBody(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"partial":`))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	p := provider(t, Options{})
	_, err := p.URLInvoker(srv.URL).Invoke(ctxTimeout(t, 200*time.Millisecond), []byte(`{}`))
	if !errors.Is(err, functions.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestInvokeDefaultTimeoutWithoutDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	p := provider(t, Options{DefaultTimeout: 100 * time.Millisecond})
	_, err := p.URLInvoker(srv.URL).Invoke(context.Background(), []byte(`{}`))
	if !errors.Is(err, functions.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestInvokeCanceledIsNotTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	p := provider(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := p.URLInvoker(srv.URL).Invoke(ctx, []byte(`{}`))
	if err == nil || errors.Is(err, functions.ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled and not ErrTimeout", err)
	}
}

func TestInvokeResponseTooLarge(t *testing.T) {
	t.Parallel()
	const limit = 1024
	cases := []struct {
		name    string
		size    int
		chunked bool
		wantErr error
	}{
		{"declared at limit", limit, false, nil},
		{"declared over limit", limit + 1, false, functions.ErrResponseTooLarge},
		{"declared far over limit", 10 * limit, false, functions.ErrResponseTooLarge},
		{"chunked at limit", limit, true, nil},
		{"chunked over limit", limit + 1, true, functions.ErrResponseTooLarge},
		{"chunked far over limit", 100 * limit, true, functions.ErrResponseTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := bytes.Repeat([]byte("x"), tc.size)
			srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.chunked {
					// Two flushed writes make net/http use chunked
					// encoding with no Content-Length.
					_, _ = w.Write(body[:1])
					w.(http.Flusher).Flush()
					_, _ = w.Write(body[1:])
					return
				}
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				_, _ = w.Write(body)
			})
			p := provider(t, Options{MaxResponseBytes: limit})
			out, err := p.URLInvoker(srv.URL).Invoke(ctxTimeout(t, 5*time.Second), []byte(`{}`))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !bytes.Equal(out, body) {
				t.Fatalf("response has %d bytes, want %d", len(out), len(body))
			}
		})
	}
}

func TestDefaultMaxResponseBytes(t *testing.T) {
	t.Parallel()
	if got := New(Options{}).maxResponse; got != 6<<20 {
		t.Fatalf("default MaxResponseBytes = %d, want 6 MiB", got)
	}
}

func TestConnectionReuse(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv, conns := server(t, func(w http.ResponseWriter, r *http.Request) {
		// Alternate success and failure: an error response must not cost
		// a connection either.
		if n.Add(1)%2 == 0 {
			http.Error(w, "nope", http.StatusInternalServerError)
			return
		}
		echo(w, r)
	})
	p := provider(t, Options{})
	inv := p.URLInvoker(srv.URL)
	for i := range 50 {
		_, err := inv.Invoke(ctxTimeout(t, 5*time.Second), []byte(`{"i":1}`))
		if i%2 == 0 && err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if i%2 == 1 && !errors.Is(err, functions.ErrFunctionFailed) {
			t.Fatalf("call %d: err = %v, want ErrFunctionFailed", i, err)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Fatalf("50 sequential calls opened %d connections, want 1", got)
	}
	// Invokers for the same host share the Provider's pool.
	if _, err := p.URLInvoker(srv.URL+"/other").Invoke(ctxTimeout(t, 5*time.Second), []byte(`{}`)); err != nil {
		t.Fatalf("second invoker: %v", err)
	}
	if got := conns.Load(); got != 1 {
		t.Fatalf("a second invoker opened a new connection (%d in all)", got)
	}
}

func TestConcurrentInvokes(t *testing.T) {
	t.Parallel()
	srv, conns := server(t, echo)
	p := provider(t, Options{})
	inv := p.URLInvoker(srv.URL)

	const workers, calls = 32, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*calls)
	for w := range workers {
		wg.Go(func() {
			for c := range calls {
				in := fmt.Appendf(nil, `{"w":%d,"c":%d}`, w, c)
				out, err := inv.Invoke(context.Background(), in)
				if err != nil {
					errs <- err
					continue
				}
				if !bytes.Equal(out, in) {
					errs <- fmt.Errorf("got %q for %q", out, in)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A call may dial just before another returns its connection to the
	// pool, so a few more than one per worker are normal; net/http's
	// default pool of 2 idle connections per host would open hundreds.
	if got := conns.Load(); got > 2*workers {
		t.Errorf("%d workers opened %d connections: idle pool too small", workers, got)
	}
}

func TestInvalidURL(t *testing.T) {
	t.Parallel()
	p := provider(t, Options{})
	for _, u := range []string{"://nope", "ftp://example.com/x"} {
		_, err := p.URLInvoker(u).Invoke(context.Background(), nil)
		if err == nil || errors.Is(err, functions.ErrFunctionFailed) {
			t.Errorf("Invoker(%q).Invoke err = %v, want a plain error", u, err)
		}
	}
}

func TestUnreachableIsPlainError(t *testing.T) {
	t.Parallel()
	// A port that was just listening and is now closed refuses at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := provider(t, Options{})
	_, err = p.URLInvoker("http://"+addr+"/fn?token=secret").Invoke(ctxTimeout(t, 5*time.Second), nil)
	if err == nil || errors.Is(err, functions.ErrFunctionFailed) || errors.Is(err, functions.ErrTimeout) {
		t.Fatalf("err = %v, want a plain error", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %q repeats the URL's query", err)
	}
}

func TestCustomTransport(t *testing.T) {
	t.Parallel()
	srv, _ := server(t, echo)
	var used atomic.Bool
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return srv.Client().Transport.RoundTrip(r)
	})
	p := provider(t, Options{Transport: rt})
	if _, err := p.URLInvoker(srv.URL).Invoke(ctxTimeout(t, 5*time.Second), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if !used.Load() {
		t.Fatal("Options.Transport was not used")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestReadBody(t *testing.T) {
	t.Parallel()
	const limit = 100
	for _, n := range []int{0, 1, 99, 100, 101, 1000} {
		data := bytes.Repeat([]byte("a"), n)
		for _, declared := range []bool{false, true} {
			size := int64(-1)
			if declared {
				size = int64(n)
			}
			got, err := readBody(iotest.OneByteReader(bytes.NewReader(data)), size, limit)
			if n > limit {
				if !errors.Is(err, functions.ErrResponseTooLarge) {
					t.Errorf("n=%d declared=%v: err = %v, want ErrResponseTooLarge", n, declared, err)
				}
				continue
			}
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("n=%d declared=%v: got %d bytes, err %v", n, declared, len(got), err)
			}
		}
	}
	// A read error other than EOF is reported.
	_, err := readBody(iotest.ErrReader(io.ErrUnexpectedEOF), -1, limit)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("err = %v, want ErrUnexpectedEOF", err)
	}
}

func TestReadBodyDeclaredSizeAllocatesOnce(t *testing.T) {
	data := bytes.Repeat([]byte("a"), 4096)
	r := bytes.NewReader(data)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(data)
		if _, err := readBody(r, int64(len(data)), 1<<20); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("readBody with a declared size made %v allocations, want 1", allocs)
	}
}

func BenchmarkInvoke(b *testing.B) {
	resp := []byte(`{"ok":true,"id":"0f8fad5b-d9cb-469f-a165-70867728950e"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(resp)))
		_, _ = w.Write(resp)
	}))
	defer srv.Close()
	p := New(Options{})
	defer p.Close()
	inv := p.URLInvoker(srv.URL + "/fn")
	payload := []byte(`{"eventType":"user.created","data":{"id":7,"name":"ada"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()

	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := inv.Invoke(ctx, payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestInvokeResponsePrefix: a caller that asks for a prefix (an async
// delivery) gets it, whatever the size of the response, with no error.
func TestInvokeResponsePrefix(t *testing.T) {
	t.Parallel()
	const limit = 1024
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
	}{{"small", 10, false}, {"declared far over limit", 100 * limit, false}, {"chunked far over limit", 100 * limit, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := bytes.Repeat([]byte("y"), tc.size)
			srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.chunked {
					_, _ = w.Write(body[:1])
					w.(http.Flusher).Flush()
					_, _ = w.Write(body[1:])
					return
				}
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				_, _ = w.Write(body)
			})
			p := provider(t, Options{MaxResponseBytes: limit})
			ctx := functions.WithResponsePrefix(ctxTimeout(t, 5*time.Second), 100)
			out, err := p.URLInvoker(srv.URL).Invoke(ctx, []byte(`{}`))
			if err != nil {
				t.Fatalf("err = %v, want none", err)
			}
			if want := body[:min(100, len(body))]; !bytes.Equal(out, want) {
				t.Fatalf("got %d bytes, want the first %d", len(out), len(want))
			}
		})
	}
}
