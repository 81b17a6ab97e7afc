package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/config"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/testutil"
)

func cfg(dir, dsn string) config.Config {
	return config.Config{Listen: "127.0.0.1:0", DataDir: dir, Database: dsn, RPID: "localhost", RPName: "countersign",
		ChallengeTTL: 5 * time.Minute, LogLevel: "info"}
}

// start runs a node from c until the test ends and returns its base URL.
func start(t *testing.T, c config.Config) (*app.App, string, app.BootstrapResult) {
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, c, slog.New(slog.DiscardHandler), app.Options{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := a.Listen()
	if err != nil {
		t.Fatal(err)
	}
	base := c.BaseURL(ln.Addr().String())
	res, err := a.Bootstrap(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	})
	return a, base, res
}

func TestFirstStartWritesBootstrapOnce(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		dir, dsn := t.TempDir(), e.DSN(t)
		a, base, res := start(t, cfg(dir, dsn))
		if !res.Created {
			t.Fatal("first start did not bootstrap")
		}
		for _, f := range []string{res.EnvFile, res.KeyFile, filepath.Join(dir, "master.key")} {
			st, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
			}
		}
		env, err := client.LoadEnv(res.EnvFile)
		if err != nil {
			t.Fatal(err)
		}
		if env.APIURL != base || env.OrgID != res.OrgID || !strings.HasPrefix(env.AuthToken, "eyJ") {
			t.Fatalf("env %+v", env)
		}
		c, err := env.Client()
		if err != nil {
			t.Fatal(err)
		}
		sas, err := c.ListServiceAccounts(context.Background())
		if err != nil || len(sas) != 1 || sas[0].UserInfo.Name != "bootstrap-admin" {
			t.Fatalf("admin service account: %+v %v", sas, err)
		}
		before, _ := os.ReadFile(res.EnvFile)
		// A second bootstrap on the same database (a restart, or another node) changes nothing.
		snap, _ := a.DB.Snapshot(context.Background())
		res2, err := a.Bootstrap(context.Background(), base)
		if err != nil || res2.Created || res2.OrgID != res.OrgID {
			t.Fatalf("second bootstrap: %+v %v", res2, err)
		}
		after, _ := os.ReadFile(res.EnvFile)
		snap2, _ := a.DB.Snapshot(context.Background())
		if string(before) != string(after) || snap != snap2 {
			t.Fatal("second bootstrap changed files or rows")
		}
	})
}

func TestSelfSignedTLS(t *testing.T) {
	e := testutil.Engines(t)[0]
	dir := t.TempDir()
	c := cfg(dir, e.DSN(t))
	c.TLSSelfSigned = true
	_, base, res := start(t, c)
	if !strings.HasPrefix(base, "https://localhost:") {
		t.Fatalf("base URL %s", base)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	env, err := client.LoadEnv(res.EnvFile)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	cl.HTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	// A user-action-signed write over HTTPS, as the Go SDK (https only) would do it.
	name := "renamed"
	sas, err := cl.ListServiceAccounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreatePAT(context.Background(), client.CreateTokenRequest{Name: name, PublicKey: sas[0].AccessTokens[0].PublicKey}); err != nil {
		t.Fatal(err)
	}
	// Plain HTTP to the TLS port is refused.
	if res, err := http.Get(strings.Replace(base, "https://", "http://", 1) + "/healthz"); err == nil && res.StatusCode == 200 {
		t.Fatal("plain HTTP served on the TLS port")
	}
}

func TestConfigValidate(t *testing.T) {
	good := cfg("d", "")
	tests := []struct {
		name string
		edit func(*config.Config)
		ok   bool
	}{
		{"ok/defaults", func(*config.Config) {}, true},
		{"fail/empty-data-dir", func(c *config.Config) { c.DataDir = "" }, false},
		{"fail/bad-listen", func(c *config.Config) { c.Listen = "8080" }, false},
		{"fail/cert-without-key", func(c *config.Config) { c.TLSCert = "c.pem" }, false},
		{"fail/cert-and-self-signed", func(c *config.Config) { c.TLSCert, c.TLSKey, c.TLSSelfSigned = "c", "k", true }, false},
		{"fail/ttl-too-short", func(c *config.Config) { c.ChallengeTTL = time.Second }, false},
		{"fail/public-url-scheme", func(c *config.Config) { c.PublicURL = "ftp://x" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, ok want %v", err, tt.ok)
			}
		})
	}
}

// Old user actions are purged by a periodic job, which also runs when a node becomes the
// job queue's leader: a node restarted a day later purges at once.
func TestOldUserActionsArePurgedOnStart(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		dsn, dir, clock := e.DSN(t), t.TempDir(), testutil.NewClock()
		var orgID, actionID string
		t.Run("first-node", func(t *testing.T) {
			n := apptest.Start(t, e, apptest.Options{DSN: dsn, DataDir: dir, Clock: clock})
			ch, err := n.Admin.InitUserAction(t.Context(), http.MethodPost, "/auth/pats", []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			orgID, actionID = n.Env.OrgID, ch.ChallengeIdentifier
			if _, err := n.App.DB.GetUserAction(t.Context(), orgID, actionID); err != nil {
				t.Fatalf("fresh action: %v", err)
			}
		})
		clock.Advance(25 * time.Hour)
		n := apptest.Start(t, e, apptest.Options{DSN: dsn, DataDir: dir, Clock: clock})
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := n.App.DB.GetUserAction(t.Context(), orgID, actionID)
			if errs.Is(err, errs.NotFound) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatal("the day-old user action was not purged")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
