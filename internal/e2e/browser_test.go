package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

// TestBrowserEndUserApp drives the /app/ page in headless Chromium with a CDP virtual
// authenticator standing in for the user's passkey (notes-authn.md §2): sign-up through the
// demo backend, a wallet created, log out and in again with the passkey, the wallet funded, a transfer signed with the passkey until it is
// Confirmed; then the passkey is removed from the authenticator and the next signed action
// is refused in the page with nothing sent.
//
// Chromium is at /usr/bin/chromium (or $CHROMIUM). Missing, the test skips locally and fails
// in CI (CI=true). COUNTERSIGN_APP_SCREENSHOT=path saves a PNG of the final page.
func TestBrowserEndUserApp(t *testing.T) {
	exe := os.Getenv("CHROMIUM")
	if exe == "" {
		exe = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(exe); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is required in CI: %v", err)
		}
		t.Skipf("chromium not found (%v); install it to run the browser test", err)
	}
	n := apptest.Start(t, testutil.Engines(t)[0], apptest.Options{DemoApp: true}) // SQLite: the rules are covered on both engines elsewhere
	port := n.URL[strings.LastIndex(n.URL, ":")+1:]
	// localhost, not 127.0.0.1: WebAuthn refuses IP addresses as relying party ids.
	appURL := "http://localhost:" + port + "/app/"

	var dest walletResp
	if err := n.Admin.Do(t.Context(), http.MethodPost, "/wallets", map[string]any{"network": delegatedNetwork}, &dest); err != nil {
		t.Fatal(err)
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(800, 900), chromedp.UserDataDir(t.TempDir()))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 4*time.Minute)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	va, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true,
		AutomaticPresenceSimulation: true, // no omitempty: false would leave create() hanging
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(appURL)); err != nil {
		t.Fatal(err)
	}

	js := func(expr string) string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("evaluate %q: %v", expr, err)
		}
		return out
	}
	text := func(id string) string { return js(`document.getElementById('` + id + `').textContent`) }
	click := func(id string) { js(`document.getElementById('` + id + `').click(), ''`) }
	setValue := func(id, v string) { js(`document.getElementById('` + id + `').value = ` + strconv.Quote(v) + `, ''`) }
	// waitFor polls a condition of the page, failing at once on an error the page shows.
	waitFor := func(what, cond string, allowError bool) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			if js(`String(Boolean(`+cond+`))`) == "true" {
				return
			}
			if e := text("error"); e != "" && !allowError {
				t.Fatalf("%s: the page shows an error: %s", what, e)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out; status %q, error %q", what, text("status"), text("error"))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	byID := func(id string) string { return `document.getElementById('` + id + `')` }

	setValue("email", "browser-user@example.co")
	click("signup")
	waitFor("sign-up", `!`+byID("account")+`.hidden`, false)
	if got := text("who"); got != "browser-user@example.co" {
		t.Fatalf("signed in as %q", got)
	}
	creds, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: va.AuthenticatorID})
	if err != nil || len(creds.Credentials) != 1 {
		t.Fatalf("the authenticator holds %d credentials (%v), want the new passkey", len(creds.Credentials), err)
	}

	click("create-wallet")
	waitFor("create wallet", byID("wallet-address")+`.textContent.startsWith('0x')`, false)
	address := text("wallet-address")

	// Log out and back in with the passkey: the page finds the wallet again.
	click("logout")
	waitFor("logout", `!`+byID("auth")+`.hidden`, false)
	setValue("email", "browser-user@example.co")
	click("login")
	waitFor("login", byID("wallet-address")+`.textContent === `+strconv.Quote(address)+` && !`+byID("wallet")+`.hidden`, false)
	click("fund")
	waitFor("fund", `/^[1-9][0-9]*$/.test(`+byID("balance")+`.textContent)`, false)

	setValue("to", dest.Address)
	setValue("amount", "1000000000000000")
	click("transfer")
	waitFor("transfer", `['Confirmed','Failed','Rejected'].includes(`+byID("transfer-status")+`.textContent)`, false)
	if st := text("transfer-status"); st != "Confirmed" {
		t.Fatalf("transfer ended %s", st)
	}
	walletID := text("wallet-id")

	if path := os.Getenv("COUNTERSIGN_APP_SCREENSHOT"); path != "" {
		shot, err := chromedp.Call(ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng})
		if err != nil {
			t.Fatal(err)
		}
		if len(shot.Data) < 100<<10 {
			if err := os.WriteFile(path, shot.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			t.Logf("screenshot is %d bytes, not saved", len(shot.Data))
		}
	}

	// Without the passkey the next transfer cannot be signed: the page reports the refusal
	// and no transfer is created.
	if _, err := chromedp.Call(ctx, webauthn.RemoveCredential, webauthn.RemoveCredentialParams{
		AuthenticatorID: va.AuthenticatorID, CredentialID: creds.Credentials[0].CredentialID}); err != nil {
		t.Fatal(err)
	}
	before := domainSnapshot(t, n)
	click("transfer")
	waitFor("refused transfer", byID("error")+`.textContent !== ''`, true)
	if st := text("transfer-status"); st != "Confirmed" {
		t.Fatalf("after the refusal the page shows transfer status %q", st)
	}
	var list struct {
		Items []transferResp `json:"items"`
	}
	if err := n.Admin.Do(t.Context(), http.MethodGet, "/wallets/"+walletID+"/transfers", nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("the wallet has %d transfers, want only the signed one", len(list.Items))
	}
	// At most an unsigned user-action challenge was issued: nothing else changed.
	if domainSnapshot(t, n) != before {
		t.Error("the refused transfer changed the database")
	}
	t.Logf("refused in the page: %s", text("error"))
}
