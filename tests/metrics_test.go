package tests

import (
	"regexp"
	"strconv"
	"testing"
)

// metric returns the value of the first sample of the exposition text
// whose line starts with name{labels} (or name), or -1.
func metric(body, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestMetrics(t *testing.T) {
	gw := startDev(t, "")
	fn := newFunction(t, respondJSON(`{"body":"ok"}`))
	registerHTTP(t, gw, "fn", fn)
	subscribe(t, gw, `{"functionId":"fn","event":"http","method":"GET","path":"/m"}`)
	subscribe(t, gw, `{"functionId":"fn","event":"tick"}`)
	routable(t, "GET", gw.EventsURL+"/m")
	expect(t, call(t, "GET", gw.EventsURL+"/m", ""), 200, "")
	expect(t, call(t, "GET", gw.EventsURL+"/nowhere", ""), 404, "")
	expect(t, call(t, "POST", gw.EventsURL+"/", "{}", "Event", "tick", "Content-Type", "application/json"), 202, "")

	var body string
	eventually(t, "metrics", func() bool {
		r := call(t, "GET", gw.ConfigURL+"/metrics", "")
		expect(t, r, 200, "")
		body = r.body
		return metric(body, "eventgateway_deliveries_delivered_total") >= 1
	})
	for series, atLeast := range map[string]float64{
		`eventgateway_requests_total{api="events",kind="http",status="200"}`:                                 2,
		`eventgateway_requests_total{api="events",kind="http",status="404"}`:                                 1,
		`eventgateway_requests_total{api="events",kind="custom",status="202"}`:                               1,
		`eventgateway_requests_total{api="config",kind="config",status="200"}`:                               3,
		`eventgateway_function_invocations_total{function="fn",provider="http",result="ok",space="default"}`: 3,
		`eventgateway_function_duration_seconds_count{function="fn",provider="http",space="default"}`:        3,
		`eventgateway_deliveries_enqueued_total`:                                                             1,
		`eventgateway_config_loaded`:                                                                         1,
		`eventgateway_config_revision`:                                                                       1,
		`eventgateway_deliveries_pending`:                                                                    0,
	} {
		if v := metric(body, series); v < atLeast {
			t.Errorf("%s = %v, want at least %v", series, v, atLeast)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}

	// The 0.8+ clients read the same metrics at /v1/metrics.
	r := call(t, "GET", gw.ConfigURL+"/v1/metrics", "")
	expect(t, r, 200, "")
	if v := metric(r.body, `eventgateway_config_loaded`); v != 1 {
		t.Errorf("/v1/metrics: eventgateway_config_loaded = %v, want 1:\n%s", v, r.body)
	}
}
