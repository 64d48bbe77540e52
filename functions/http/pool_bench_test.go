package httpfn

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/functions/upstream"
)

// BenchmarkInvokeBackends compares the invoke path of a function with one
// url, with one backend, and with three backends under each policy: the
// same real servers on 127.0.0.1, the same payload and response. Besides
// ns/op it reports cpu-ns/op, the CPU time (user and system) the process
// spent per call, client and servers together, which is what the
// three-backends target (at most 5 % more than one) is about.
func BenchmarkInvokeBackends(b *testing.B) {
	resp := []byte(`{"ok":true,"id":"0f8fad5b-d9cb-469f-a165-70867728950e"}`)
	var urls []string
	for range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", fmt.Sprint(len(resp)))
			_, _ = w.Write(resp)
		}))
		defer srv.Close()
		urls = append(urls, srv.URL+"/fn")
	}
	p := New(Options{})
	defer p.Close()
	reg := functions.NewRegistry(p)
	payload := []byte(`{"eventType":"user.created","data":{"id":7,"name":"ada"}}`)

	for _, bc := range []struct{ name, cfg string }{
		{"url", fmt.Sprintf(`{"url":%q}`, urls[0])},
		{"backends=1", fmt.Sprintf(`{"backends":%s}`, backendsJSON(urls[:1]))},
		{"backends=3", fmt.Sprintf(`{"backends":%s}`, backendsJSON(urls))},
		{"backends=3/weighted", fmt.Sprintf(`{"backends":%s}`, backendsJSON(urls, 1, 2, 3))},
		{"backends=3/least-outstanding", fmt.Sprintf(`{"backends":%s,"balance":"least-outstanding"}`, backendsJSON(urls))},
		{"backends=3/hash", fmt.Sprintf(`{"backends":%s,"balance":"hash","hashOn":"header:X-User"}`, backendsJSON(urls))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f, err := reg.Validate(functions.Function{ID: "f", Provider: functions.Provider{Type: Type, Config: json.RawMessage(bc.cfg)}})
			if err != nil {
				b.Fatal(err)
			}
			inv, err := reg.Invoker(f)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			ctx = functions.WithAffinityKey(ctx, "user-42")
			b.ReportAllocs()
			before := cpuTime(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := inv.Invoke(ctx, payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-before)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time the process has used, in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkPick is the choice of a backend alone, of three, per policy.
func BenchmarkPick(b *testing.B) {
	urls := []string{"http://10.0.0.1/fn", "http://10.0.0.2/fn", "http://10.0.0.3/fn"}
	p := New(Options{})
	for _, bc := range []struct{ name, cfg string }{
		{"round-robin", fmt.Sprintf(`{"backends":%s}`, backendsJSON(urls))},
		{"weighted", fmt.Sprintf(`{"backends":%s}`, backendsJSON(urls, 1, 2, 3))},
		{"least-outstanding", fmt.Sprintf(`{"backends":%s,"balance":"least-outstanding"}`, backendsJSON(urls))},
		{"hash", fmt.Sprintf(`{"backends":%s,"balance":"hash","hashOn":"header:X-User"}`, backendsJSON(urls))},
		{"hash/weighted", fmt.Sprintf(`{"backends":%s,"balance":"hash","hashOn":"header:X-User"}`, backendsJSON(urls, 1, 2, 3))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var c Config
			if err := json.Unmarshal([]byte(bc.cfg), &c); err != nil {
				b.Fatal(err)
			}
			pl := p.newPool("f", &c)
			ctx := functions.WithAffinityKey(context.Background(), "user-42")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key, h, keyed := pl.key(ctx, nil)
					if be, _ := pl.choose(ctx, pl.current(), key, h, keyed, 0); be == nil {
						b.Error("no backend")
						return
					}
				}
			})
		})
	}
}

// BenchmarkThreeBackendsVsOne measures the target of issue 16 directly:
// the CPU per call of a function with three backends over that of one
// with one url, as a ratio. The two alternate in blocks of calls (in
// turn first and second), so that whatever else loads the machine falls
// on both alike. Each op is one call of each.
func BenchmarkThreeBackendsVsOne(b *testing.B) {
	var urls []string
	for range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"ok":true}`))
		}))
		defer srv.Close()
		urls = append(urls, srv.URL+"/fn")
	}
	p := New(Options{})
	defer p.Close()
	for _, bc := range []struct{ name, cfg string }{
		{"round-robin", fmt.Sprintf(`{"backends":%s}`, backendsJSON(urls))},
		{"weighted", fmt.Sprintf(`{"backends":%s}`, backendsJSON(urls, 1, 2, 3))},
		{"least-outstanding", fmt.Sprintf(`{"backends":%s,"balance":"least-outstanding"}`, backendsJSON(urls))},
		{"hash", fmt.Sprintf(`{"backends":%s,"balance":"hash","hashOn":"header:X-User"}`, backendsJSON(urls))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var c Config
			if err := json.Unmarshal([]byte(bc.cfg), &c); err != nil {
				b.Fatal(err)
			}
			one, three := p.URLInvoker(urls[0]), p.newPool("f", &c)
			defer three.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			ctx = functions.WithAffinityKey(ctx, "user-42")
			payload := []byte(`{"eventType":"user.created","data":{"id":7,"name":"ada"}}`)
			run := func(inv functions.Invoker, n int) int64 {
				t0 := cpuTime(b)
				for range n {
					if _, err := inv.Invoke(ctx, payload); err != nil {
						b.Fatal(err)
					}
				}
				return cpuTime(b) - t0
			}
			const block = 200
			var cpu1, cpu3 int64
			b.ResetTimer()
			for done, turn := 0, 0; done < b.N; turn++ {
				n := min(block, b.N-done)
				if turn%2 == 0 {
					cpu1 += run(one, n)
					cpu3 += run(three, n)
				} else {
					cpu3 += run(three, n)
					cpu1 += run(one, n)
				}
				done += n
			}
			b.ReportMetric(float64(cpu1)/float64(b.N), "cpu-ns/call-1")
			b.ReportMetric(float64(cpu3)/float64(b.N), "cpu-ns/call-3")
			b.ReportMetric(float64(cpu3)/float64(cpu1), "ratio")
		})
	}
}

// BenchmarkSelect is the choice of a backend of three with a selector,
// against the function's own policy: what the gateway adds around the
// selector's answer (here in process; a plugin's adds its RPC).
func BenchmarkSelect(b *testing.B) {
	urls := []string{"http://10.0.0.1/fn", "http://10.0.0.2/fn", "http://10.0.0.3/fn"}
	c := Config{Backends: []Backend{{URL: urls[0]}, {URL: urls[1]}, {URL: urls[2]}}}
	for _, bc := range []struct {
		name string
		sel  upstream.Selector
	}{{"policy", nil}, {"selector", selectFunc(func([]upstream.BackendStat) int { return 1 })}} {
		b.Run(bc.name, func(b *testing.B) {
			pl := New(Options{Selector: bc.sel}).newPool("f", &c)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if be, _ := pl.choose(ctx, pl.current(), "", 0, false, 0); be == nil {
					b.Fatal("no backend")
				}
			}
		})
	}
}

// selectFunc is a selector that answers f's choice.
type selectFunc func([]upstream.BackendStat) int

func (f selectFunc) Select(_ context.Context, _ string, bs []upstream.BackendStat) (int, error) {
	return f(bs), nil
}
