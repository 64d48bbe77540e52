package event

import (
	"net/http"
	"testing"
	"time"

	"bytes"
	"context"
	"github.com/cloudevents/sdk-go/v2/binding"
	ceevent "github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"io"
)

// A small event as a client sends it.
var (
	benchStructured = []byte(`{"specversion":"1.0","id":"6c5a4c2e-3d5e-4d8b-9a39-0f1e2d3c4b5a","source":"/myapp/users",` +
		`"type":"user.created","time":"2024-05-01T12:00:00Z","datacontenttype":"application/json","traceid":"abc123",` +
		`"data":{"name":"Max","email":"max@example.com"}}`)
	benchBody   = []byte(`{"name":"Max","email":"max@example.com"}`)
	benchHeader = http.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Id": {"6c5a4c2e-3d5e-4d8b-9a39-0f1e2d3c4b5a"}, "Ce-Source": {"/myapp/users"},
		"Ce-Type": {"user.created"}, "Ce-Time": {"2024-05-01T12:00:00Z"}, "Ce-Traceid": {"abc123"},
		"Content-Type": {"application/json"}, "User-Agent": {"curl/8"}, "Accept": {"*/*"},
	}
	benchV01 = []byte(`{"eventType":"user.created","cloudEventsVersion":"0.1","source":"/myapp/users",` +
		`"eventID":"6c5a4c2e-3d5e-4d8b-9a39-0f1e2d3c4b5a","eventTime":"2024-05-01T12:00:00Z","contentType":"application/json",` +
		`"data":{"name":"Max","email":"max@example.com"}}`)
)

func BenchmarkDecodeStructured(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeStructured(benchStructured); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBinary(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBinary(benchHeader, benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeV01(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeV01(benchV01); err != nil {
			b.Fatal(err)
		}
	}
}

// The same decoding with the CloudEvents SDK, for comparison.
func BenchmarkSDKDecodeStructured(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var e ceevent.Event
		if err := e.UnmarshalJSON(benchStructured); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSDKDecodeBinary(b *testing.B) {
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		msg := cehttp.NewMessage(benchHeader, io.NopCloser(bytes.NewReader(benchBody)))
		if _, err := binding.ToEvent(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	ce, err := DecodeStructured(benchStructured)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 1024)
	now := time.Now()
	b.Run("seed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = ce.AppendSeedJSON(buf[:0], now)
		}
	})
	b.Run("v0.1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = ce.AppendV01JSON(buf[:0])
		}
	})
	b.Run("1.0", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = ce.AppendJSON(buf[:0])
		}
	})
	b.Run("sdk-1.0", func(b *testing.B) {
		var e ceevent.Event
		if err := e.UnmarshalJSON(benchStructured); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			e.MarshalJSON()
		}
	})
}
