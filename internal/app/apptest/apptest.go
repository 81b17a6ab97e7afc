// Package apptest starts a real countersign node in-process on a loopback port, on a given
// database engine, bootstrapped, with an admin client: the fixture of end-to-end tests.
package apptest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app"
	"github.com/countersign/countersign/internal/config"
	"github.com/countersign/countersign/internal/testutil"
)

// Node is a running server.
type Node struct {
	App   *app.App
	URL   string
	Admin *client.Client
	Env   *client.Env
	Clock *testutil.Clock
	Dir   string
	stop  func()
}

// Stop shuts the node down (graceful, like SIGTERM) before the test ends, so another node
// can open the same SQLite database and data directory.
func (n *Node) Stop() { n.stop() }

// Options adjust Start.
type Options struct {
	DSN     string          // database; a fresh one of the engine when empty
	DataDir string          // data dir (shares master key and bootstrap files); fresh when empty
	Clock   *testutil.Clock // injected clock; a fresh one when nil
	Log     io.Writer       // server log; discarded when nil (set COUNTERSIGN_TEST_LOG=1 to see it)
	NoJobs  bool            // serve the API only; queued jobs wait for a node that works them
	DemoApp bool            // serve the /app/ demo sign-up (--demo-app)
	// Webhooks: retry schedule ("" = no retries) and whether receivers on loopback are allowed.
	WebhookRetrySchedule string
	WebhooksAllowPrivate bool
	BitcoinRPC           []string // --bitcoin-rpc Network=URL pairs
}

// Start runs a node until t ends.
func Start(t testing.TB, e testutil.Engine, o Options) *Node {
	t.Helper()
	if o.DSN == "" {
		o.DSN = e.DSN(t)
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Clock == nil {
		o.Clock = testutil.NewClock()
	}
	var log *slog.Logger
	switch {
	case o.Log != nil:
		log = slog.New(slog.NewTextHandler(o.Log, nil))
	case os.Getenv("COUNTERSIGN_TEST_LOG") != "":
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	default:
		log = slog.New(slog.DiscardHandler)
	}
	cfg := config.Config{
		Listen: "127.0.0.1:0", DataDir: o.DataDir, Database: o.DSN, RPID: "localhost", RPName: "countersign",
		ChallengeTTL: 5 * time.Minute, LogLevel: "info", NoJobs: o.NoJobs, DemoApp: o.DemoApp,
		WebhookRetrySchedule: o.WebhookRetrySchedule, WebhooksAllowPrivate: o.WebhooksAllowPrivate,
		BitcoinRPC: o.BitcoinRPC,
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log, app.Options{Now: o.Clock.Now})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	if _, err := a.Bootstrap(ctx, url); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	n := &Node{App: a, URL: url, Clock: o.Clock, Dir: o.DataDir}
	n.stop = sync.OnceFunc(func() {
		cancel()
		<-done
		a.Close()
	})
	t.Cleanup(n.Stop)
	env, err := client.LoadEnv(filepath.Join(o.DataDir, "bootstrap.env"))
	if err != nil {
		t.Fatal(err)
	}
	env.APIURL = url // the file names the node that bootstrapped; this node may be another
	n.Env = env
	if n.Admin, err = env.Client(); err != nil {
		t.Fatal(err)
	}
	return n
}
