// Command countersign is a self-hosted wallet-infrastructure API server that speaks the
// Dfns API. `countersign serve` starts it on embedded defaults (SQLite, ./countersign-data).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app"
	"github.com/countersign/countersign/internal/bench"
	"github.com/countersign/countersign/internal/config"
)

type cli struct {
	Serve   serveCmd   `cmd:"" help:"Run the API server."`
	Migrate migrateCmd `cmd:"" help:"Apply database migrations and exit."`
	Bench   benchCmd   `cmd:"" help:"Drive a running server over HTTP and report throughput and latency."`
	Version versionCmd `cmd:"" help:"Print the version."`

	Webhooks webhooksCmd `cmd:"" help:"Webhook tools (listen: a receiver that verifies signatures)."`
}

func main() {
	var c cli
	ctx := kong.Parse(&c, kong.Name("countersign"),
		kong.Description("Self-hosted, Dfns-compatible wallet infrastructure API."), kong.UsageOnError())
	if err := ctx.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "countersign:", err)
		os.Exit(1)
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

type serveCmd struct {
	config.Config `embed:""`
}

func (s *serveCmd) Run() error {
	log := newLogger(s.LogLevel)
	if os.Getenv("GOGC") == "" {
		// The heap is small and short-lived; trading memory for less GC CPU pays here.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, s.Config, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := a.Listen()
	if err != nil {
		return err
	}
	base := s.Config.BaseURL(ln.Addr().String())
	if !s.NoBootstrap {
		res, err := a.Bootstrap(ctx, base)
		if err != nil {
			ln.Close()
			return fmt.Errorf("bootstrap: %w", err)
		}
		if res.Created {
			log.Info("first start: created the organization and an admin service account", "org", res.OrgID)
			fmt.Fprintf(os.Stderr, "Admin credentials for the Dfns SDKs were written to %s (keep it secret).\n", res.EnvFile)
		}
	}
	log.Info("countersign listening", "url", base, "database", a.DB.Dialect, "version", version())
	return a.Serve(ctx, ln)
}

type migrateCmd struct {
	config.Config `embed:""`
}

func (m *migrateCmd) Run() error {
	a, err := app.New(context.Background(), m.Config, newLogger(m.LogLevel), app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	v, err := a.DB.Version(context.Background())
	if err != nil {
		return err
	}
	fmt.Printf("database %s is at schema version %d\n", a.DB.Dialect, v)
	return nil
}

type benchCmd struct {
	Env           string        `help:"bootstrap.env of the server to drive." default:"./countersign-data/bootstrap.env"`
	Op            string        `help:"signed-write (init, sign, action, write), read, or sign (a Hash signature with a secp256k1 key, whole user action flow)." default:"signed-write" enum:"signed-write,read,sign,transfer"`
	Network       string        `help:"EVM network for --op transfer (must run on the dev chain: the faucet funds the sender)." default:"EthereumSepolia"`
	Concurrency   int           `help:"Concurrent workers." default:"16"`
	Duration      time.Duration `help:"How long to measure." default:"10s"`
	Warmup        time.Duration `help:"Load before measuring." default:"2s"`
	Wallets       int           `help:"For --op transfer: spread transfers round-robin over this many sending wallets, each funded by the faucet." default:"1"`
	WaitConfirmed time.Duration `name:"wait-confirmed" help:"For --op transfer: after the run, wait up to this long until every transfer it created is final, and report confirmations end to end (0: don't wait)." default:"0"`
	CACert        string        `name:"ca-cert" help:"CA certificate to trust for https (e.g. <data-dir>/tls/ca.pem)."`
}

func (b *benchCmd) Run() error {
	env, err := client.LoadEnv(b.Env)
	if err != nil {
		return err
	}
	c, err := env.Client()
	if err != nil {
		return err
	}
	if b.CACert != "" {
		pemBytes, err := os.ReadFile(b.CACert)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		c.HTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	res, err := bench.Run(context.Background(), c, bench.Options{Op: b.Op, Concurrency: b.Concurrency, Duration: b.Duration, Warmup: b.Warmup, Network: b.Network,
		Wallets: b.Wallets, WaitConfirmed: b.WaitConfirmed})
	if err != nil {
		return err
	}
	fmt.Println(res)
	if res.Ops == 0 {
		return fmt.Errorf("no operation succeeded")
	}
	return nil
}

type versionCmd struct{}

func (versionCmd) Run() error {
	fmt.Println("countersign", version())
	return nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return bi.Main.Version + " (" + s.Value[:12] + ")"
			}
		}
		return bi.Main.Version
	}
	return "devel"
}
