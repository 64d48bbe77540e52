package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The backend's answer to everything: a valid response object for the
// gateway's http events, and a small fixed body for direct and proxied
// requests alike.
var backendBody = []byte(`{"statusCode":200,"body":"ok"}`)

// deliveries is what the backend's GET /count answers.
type deliveries struct {
	Count int64 `json:"count"`
	// Last is when the latest delivery arrived, in Unix nanoseconds.
	Last int64 `json:"last"`
	// Unique counts distinct deliveries: (event id, subscriber) pairs.
	// Delivery is at least once, so Count - Unique are repeats.
	Unique int64 `json:"unique"`
	// Requests counts every other request: direct, proxied, http events,
	// invocations.
	Requests int64 `json:"requests"`
}

// runBackend serves the fast backend function until it is killed. POSTs to
// /deliver/… are custom-event deliveries and are counted.
func runBackend(listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	var count, last, requests atomic.Int64
	var mu sync.Mutex
	seen := make(map[string]struct{})
	ct := []string{"application/json"}
	cl := []string{strconv.Itoa(len(backendBody))}
	h := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/count" && r.Method == http.MethodGet {
			mu.Lock()
			unique := int64(len(seen))
			mu.Unlock()
			b, _ := json.Marshal(deliveries{Count: count.Load(), Last: last.Load(), Unique: unique, Requests: requests.Load()})
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/deliver/") {
			body, _ := io.ReadAll(r.Body)
			key := r.URL.Path + " " + eventID(body)
			mu.Lock()
			seen[key] = struct{}{}
			mu.Unlock()
			count.Add(1)
			now := time.Now().UnixNano()
			for {
				old := last.Load()
				if old >= now || last.CompareAndSwap(old, now) {
					break
				}
			}
		} else {
			io.Copy(io.Discard, r.Body)
			requests.Add(1)
		}
		hdr := w.Header()
		hdr["Content-Type"] = ct
		hdr["Content-Length"] = cl
		w.Write(backendBody)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(h),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	fmt.Println(ln.Addr())
	return srv.Serve(ln)
}

// eventID returns the "id" of an event envelope, which the gateway writes
// second, after "event"; a full JSON decode would cost the backend more
// than the find.
func eventID(b []byte) string {
	_, rest, ok := bytes.Cut(b, []byte(`"id":"`))
	if !ok {
		return ""
	}
	id, _, _ := bytes.Cut(rest, []byte(`"`))
	return string(id)
}

// runProxy serves a bare httputil.ReverseProxy to upstream: the floor cost
// of any proxy written in Go. One transport, pooled for conns concurrent
// requests.
func runProxy(listen, upstream string, conns int) error {
	u, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = max(2*conns, 100)
	tr.MaxIdleConns = tr.MaxIdleConnsPerHost
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: tr,
	}
	srv := &http.Server{
		Handler:           rp,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	fmt.Println(ln.Addr())
	return srv.Serve(ln)
}
