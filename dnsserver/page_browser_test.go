package dnsserver_test

// The status page in a real browser: headless Chromium (Debian's chromium
// package) driven over the DevTools protocol with chromedp. The page must
// show the active node, show a failover without being reloaded, put it
// first in the timeline, ask nothing of any host but the server, fit a
// phone's width, and stay small and quick with 10,000 services. Without
// chromium these tests skip, except under CI=true, where they fail.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/failoverdns/failoverdns/dnsserver/testenv"
)

// pbStep bounds each browser action: generous, for a shared 2-core CI.
const pbStep = 30 * time.Second

// pbChromium returns Chromium's path, or skips the test without it (fails
// when CI=true).
func pbChromium(t *testing.T) string {
	t.Helper()
	return testenv.Tool(t, "chromium", "chromium", "chromium-browser")
}

// pbBrowser is one headless Chromium with one tab, recording every request
// the page makes and every error it reports.
type pbBrowser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	requests []string
	errors   []string
}

func pbOpen(t *testing.T) *pbBrowser {
	t.Helper()
	exe := pbChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	b := &pbBrowser{t: t, ctx: ctx}
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// Listen starts the browser (on a context without a timeout: it
	// lives as long as that context) and opens the tab.
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, e.Request.URL)
		case *runtime.EventExceptionThrown:
			b.errors = append(b.errors, fmt.Sprintf("exception: %s at %s:%d", e.ExceptionDetails.Text, e.ExceptionDetails.URL, e.ExceptionDetails.LineNumber))
		case *log.EventEntryAdded:
			// A blocked resource or a Content-Security-Policy
			// violation is reported here.
			if e.Entry.Level == log.EntryLevelError {
				b.errors = append(b.errors, fmt.Sprintf("%s: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("starting chromium (%s): %v", exe, err)
	}
	for _, enable := range []func() error{
		func() error { _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); return err },
		func() error { _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); return err },
		func() error { _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); return err },
	} {
		if err := enable(); err != nil {
			t.Fatalf("chromium: enabling events: %v", err)
		}
	}
	// Registered after the browser's own cleanup, so it runs first.
	t.Cleanup(b.screenshotOnFailure)
	return b
}

// step bounds one browser action.
func (b *pbBrowser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, pbStep)
}

// must runs actions in the tab, in order, or fails the test.
func (b *pbBrowser) must(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func pbEval[T any](b *pbBrowser, js string) T {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// screenshotOnFailure keeps what the page showed when a test failed, in a
// folder under the system's temporary folder that outlives the test.
func (b *pbBrowser) screenshotOnFailure() {
	if !b.t.Failed() {
		return
	}
	ctx, cancel := b.step()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		b.t.Logf("no screenshot: %v", err)
		return
	}
	dir, err := os.MkdirTemp("", "failoverdns-"+regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(b.t.Name(), "-")+"-")
	if err == nil {
		path := filepath.Join(dir, "page.png")
		if err = os.WriteFile(path, png, 0o644); err == nil {
			b.t.Logf("screenshot of the page at the failure: %s", path)
			return
		}
	}
	b.t.Logf("writing the screenshot: %v", err)
}

// text reads the text of the first node matching sel ("" when none).
func (b *pbBrowser) text(sel string) string {
	b.t.Helper()
	return pbEval[string](b, fmt.Sprintf(`(function(){var e=document.querySelector(%q);return e?e.innerText:""})()`, sel))
}

// waitText polls until the text of sel contains want and returns how long
// that took.
func (b *pbBrowser) waitText(sel, want string, within time.Duration) time.Duration {
	b.t.Helper()
	start := time.Now()
	got := ""
	for time.Since(start) < within {
		if got = b.text(sel); strings.Contains(got, want) {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	b.t.Fatalf("%s still reads %q after %s, want %q in it", sel, got, within, want)
	return 0
}

// onlyFrom asserts that every request the page made went to host (data:
// URLs stay in the page).
func (b *pbBrowser) onlyFrom(host string) (n int) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.requests {
		if strings.HasPrefix(r, "data:") {
			continue
		}
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "http" || u.Host != host {
			b.t.Errorf("the page asked %s, not the server %s", r, host)
		}
	}
	for _, e := range b.errors {
		b.t.Errorf("the page reported an error: %s", e)
	}
	return len(b.requests)
}

func (b *pbBrowser) requested(substr string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.requests {
		if strings.Contains(r, substr) {
			return true
		}
	}
	return false
}

// TestPageBrowserFailover: the page shows the service's active node; a
// failover the test causes shows on the page within 2 s of the server
// answering it, without a reload, first in the timeline; the page asks no
// other host; a phone's width needs no sideways scrolling.
func TestPageBrowserFailover(t *testing.T) {
	b := pbOpen(t)
	nodes := opsNodes(t, "sems1", "sems2")
	e := opsStart(t, opsConf{order: []string{"sems1", "sems2"}, http: true}, nodes)
	svc := e.c.service()
	answer := fmt.Sprintf(`tr[data-service=%q][data-view="default"] td.answer`, svc)

	b.must("opening the page", chromedp.Navigate("http://"+e.HTTP+"/"), chromedp.WaitVisible(chromedp.CSS(answer)))
	if got := b.text(answer); !strings.HasPrefix(got, "sems1") {
		t.Fatalf("the page shows %s answering %q, want sems1", svc, got)
	}
	// A reload would lose this.
	pbEval[bool](b, `window.stillTheSamePage = true`)

	nodes["sems1"].stop()
	e.waitActive(t, "", "sems2") // from here the server answers sems2
	took := b.waitText(answer, "sems2", 10*time.Second)
	t.Logf("the failover showed on the page %s after the server answered it", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("the failover took %s to show on the page, want within 2 s", took)
	}
	if !pbEval[bool](b, `window.stillTheSamePage === true`) {
		t.Error("the page was reloaded to show the failover")
	}
	b.waitText("#timeline li", svc+": sems1 → sems2", 5*time.Second)
	if got := b.text(fmt.Sprintf(`tr[data-service=%q] td.why`, svc)); !strings.Contains(got, "sems1 is down") {
		t.Errorf("the page says why %q, want sems1 is down", got)
	}
	if got := b.text(`tr[data-node="sems1"] td.state`); got != "down" {
		t.Errorf("the page shows sems1 %q, want down", got)
	}
	if got := b.text("#state"); !strings.HasPrefix(got, "live") {
		t.Errorf("the page's live indicator reads %q, want live", got)
	}

	// Filtering by typing: the table follows without a reload.
	b.must("typing a filter", chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), "nothing-matches"))
	b.waitText("table.svc tbody", "No service matches.", 10*time.Second)
	if !pbEval[bool](b, `window.stillTheSamePage === true`) {
		t.Error("the page was reloaded to filter")
	}

	// A phone: 390 px wide, no sideways scrolling.
	b.must("narrowing the window", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate("http://"+e.HTTP+"/"), chromedp.WaitVisible(chromedp.CSS(answer)))
	if sw, iw := pbEval[int](b, `document.documentElement.scrollWidth`), pbEval[int](b, `window.innerWidth`); sw > iw+1 {
		t.Errorf("on a 390 px wide phone the page is %d px wide (viewport %d): it must not scroll sideways", sw, iw)
	}

	n := b.onlyFrom(e.HTTP)
	if !b.requested("part=live") {
		t.Error("the page never fetched its live part")
	}
	t.Logf("%d requests, all to %s", n, e.HTTP)
}

// TestPageBrowserLarge: with 10,000 services the first response stays
// under 1 MB and the browser shows it quickly (figures printed; asserted
// loosely, as CI shares two cores).
func TestPageBrowserLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 10,000 services")
	}
	b := pbOpen(t)
	l := pgStartLarge(t, 10000)
	type metrics struct {
		Bytes    float64 `json:"bytes"`
		Response float64 `json:"response"`
		DOM      float64 `json:"dom"`
		Load     float64 `json:"load"`
		Paint    float64 `json:"paint"`
		Rows     float64 `json:"rows"`
	}
	const measure = `(function(){
		var n = performance.getEntriesByType("navigation")[0];
		var p = performance.getEntriesByName("first-contentful-paint")[0];
		return {bytes: n.encodedBodySize, response: n.responseEnd - n.startTime,
			dom: n.domContentLoadedEventEnd - n.startTime, load: n.loadEventEnd - n.startTime,
			paint: p ? p.startTime : -1, rows: document.querySelectorAll("tr[data-service]").length};
	})()`
	b.must("opening the page", chromedp.Navigate("http://"+l.http+"/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-service="s00000.big.test."]`)))
	{
		ctx, cancel := b.step()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`performance.getEntriesByType("navigation")[0].loadEventEnd > 0`, chromedp.WithPollingInterval(20*time.Millisecond)))
		cancel()
		if err != nil {
			t.Fatalf("waiting for the load event: %v", err)
		}
	}
	m := pbEval[metrics](b, measure)
	t.Logf("10,000 services: first response %.0f bytes; response %.0f ms, DOM ready %.0f ms, first paint %.0f ms, load %.0f ms; %.0f view rows shown",
		m.Bytes, m.Response, m.DOM, m.Paint, m.Load, m.Rows)
	if m.Bytes <= 0 || m.Bytes >= 1<<20 {
		t.Errorf("the first response is %.0f bytes, want under 1 MB", m.Bytes)
	}
	if m.Load <= 0 || m.Load > 5000 {
		t.Errorf("the page took %.0f ms to load, want well under 5 s (1 s on an idle machine)", m.Load)
	}
	// Search reaches any service without paging through the rest.
	b.must("searching", chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), "s09999"))
	b.waitText("table.svc tbody", "s09999.big.test.", 10*time.Second)
	b.onlyFrom(l.http)
}
