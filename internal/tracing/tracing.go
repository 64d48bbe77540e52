// Package tracing is the gateway's OpenTelemetry tracing: a tracer that
// exports spans over OTLP, and the W3C trace context read from clients,
// passed to functions and stored with queued events so that a delivery
// made later, on any instance, continues the trace of the request that
// brought the event.
//
// Tracing is off unless an OTLP endpoint is configured. Off, the gateway
// holds a nil *Tracer, and every method of a nil *Tracer returns at once
// without allocating: the request path costs what it costs without this
// package.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Protocols of the OTLP exporter.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Options configure tracing.
type Options struct {
	// Endpoint is the OTLP receiver, host:port (4317 for gRPC, 4318 for
	// HTTP by convention). Empty: tracing is off.
	Endpoint string
	// Protocol is ProtocolGRPC or ProtocolHTTP; ProtocolGRPC if empty.
	Protocol string
	// Insecure sends spans without TLS.
	Insecure bool
	// SampleRatio is the share of new traces recorded, from 0 to 1. A
	// request that comes with a sampled trace context is recorded
	// whatever the ratio (parent-based sampling).
	SampleRatio float64
	// Version is the gateway's version, an attribute of its resource.
	Version string
	// Instance names this gateway instance (service.instance.id).
	Instance string
}

// Tracer makes the gateway's spans. A nil *Tracer is tracing off.
type Tracer struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TraceContext
}

// New starts tracing as o says; it returns nil, and no error, when
// o.Endpoint is empty.
func New(ctx context.Context, o Options) (*Tracer, error) {
	if o.Endpoint == "" {
		return nil, nil
	}
	if o.SampleRatio < 0 || o.SampleRatio > 1 {
		return nil, fmt.Errorf("tracing: sample ratio %v is not between 0 and 1", o.SampleRatio)
	}
	var (
		exp *otlptrace.Exporter
		err error
	)
	switch o.Protocol {
	case "", ProtocolGRPC:
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(o.Endpoint)}
		if o.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	case ProtocolHTTP:
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(o.Endpoint)}
		if o.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("tracing: protocol %q is not %q or %q", o.Protocol, ProtocolGRPC, ProtocolHTTP)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName("event-gateway"),
		semconv.ServiceVersion(o.Version),
		semconv.ServiceInstanceID(o.Instance),
	)
	tp := sdktrace.NewTracerProvider(
		// Spans are exported in batches by a goroutine of their own,
		// never on the request path; when the exporter falls behind,
		// spans are dropped, not requests slowed.
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.SampleRatio))),
	)
	return &Tracer{tp: tp, tracer: tp.Tracer("github.com/event-gateway/event-gateway")}, nil
}

// Shutdown exports the spans still buffered and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Span is a span of the gateway, nil when tracing is off; its methods
// are safe on nil.
type Span struct{ s trace.Span }

// Start begins a span named name as a child of the span in ctx.
func (t *Tracer) Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, *Span) {
	if t == nil {
		return ctx, nil
	}
	ctx, s := t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	return ctx, &Span{s}
}

// SetAttributes adds attributes to the span.
func (s *Span) SetAttributes(attrs ...attribute.KeyValue) {
	if s != nil {
		s.s.SetAttributes(attrs...)
	}
}

// End ends the span, marking it failed with err when err is not nil.
func (s *Span) End(err error) {
	if s == nil {
		return
	}
	if err != nil {
		s.s.RecordError(err)
		s.s.SetStatus(codes.Error, err.Error())
	}
	s.s.End()
}

// EndStatus ends the span of an HTTP exchange with its status code:
// 5xx marks it failed, as the HTTP semantic conventions say for servers.
func (s *Span) EndStatus(status int) {
	if s == nil {
		return
	}
	s.s.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= 500 {
		s.s.SetStatus(codes.Error, http.StatusText(status))
	}
	s.s.End()
}

// Extract returns ctx with the trace context of a request's traceparent
// and tracestate headers, when they hold a valid one.
func (t *Tracer) Extract(ctx context.Context, h http.Header) context.Context {
	if t == nil {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject writes the trace context of ctx into outgoing headers
// (traceparent, tracestate), if ctx has one. It needs no Tracer: a
// function's call carries the context of the span it is made in, and
// there is none when tracing is off.
func Inject(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}

// Carrier is the trace context of an event, as stored with it: the W3C
// traceparent and tracestate header values; empty without one.
type Carrier struct {
	Parent, State string
}

// CarrierOf returns the trace context of ctx to store with an event.
func (t *Tracer) CarrierOf(ctx context.Context) Carrier {
	if t == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return Carrier{}
	}
	h := make(propagation.MapCarrier, 2)
	t.prop.Inject(ctx, h)
	return Carrier{Parent: h["traceparent"], State: h["tracestate"]}
}

// Resume returns ctx with a stored trace context, which the spans of a
// delivery then continue.
func (t *Tracer) Resume(ctx context.Context, c Carrier) context.Context {
	if t == nil || c.Parent == "" {
		return ctx
	}
	h := propagation.MapCarrier{"traceparent": c.Parent}
	if c.State != "" {
		h["tracestate"] = c.State
	}
	return t.prop.Extract(ctx, h)
}
