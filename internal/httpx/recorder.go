// Package httpx holds small pieces shared by HTTP middleware.
package httpx

import "net/http"

// Recorder is a ResponseWriter that remembers the status code and the
// number of body bytes written through it.
type Recorder struct {
	http.ResponseWriter
	Status int
	Bytes  int64
	wrote  bool
}

// NewRecorder wraps w; the status is 200 until one is written.
func NewRecorder(w http.ResponseWriter) *Recorder {
	return &Recorder{ResponseWriter: w, Status: http.StatusOK}
}

func (r *Recorder) WriteHeader(code int) {
	if !r.wrote {
		r.Status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *Recorder) Write(b []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(b)
	r.Bytes += int64(n)
	return n, err
}

// Wrap returns w itself when it is already a Recorder, made by an outer
// middleware that reads it once the request is answered, and a new
// Recorder around w otherwise. Stacked middlewares (the access log around
// the metrics) thus share one Recorder instead of each allocating its own
// and adding a layer to every Write. They read the same figures only when
// nothing between them writes to the response itself, as between the
// access log and the metrics.
func Wrap(w http.ResponseWriter) *Recorder {
	if r, ok := w.(*Recorder); ok {
		return r
	}
	return NewRecorder(w)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
