// Package config holds countersign's server configuration: one struct with defaults,
// filled from flags and COUNTERSIGN_* environment variables by the command line parser,
// and checked by Validate. Secrets never live here, only paths to them.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/webhooks"
)

// Config is the serve configuration.
type Config struct {
	Listen        string        `help:"Address to listen on." default:"127.0.0.1:8080" env:"COUNTERSIGN_LISTEN"`
	DataDir       string        `help:"Directory for the SQLite database, master key, bootstrap credentials and TLS files." default:"./countersign-data" env:"COUNTERSIGN_DATA_DIR"`
	Database      string        `help:"Database: a postgres:// URL selects PostgreSQL; empty means SQLite at <data-dir>/countersign.db." env:"COUNTERSIGN_DATABASE"`
	MasterKeyFile string        `help:"Key-encryption key file (created 0600 on first start); empty means <data-dir>/master.key." env:"COUNTERSIGN_MASTER_KEY_FILE"`
	TLSCert       string        `name:"tls-cert" help:"TLS certificate (PEM) to serve HTTPS with." env:"COUNTERSIGN_TLS_CERT"`
	TLSKey        string        `name:"tls-key" help:"TLS private key (PEM)." env:"COUNTERSIGN_TLS_KEY"`
	TLSSelfSigned bool          `name:"tls-self-signed" help:"Serve HTTPS with a certificate from a CA generated in <data-dir>/tls (trust tls/ca.pem)." env:"COUNTERSIGN_TLS_SELF_SIGNED"`
	PublicURL     string        `name:"public-url" help:"Base URL clients use, written to bootstrap.env; derived from --listen when empty." env:"COUNTERSIGN_PUBLIC_URL"`
	RPID          string        `name:"rp-id" help:"WebAuthn relying party id." default:"localhost" env:"COUNTERSIGN_RP_ID"`
	RPName        string        `name:"rp-name" help:"WebAuthn relying party name." default:"countersign" env:"COUNTERSIGN_RP_NAME"`
	ChallengeTTL  time.Duration `name:"challenge-ttl" help:"Lifetime of user action challenges and tokens." default:"5m" env:"COUNTERSIGN_CHALLENGE_TTL"`
	LogLevel      string        `name:"log-level" help:"debug, info, warn or error." default:"info" enum:"debug,info,warn,error" env:"COUNTERSIGN_LOG_LEVEL"`
	EVMRPC        []string      `name:"evm-rpc" help:"RPC endpoint of an EVM network, as Network=URL (repeatable). Every other EVM network runs on an embedded dev chain." env:"COUNTERSIGN_EVM_RPC"`
	BitcoinRPC    []string      `name:"bitcoin-rpc" help:"JSON-RPC endpoint of a Bitcoin node (bitcoind or btcd, with -txindex) for a Bitcoin network, as Network=http://user:pass@host:port (repeatable). Psbt broadcasts on that network go to it; without one they are refused." env:"COUNTERSIGN_BITCOIN_RPC"`
	DebugListen   string        `name:"debug-listen" help:"Serve /debug/pprof on this address (off when empty; keep it on loopback)." env:"COUNTERSIGN_DEBUG_LISTEN"`
	NoJobs        bool          `name:"no-jobs" help:"Serve the API but work no background jobs (other nodes on the same database work them)." env:"COUNTERSIGN_NO_JOBS"`
	NoBootstrap   bool          `name:"no-bootstrap" help:"Do not create the first organization and admin service account." env:"COUNTERSIGN_NO_BOOTSTRAP"`
	Origins       []string      `name:"origin" help:"Allowed WebAuthn origin, scheme://host[:port] (repeatable); default: the public URL, or http(s)://localhost and http(s)://<rp-id> on the listening port." env:"COUNTERSIGN_ORIGIN"`
	DemoApp       bool          `name:"demo-app" help:"Development only: serve POST /app/demo/signup, which signs end users up with the bootstrap admin service account for the /app/ page (anyone reaching it can create end users)." env:"COUNTERSIGN_DEMO_APP"`
	SMTPURL       string        `name:"smtp-url" help:"Send registration and recovery codes by mail: smtp://[user:pass@]host:port?from=address. Without it codes go to the log (and registration codes to the admin who created the user)." env:"COUNTERSIGN_SMTP_URL"`
	// Job timing: how soon the job of a node that died mid-run is retried by another (crash tests shorten it).
	JobTimeout     time.Duration `name:"job-timeout" help:"Longest run of one background job (0: 1m)." env:"COUNTERSIGN_JOB_TIMEOUT"`
	JobRescueAfter time.Duration `name:"job-rescue-after" help:"Age at which a running job is taken to belong to a dead node and retried; must exceed --job-timeout (0: job timeout + 1m)." env:"COUNTERSIGN_JOB_RESCUE_AFTER"`
	// Webhooks (internal/webhooks).
	WebhookRetrySchedule string `name:"webhook-retry-schedule" help:"Delays of webhook delivery retries, each counted from the first attempt (Dfns: 1m,12m,2h,24h)." default:"1m,12m,2h,24h" env:"COUNTERSIGN_WEBHOOK_RETRY_SCHEDULE"`
	WebhooksAllowPrivate bool   `name:"webhooks-allow-private" help:"Let webhooks call private, loopback and link-local addresses (refused by default: SSRF)." env:"COUNTERSIGN_WEBHOOKS_ALLOW_PRIVATE"`
}

// WebOrigins returns the WebAuthn origins to accept for a server listening on addr (the
// real address, after a port 0 was resolved): --origin when given, else the public URL's
// origin, else localhost and the rp-id on the listening port, over http and https.
func (c *Config) WebOrigins(addr string) []string {
	if len(c.Origins) > 0 {
		return c.Origins
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err == nil {
			return []string{u.Scheme + "://" + u.Host}
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	var out []string
	for _, host := range []string{"localhost", c.RPID} {
		for _, scheme := range []string{"http", "https"} {
			o := scheme + "://" + net.JoinHostPort(host, port)
			if host != "" && !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	return out
}

// DSN returns the database to open.
func (c *Config) DSN() string {
	if c.Database != "" {
		return c.Database
	}
	return filepath.Join(c.DataDir, "countersign.db")
}

// KeyFile returns the master key file path.
func (c *Config) KeyFile() string {
	if c.MasterKeyFile != "" {
		return c.MasterKeyFile
	}
	return filepath.Join(c.DataDir, "master.key")
}

// TLS reports whether HTTPS is served.
func (c *Config) TLS() bool { return c.TLSSelfSigned || c.TLSCert != "" }

// Validate checks the configuration before anything is opened.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("config: --data-dir must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("config: --listen %q: %v", c.Listen, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("config: --tls-cert and --tls-key go together")
	}
	if c.TLSCert != "" && c.TLSSelfSigned {
		return errors.New("config: choose --tls-cert/--tls-key or --tls-self-signed, not both")
	}
	if c.ChallengeTTL < 10*time.Second || c.ChallengeTTL > time.Hour {
		return errors.New("config: --challenge-ttl must be between 10s and 1h")
	}
	for _, o := range c.Origins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https" && !strings.HasPrefix(o, "android:apk-key-hash:")) || (u.Host == "" && u.Opaque == "") || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("config: --origin %q must be scheme://host[:port]", o)
		}
	}
	if c.JobTimeout < 0 || c.JobRescueAfter < 0 {
		return errors.New("config: --job-timeout and --job-rescue-after must not be negative")
	}
	if _, err := webhooks.ParseSchedule(c.WebhookRetrySchedule); err != nil {
		return fmt.Errorf("config: --webhook-retry-schedule: %v", err)
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		return errors.New("config: --public-url must start with http:// or https://")
	}
	return nil
}

// BaseURL is what clients should use to reach the server listening on addr (the real
// address, after a port 0 was resolved).
func (c *Config) BaseURL(addr string) string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if c.TLS() {
		scheme = "https"
		if host == "127.0.0.1" {
			host = "localhost" // the self-signed certificate names localhost and 127.0.0.1; keep the name
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
