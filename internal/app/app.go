// Package app assembles a countersign node from its configuration: master key, database,
// migrations, token keys, services and the HTTP API, plus the first-start bootstrap. It is
// the wiring that cmd/countersign runs, kept in a package so end-to-end tests run exactly
// the same server in-process.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"time"

	"github.com/riverqueue/river"

	"github.com/countersign/countersign/internal/audit"
	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/chains/registry"
	"github.com/countersign/countersign/internal/config"
	"github.com/countersign/countersign/internal/httpapi"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/jobs"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/notify"
	"github.com/countersign/countersign/internal/secrets"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/tlsutil"
	"github.com/countersign/countersign/internal/useraction"
	"github.com/countersign/countersign/internal/users"
	"github.com/countersign/countersign/internal/wallets"
	"github.com/countersign/countersign/internal/webapp"
	"github.com/countersign/countersign/internal/webhooks"
)

// App is one node.
type App struct {
	Cfg         config.Config
	Log         *slog.Logger
	DB          *store.DB
	TokenKeys   *auth.Keyring
	Auth        *auth.Authenticator
	Identity    *identity.Service
	UserActions *useraction.Service
	Audit       *audit.Service
	Keys        *keys.Service
	Wallets     *wallets.Service
	Users       *users.Service
	Chains      *registry.Registry
	Jobs        *jobs.Queue
	Webhooks    *webhooks.Service
	API         *httpapi.Server
	Handler     http.Handler // API plus the /app/ page (webapp)
	Now         func() time.Time
	// OnIncoming, when set, runs inside the transaction that stores each new incoming
	// wallet history event (for wallet.blockchainevent.detected webhooks).
	OnIncoming store.HistoryHook
}

// Options tweak New for tests.
type Options struct {
	Now func() time.Time // the clock; time.Now when nil
}

// New opens the database, migrates it and builds the services. It does not bootstrap.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opt Options) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	ring, created, err := secrets.LoadOrCreateFile(cfg.KeyFile())
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created master key file; back it up, without it sealed keys cannot be opened", "path", cfg.KeyFile())
	}
	db, err := store.Open(ctx, cfg.DSN(), ring)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, log); err != nil {
		db.Close()
		return nil, err
	}
	queue, err := jobs.New(db, log, jobs.Options{JobTimeout: cfg.JobTimeout, RescueStuckJobsAfter: cfg.JobRescueAfter})
	if err != nil {
		db.Close()
		return nil, err
	}
	fail := func(err error) (*App, error) {
		queue.Close()
		db.Close()
		return nil, err
	}
	if err := queue.Migrate(ctx); err != nil {
		return fail(err)
	}
	tokenKeys, err := auth.LoadKeyring(ctx, db)
	if err != nil {
		return fail(err)
	}
	a := &App{Cfg: cfg, Log: log, DB: db, TokenKeys: tokenKeys, Jobs: queue, Now: now}
	if err := jobs.Register(queue, &purgeWorker{a: a}); err != nil {
		return fail(err)
	}
	queue.Every(10*time.Minute, purgeArgs{}, nil)
	a.Auth = auth.NewAuthenticator(tokenKeys, db, now)
	a.Identity = identity.NewService(db, tokenKeys, now)
	a.UserActions = useraction.NewService(db, now)
	a.UserActions.ChallengeTTL, a.UserActions.TokenTTL = cfg.ChallengeTTL, cfg.ChallengeTTL
	a.Audit = audit.NewService(db, now)
	var notifier notify.Notifier = notify.Log{L: log}
	if cfg.SMTPURL != "" {
		smtp, err := notify.ParseSMTP(cfg.SMTPURL)
		if err != nil {
			return fail(err)
		}
		notifier = smtp
	}
	a.Users = users.NewService(db, tokenKeys, notifier, cfg.RPID, cfg.WebOrigins(cfg.Listen), now)
	a.Users.CeremonyTTL = cfg.ChallengeTTL
	a.UserActions.Fido2 = a.Users
	custody := keys.NewCustody(ring)
	a.Keys = keys.NewService(db, custody, custody, keys.ChainSet{}, now)
	a.Wallets = wallets.NewService(db, a.Keys, db, now)
	a.Keys.SetEndUsers(a.Users) // delegateTo names end users
	rpc, err := registry.ParseRPC(cfg.EVMRPC)
	if err != nil {
		return fail(err)
	}
	a.Chains = registry.New(rpc, cfg.DataDir, log)
	a.Wallets.SetChains(a.Chains)
	a.Wallets.SetTransfers(transferStore{DB: db, q: queue})
	if err := jobs.Register(queue, &transferWorker{w: a.Wallets}); err != nil {
		return fail(err)
	}
	if err := a.wireTransactions(db, queue); err != nil {
		return fail(err)
	}
	if err := a.wireBitcoin(db, queue); err != nil {
		return fail(err)
	}
	if err := a.startHistory(); err != nil {
		return fail(err)
	}
	if err := a.setupWebhooks(ring); err != nil {
		return fail(err)
	}
	a.API = httpapi.New(httpapi.Deps{
		Log: log, Auth: a.Auth, UserActions: a.UserActions, Identity: a.Identity, Audit: a.Audit,
		Keys: a.Keys, Wallets: a.Wallets, Webhooks: a.Webhooks,
		Users:  a.Users,
		RP:     httpapi.RP{ID: cfg.RPID, Name: cfg.RPName},
		Health: db.Ping,
	})
	a.Handler = webapp.Handler(a.API, webapp.Options{Demo: cfg.DemoApp, EnvFile: filepath.Join(cfg.DataDir, "bootstrap.env")})
	return a, nil
}

// Close stops the dev chains and releases the job queue's connections and the database.
// Serve has stopped the queue.
func (a *App) Close() error { return errors.Join(a.Chains.Close(), a.Jobs.Close(), a.DB.Close()) }

// Listen opens the configured address (TLS when configured).
func (a *App) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.Cfg.Listen)
	if err != nil {
		return nil, err
	}
	tc, err := a.tlsConfig(ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	return ln, nil
}

func (a *App) tlsConfig(addr net.Addr) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	switch {
	case a.Cfg.TLSCert != "":
		cert, err = tls.LoadX509KeyPair(a.Cfg.TLSCert, a.Cfg.TLSKey)
	case a.Cfg.TLSSelfSigned:
		host, _, _ := net.SplitHostPort(addr.String())
		var files tlsutil.Files
		cert, files, err = tlsutil.EnsureSelfSigned(filepath.Join(a.Cfg.DataDir, "tls"), host)
		if err == nil {
			a.Log.Info("serving HTTPS with a self-signed certificate; trust its CA", "ca", files.CA)
		}
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Serve works background jobs and answers HTTP on ln until ctx is done, then shuts both
// down gracefully.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	// WebAuthn origins name the real port, known only now (it may have been 0).
	a.Users.SetOrigins(a.Cfg.WebOrigins(ln.Addr().String()))
	if a.Cfg.NoJobs { // an API-only node: jobs it queues are worked by the others
		return a.serveHTTP(ctx, ln)
	}
	if err := a.Jobs.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	err := a.serveHTTP(ctx, ln)
	// Running jobs get a grace period too; a job cut short runs again later.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, a.Jobs.Stop(sctx))
}

func (a *App) serveHTTP(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	if a.Cfg.DebugListen != "" {
		go a.serveDebug(ctx)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	return err
}

// serveDebug exposes the Go profiler on a separate (loopback) address.
func (a *App) serveDebug(ctx context.Context) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Addr: a.Cfg.DebugListen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.Log.Warn("debug listener failed", "err", err)
	}
}

// purgeArgs is the periodic job that deletes user actions long past use.
type purgeArgs struct{}

func (purgeArgs) Kind() string { return "purge_user_actions" }

// purgeWorker runs purgeArgs. A missed or repeated run loses nothing: the next run deletes
// the same rows.
type purgeWorker struct {
	river.WorkerDefaults[purgeArgs]
	a *App
}

func (w *purgeWorker) Work(ctx context.Context, _ *river.Job[purgeArgs]) error {
	n, err := w.a.DB.PurgeUserActions(ctx, w.a.Now().Add(-24*time.Hour))
	if err != nil {
		return err
	}
	if n > 0 {
		w.a.Log.Info("purged old user actions", "count", n)
	}
	if n, err = w.a.DB.PurgeAuthCeremonies(ctx, w.a.Now().Add(-24*time.Hour)); err != nil {
		return err
	}
	if n > 0 {
		w.a.Log.Info("purged old login, registration and recovery ceremonies and codes", "count", n)
	}
	return nil
}
