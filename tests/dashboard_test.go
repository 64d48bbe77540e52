package tests

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/gwproc"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// The dashboard's journeys, driven in headless Chromium against the real
// gateway binary. The tests assert on what the page shows; when one fails
// it saves a screenshot and logs its path. With $DASHBOARD_DOC_SHOTS set
// to a directory (docs/img), the journey also saves the pictures of
// docs/dashboard.md there.

const dashToken = "dash-s3cret"

// browser starts headless Chromium for t, or skips t when there is none
// on a developer's machine (in CI, with $CI set, it fails instead).
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed: the dashboard tests need it (.ci/run installs Debian's chromium)")
		}
		t.Skip("chromium is not installed (apt-get install chromium): skipping the dashboard's browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in containers
		chromedp.WindowSize(1100, 760),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// page runs browser actions, bounded in time; on failure it saves a
// screenshot and fails t.
type page struct {
	t   *testing.T
	ctx context.Context
}

func (p page) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fail(fmt.Sprintf("%s: %v", what, err))
	}
}

func (p page) fail(msg string) {
	p.t.Helper()
	dir := os.Getenv("DASHBOARD_SCREENSHOTS")
	if dir == "" {
		dir = os.TempDir()
	}
	name := filepath.Join(dir, fmt.Sprintf("dashboard-%s-%d.png", strings.ReplaceAll(p.t.Name(), "/", "_"), time.Now().UnixNano()))
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil && os.WriteFile(name, png, 0o644) == nil {
		p.t.Fatalf("%s (screenshot: %s)", msg, name)
	}
	p.t.Fatalf("%s (no screenshot)", msg)
}

// text returns the text of the first element matching sel.
func (p page) text(sel string) string {
	p.t.Helper()
	return evalOn[string](p, fmt.Sprintf(`document.querySelector(%q).innerText`, sel))
}

// evalOn evaluates a JavaScript expression in the page.
func evalOn[T any](p page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.fail(fmt.Sprintf("evaluate %s: %v", expr, err))
	}
	return v
}

// waitText waits until the element matching sel shows want.
func (p page) waitText(sel, want string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	var got string
	for {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(e => e.innerText).join("\n")`, sel)))
		if err == nil && strings.Contains(s, want) {
			return
		}
		got = s
		select {
		case <-ctx.Done():
			p.fail(fmt.Sprintf("%s does not show %q; it shows %q", sel, want, got))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// docShot saves a picture for docs/dashboard.md when asked to.
func (p page) docShot(name string) {
	dir := os.Getenv("DASHBOARD_DOC_SHOTS")
	if dir == "" {
		return
	}
	p.t.Helper()
	p.run("settle", chromedp.Sleep(300*time.Millisecond))
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// fill replaces the value of the field labelled by sel.
func fill(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(e => { e.value = ""; return true })(document.querySelector(%q))`, sel))(ctx, t)
			return err
		}),
		chromedp.SendKeys(chromedp.CSS(sel), value),
	)
}

// dashFunction is a function the journeys register: it counts its calls
// and fails while fail is set.
type dashFunction struct {
	srv   *httptest.Server
	fail  atomic.Bool
	mu    sync.Mutex
	bodys []string
}

func newDashFunction(t *testing.T) *dashFunction {
	f := &dashFunction{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.bodys = append(f.bodys, string(b))
		f.mu.Unlock()
		if f.fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *dashFunction) received(substr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.bodys {
		if strings.Contains(b, substr) {
			return true
		}
	}
	return false
}

func authCall(t *testing.T, method, url, body string) response {
	t.Helper()
	return call(t, method, url, body, "Authorization", "Bearer "+dashToken, "Content-Type", "application/json")
}

// TestDashboardJourneys: log in, register a function and a subscription,
// watch an event arrive in the live tail, open its trail, replay a dead
// letter, and see the function's charts and the instance.
func TestDashboardJourneys(t *testing.T) {
	ctx := browser(t)
	gw := startDev(t, "", "-config-token", dashToken)
	fn := newDashFunction(t)
	base := gw.ConfigURL + "/dashboard/"

	t.Run("log in", func(t *testing.T) {
		p := page{t, ctx}
		p.run("open", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)))
		p.waitText("h1", "Log in")
		p.docShot("login")
		// A wrong token is refused next to the token field.
		p.run("wrong token", fill(`input[name=token]`, "wrong"), chromedp.Click(chromedp.CSS(`form button[type=submit]`)))
		p.waitText(".field-error", "not accepted")
		invalid := evalOn[string](p, `document.querySelector("input[name=token]").getAttribute("aria-invalid")`)
		if invalid != "true" {
			t.Fatalf("token field not marked invalid: %q", invalid)
		}
		p.run("right token", fill(`input[name=token]`, dashToken), chromedp.Click(chromedp.CSS(`form button[type=submit]`)))
		p.waitText("h1", "Functions in default")
		// The token is in sessionStorage, nowhere else.
		inSession := evalOn[string](p, `sessionStorage.getItem("eg.token")`)
		inLocal := evalOn[string](p, `String(localStorage.length)`)
		if inSession != dashToken || inLocal != "0" {
			t.Fatalf("token in sessionStorage %q, localStorage has %s items", inSession, inLocal)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("register a function", func(t *testing.T) {
		p := page{t, ctx}
		p.run("open form", chromedp.Click(`//button[text()="Register a function"]`), chromedp.WaitVisible(chromedp.CSS(`dialog input[name=functionId]`)))
		// The API's error is shown next to the field it names.
		p.run("bad id", fill(`dialog input[name=functionId]`, "bad id!"),
			fill(`dialog textarea[name=provider]`, fmt.Sprintf(`{"url": %q}`, fn.srv.URL)),
			chromedp.Click(chromedp.CSS(`dialog button[type=submit]`)))
		p.waitText("dialog .field:has(input[name=functionId]) .field-error", "functionId")
		p.docShot("function-error")
		p.run("good id", fill(`dialog input[name=functionId]`, "hello"), chromedp.Click(chromedp.CSS(`dialog button[type=submit]`)),
			chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
		p.waitText("table", "hello")
		p.waitText("table", fn.srv.URL)
		// The closed dialog gives the focus back to what opened it.
		if focus := evalOn[string](p, `document.activeElement.textContent`); focus != "Register a function" {
			t.Fatalf("focus on %q after the dialog closed", focus)
		}
		r := authCall(t, "GET", gw.ConfigURL+"/v1/spaces/default/functions/hello", "")
		expect(t, r, 200, "")
	})
	t.Run("create an event type and a subscription", func(t *testing.T) {
		p := page{t, ctx}
		p.run("event types", chromedp.Click(`//nav//a[text()="Event types"]`), chromedp.WaitVisible(`//button[text()="Create an event type"]`))
		p.run("create type", chromedp.Click(`//button[text()="Create an event type"]`), fill(`dialog input[name=name]`, "user.created"),
			chromedp.Click(chromedp.CSS(`dialog button[type=submit]`)), chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
		p.waitText("table", "user.created")
		p.run("subscriptions", chromedp.Click(`//nav//a[text()="Subscriptions"]`), chromedp.WaitVisible(`//button[text()="Create a subscription"]`))
		p.run("open form", chromedp.Click(`//button[text()="Create a subscription"]`),
			fill(`dialog input[name=eventType]`, "user.created"), fill(`dialog input[name=functionId]`, "hello"),
			fill(`dialog textarea[name=filter]`, `{"data": {"plan": ["pro"]}}`))
		// Try runs the filter on the sample without saving anything.
		p.run("try", fill(`dialog textarea[name=sample]`, `{"eventType":"user.created","cloudEventsVersion":"0.1","source":"/t","eventID":"s1","data":{"plan":"free"}}`),
			chromedp.Click(`//dialog//button[text()="Try filter and scripts"]`))
		p.waitText("dialog .try-result", "does not match")
		p.docShot("subscription-try")
		p.run("save", chromedp.Click(chromedp.CSS(`dialog button[type=submit]`)), chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
		p.waitText("table", "user.created")
		p.waitText("table", "filter")
		p.docShot("subscriptions")
	})

	var eventID string
	t.Run("live tail", func(t *testing.T) {
		p := page{t, ctx}
		p.run("tail", chromedp.Click(`//nav//a[text()="Live tail"]`))
		p.waitText(".conn", "Connected")
		eventID = fmt.Sprintf("dash-%d", time.Now().UnixNano())
		ce := fmt.Sprintf(`{"eventType":"user.created","cloudEventsVersion":"0.1","source":"/signup","eventID":%q,"contentType":"application/json","data":{"plan":"pro","name":"Ada"}}`, eventID)
		expect(t, call(t, "POST", gw.EventsURL+"/", ce, "Content-Type", "application/cloudevents+json"), 202, "")
		p.waitText("ol.tail li.event", "user.created")
		p.waitText("ol.tail", "gateway.function.invoked")
		eventually(t, "the function called", func() bool { return fn.received(eventID) })
		// The filter narrows the tail to what it names.
		p.run("filter", fill(`#tail-filter`, "invoked"))
		visible := evalOn[int](p, `Array.from(document.querySelectorAll("ol.tail li")).filter(li => !li.hidden).length`)
		texts := evalOn[string](p, `Array.from(document.querySelectorAll("ol.tail li")).filter(li => !li.hidden).map(li => li.dataset.kind + " " + li.innerText).join("|")`)
		if visible == 0 || strings.Contains(texts, "event user.created") {
			t.Fatalf("filter 'invoked' shows %d items: %s", visible, texts)
		}
		p.run("unfilter", fill(`#tail-filter`, eventID[:8]))
		p.docShot("tail")
	})
	if t.Failed() {
		return
	}

	t.Run("trail", func(t *testing.T) {
		p := page{t, ctx}
		// The trail stores its records every 200 ms: wait until the
		// API has the delivery, as a user would see it on a reload.
		eventually(t, "the trail of the event", func() bool {
			r := authCall(t, "GET", gw.ConfigURL+"/v1/spaces/default/events/"+eventID, "")
			return r.status == 200 && strings.Contains(r.body, `"delivered"`)
		})
		p.run("open trail", chromedp.Click(chromedp.CSS(`ol.tail li.event a.trail-link`)))
		p.waitText("h1", "Trail of event "+eventID)
		p.run("settle", chromedp.Sleep(500*time.Millisecond))
		body := p.text("main")
		if strings.Contains(body, "does not record event trails") {
			t.Fatalf("the page says the gateway records no trail: %s", body)
		}
		p.waitText("main", "Delivery attempts")
		p.waitText("main", "delivered")
		// The real trail's fields: its outcome and the attempt's result.
		p.waitText("dl.facts", "delivered")
		p.waitText("table", "ok")
		p.docShot("trail")
	})

	t.Run("dead letter replay", func(t *testing.T) {
		p := page{t, ctx}
		// A subscription with a single attempt, to a function that fails.
		fn.fail.Store(true)
		expect(t, authCall(t, "POST", gw.ConfigURL+"/v1/spaces/default/eventtypes", `{"name":"order.failed"}`), 201, "")
		r := authCall(t, "POST", gw.ConfigURL+"/v1/spaces/default/subscriptions", `{"type":"async","eventType":"order.failed","functionId":"hello","path":"/","retry":{"maxAttempts":1}}`)
		expect(t, r, 201, "")
		id := fmt.Sprintf("order-%d", time.Now().UnixNano())
		ce := fmt.Sprintf(`{"eventType":"order.failed","cloudEventsVersion":"0.1","source":"/shop","eventID":%q,"data":{"n":1}}`, id)
		expect(t, call(t, "POST", gw.EventsURL+"/", ce, "Content-Type", "application/cloudevents+json"), 202, "")
		eventually(t, "a dead letter", func() bool {
			return strings.Contains(authCall(t, "GET", gw.ConfigURL+"/v1/deadletters", "").body, id)
		})
		p.run("dead letters", chromedp.Click(`//nav//a[text()="Dead letters"]`))
		p.waitText("table", id)
		p.waitText("table", "order.failed")
		p.run("inspect", chromedp.Click(`//button[starts-with(normalize-space(.), "Inspect")]`), chromedp.WaitVisible(chromedp.CSS(`dialog pre`)))
		p.waitText("dialog pre", id)
		p.docShot("deadletters")
		p.run("close", chromedp.KeyEvent(kb.Escape), chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
		fn.fail.Store(false)
		p.run("replay", chromedp.Click(`//button[starts-with(normalize-space(.), "Replay") and not(contains(., "all"))]`))
		p.waitText("main", "replayed")
		p.waitText("main", "No dead letters.")
		eventually(t, "the replayed event delivered", func() bool { return fn.received(id) })
	})

	t.Run("charts and instances", func(t *testing.T) {
		p := page{t, ctx}
		p.run("functions", chromedp.Click(`//nav//a[text()="Functions"]`), chromedp.WaitVisible(`//a[contains(., "charts")]`))
		p.run("charts", chromedp.Click(`//a[contains(., "charts")]`))
		p.waitText("h1", "Function hello: last hour")
		p.waitText(".summary", "calls")
		summary := p.text(".summary")
		var calls, errs int
		if _, err := fmt.Sscanf(summary, "%d calls, %d failed", &calls, &errs); err != nil || calls < 3 || errs < 1 {
			t.Fatalf("summary %q: want at least 3 calls and 1 error (one delivered, one failed, one replayed)", summary)
		}
		paths := evalOn[int](p, `document.querySelectorAll("svg.chart path.line").length`)
		if paths != 5 {
			t.Fatalf("%d chart lines, want 5 (calls, errors; errors; p50, p99)", paths)
		}
		p.docShot("charts")
		p.run("instances", chromedp.Click(`//nav//a[text()="Instances"]`))
		p.waitText("table", "ready")
		p.waitText("table", gw.EventsURL)
		p.docShot("instances")
	})

	t.Run("narrow screen", func(t *testing.T) {
		p := page{t, ctx}
		defer p.run("reset", chromedp.ResetViewport())
		p.run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		for view, hash := range map[string]string{"Subscriptions": "subscriptions", "Dead letters": "deadletters", "Live tail": "tail", "Instances": "instances"} {
			evalOn[string](p, `location.hash = "#/`+hash+`"`)
			p.waitText("h1", view)
			// Wide tables scroll in their own box: the page itself does
			// not scroll sideways.
			if over := evalOn[bool](p, `document.documentElement.scrollWidth > window.innerWidth + 1`); over {
				w := evalOn[int](p, `document.documentElement.scrollWidth`)
				p.fail(fmt.Sprintf("%s is %dpx wide on a 390px screen", view, w))
			}
		}
	})

	t.Run("log out", func(t *testing.T) {
		p := page{t, ctx}
		p.run("logout", chromedp.Click(chromedp.CSS(`#logout`)))
		p.waitText("h1", "Log in")
		tok := evalOn[string](p, `String(sessionStorage.getItem("eg.token"))`)
		if tok != "null" {
			t.Fatalf("token still stored after logging out: %q", tok)
		}
	})
}

// TestDashboardLargeSubscriptionList: with 10,000 subscriptions the
// subscriptions view asks for one page and shows it.
func TestDashboardLargeSubscriptionList(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 subscriptions")
	}
	ctx := browser(t)
	// The subscriptions are written straight to the gateway's etcd
	// through the subscriptions service: through the API, each create
	// waits for the gateway to route by it, which makes minutes of 10,000.
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	gw := start(t, gwproc.Options{Args: []string{"-dev", "-embed-data-dir", t.TempDir(), "-config-token", dashToken,
		"-embed-cli-addr", etcdURL, "-embed-peer-addr", fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}})
	expect(t, authCall(t, "POST", gw.ConfigURL+"/v1/spaces/default/functions", `{"functionId":"many","type":"http","provider":{"url":"http://127.0.0.1:9/"}}`), 201, "")
	expect(t, authCall(t, "POST", gw.ConfigURL+"/v1/spaces/default/eventtypes", `{"name":"bulk"}`), 201, "")
	store, err := libkv.Open(libkv.Config{Endpoints: []string{etcdURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc := subscriptions.NewService(store).In(functions.DefaultSpace)
	const n = 10_000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				_, err := svc.Create(context.Background(), subscriptions.Subscription{Type: subscriptions.Async, Event: "bulk",
					FunctionID: "many", Method: "POST", Path: fmt.Sprintf("/p%05d", i), Envelope: subscriptions.EnvelopeCloudEvents01})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating subscriptions: %v", err)
	}

	// Count the browser's requests for subscriptions.
	var mu sync.Mutex
	var lists []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && strings.Contains(e.Request.URL, "/subscriptions") {
			mu.Lock()
			lists = append(lists, e.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	p := page{t, ctx}
	p.run("open", chromedp.Navigate(gw.ConfigURL+"/dashboard/#/subscriptions"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)),
		fill(`input[name=token]`, dashToken), chromedp.Click(chromedp.CSS(`form button[type=submit]`)))
	p.waitText("h1", "Subscriptions in default")
	p.waitText(".page-label", "Page 1, 50 shown")
	rows := evalOn[int](p, `document.querySelectorAll("main tbody tr").length`)
	if rows != 50 {
		t.Fatalf("%d rows shown, want a page of 50", rows)
	}
	nextDisabled := evalOn[bool](p, `document.querySelector('.pager button:last-child').disabled`)
	if nextDisabled {
		t.Fatal("Next page disabled with 10,000 subscriptions")
	}
	mu.Lock()
	got := append([]string(nil), lists...)
	mu.Unlock()
	var pages []string
	for _, u := range got {
		if strings.Contains(u, "/v1/spaces/default/subscriptions?") {
			pages = append(pages, u)
		}
	}
	if len(pages) != 1 || !strings.Contains(pages[0], "limit=50") {
		t.Fatalf("subscription list requests %v, want one page of 50", pages)
	}
	// The next page is one more request, of the next 50.
	p.run("page 2", chromedp.Click(`//button[text()="Next page"]`))
	p.waitText(".page-label", "Page 2, 50 shown")
	first := p.text(`main tbody tr:first-child th`)
	var list struct {
		Subscriptions []struct {
			SubscriptionID string `json:"subscriptionId"`
		} `json:"subscriptions"`
		Next string `json:"next"`
	}
	decode(t, authCall(t, "GET", gw.ConfigURL+"/v1/spaces/default/subscriptions?limit=50", ""), &list)
	decode(t, authCall(t, "GET", gw.ConfigURL+"/v1/spaces/default/subscriptions?limit=50&cursor="+list.Next, ""), &list)
	if strings.TrimSpace(first) != list.Subscriptions[0].SubscriptionID {
		t.Fatalf("page 2 starts with %q, want %q", first, list.Subscriptions[0].SubscriptionID)
	}
}

// TestDashboardTrailView draws a trail in the shape section 1 of issue 17
// gives (the event, the subscribers matched and skipped, the attempts),
// and the view of a gateway without the endpoint. The browser's calls to
// the trail endpoints are answered by the test (Fetch interception), so
// the view is tested whatever the gateway serves.
func TestDashboardTrailView(t *testing.T) {
	ctx := browser(t)
	gw := startDev(t, "")
	// The shape of GET /v1/spaces/{space}/events/{id} (router/trail).
	trail := `{"space":"default","eventId":"e-1","type":"user.created","acceptedAt":"2026-12-01T10:00:00Z","outcome":"delivered",
		"subscribers":[
			{"subscriptionId":"sub-a","functionId":"mailer","outcome":"delivered",
			 "attempts":[
				{"attempt":1,"at":"2026-12-01T10:00:00.010Z","durationMs":12,"result":"failed","error":"function failed: http status 500","outcome":"retrying","nextAttemptAt":"2026-12-01T10:00:01Z","instance":"gw-1"},
				{"attempt":2,"at":"2026-12-01T10:00:01.020Z","durationMs":8,"result":"ok","outcome":"delivered","instance":"gw-2"}]},
			{"subscriptionId":"sub-b","functionId":"billing","outcome":"skipped","reason":"filter","attempts":[]}]}`
	recent := `{"events":[{"space":"default","eventId":"e-1","type":"user.created","acceptedAt":"2026-12-01T10:00:00Z","outcome":"delivered","subscribers":[]}]}`
	var noEndpoint atomic.Bool
	pauses := chromedp.Events(ctx, fetch.RequestPaused)
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/v1/spaces/default/events*"}}})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	go func() {
		for ev, err := range pauses {
			if err != nil {
				return
			}
			status, body := 200, trail
			switch {
			case noEndpoint.Load():
				status, body = 404, fmt.Sprintf(`{"error":"no endpoint GET %[1]s","errors":[{"message":"no endpoint GET %[1]s"}]}`, ev.Request.URL)
			case strings.Contains(ev.Request.URL, "/events?"):
				body = recent
			case !strings.HasSuffix(ev.Request.URL, "/events/e-1"):
				status, body = 404, `{"errors":[{"message":"event not found"}]}`
			}
			chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, fetch.FulfillRequest, fetch.FulfillRequestParams{RequestID: ev.RequestID, ResponseCode: int64(status),
					ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "application/json"}}, Body: []byte(body)})
				return err
			}))
		}
	}()

	p := page{t, ctx}
	p.run("open", chromedp.Navigate(gw.ConfigURL+"/dashboard/"), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)))
	p.waitText("h1", "Functions in default")
	evalOn[string](p, `location.hash = "#/trail"`)
	p.waitText("h1", "Event trail")
	p.waitText("main", "Recent events")
	p.run("open e-1", chromedp.Click(`//a[text()="e-1"]`))
	p.waitText("h1", "Trail of event e-1")
	p.waitText("dl.facts", "user.created")
	p.waitText("main", "sub-a")
	rows := evalOn[string](p, `Array.from(document.querySelectorAll("table")).find(t => t.caption.textContent === "Delivery attempts").innerText`)
	for _, want := range []string{"retrying", "delivered", "status 500", "ok", "mailer"} {
		if !strings.Contains(rows, want) {
			t.Fatalf("attempts table %q lacks %q", rows, want)
		}
	}
	skipped := evalOn[string](p, `Array.from(document.querySelectorAll("table")).find(t => t.caption.textContent === "Subscribers skipped").innerText`)
	if !strings.Contains(skipped, "sub-b") || strings.Contains(skipped, "sub-a") {
		t.Fatalf("skipped table %q", skipped)
	}
	p.docShot("trail")

	// An event the trail does not know, then a gateway without trails.
	evalOn[string](p, `location.hash = "#/trail/e-2"`)
	p.waitText("main .error", "No trail of event e-2")
	noEndpoint.Store(true)
	evalOn[string](p, `location.hash = "#/trail/e-1"`)
	p.waitText("main .error", "does not record event trails")
	p.waitText("main", "does not list recent events")
}
