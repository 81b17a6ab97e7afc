package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Client timeouts: a slow or dead receiver costs a delivery worker at most about
// AttemptTimeout, and never an API request (deliveries run in background jobs).
const (
	DialTimeout    = 5 * time.Second
	AttemptTimeout = 15 * time.Second
	maxResponse    = 64 << 10 // read (and discard) at most this much of a receiver's answer
)

// blockedPrefixes are the ranges refused unless private addresses are allowed, besides
// what netip classifies as loopback, private, link-local, multicast or unspecified.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT (RFC 6598); also Alibaba's metadata address
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and the broadcast address
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64: reaches IPv4 through a translator
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// Blocked reports whether ip is an address a webhook may not reach by default: loopback,
// private (RFC 1918, fc00::/7), link-local (incl. the cloud metadata address
// 169.254.169.254), CGNAT, multicast, unspecified and reserved ranges.
func Blocked(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ErrBlocked is the dial error for a refused address.
var ErrBlocked = errors.New("webhooks: address refused")

// Client posts deliveries. Its dialer checks the address it actually connects to (after
// DNS), so a name that resolves, or later rebinds, to a private address is refused too;
// redirects are never followed and no proxy from the environment is used.
type Client struct {
	http *http.Client
}

// NewClient builds the delivery client; allowPrivate lifts the address check (for
// receivers on loopback or a private network, and for tests).
func NewClient(allowPrivate bool) *Client {
	d := &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s is not an IP address", ErrBlocked, address)
			}
			if Blocked(ap.Addr()) {
				return fmt.Errorf("%w: %s is a private, loopback or link-local address (allow with --webhooks-allow-private)", ErrBlocked, ap.Addr())
			}
			return nil
		}
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   DialTimeout,
		ResponseHeaderTimeout: AttemptTimeout,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Client{http: &http.Client{
		Transport:     tr,
		Timeout:       AttemptTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Result is the outcome of one POST: the HTTP status as a string ("200"), or "0" when no
// response came, and an error message for anything but 200.
type Result struct {
	Status string
	Error  string
}

// OK reports a delivery: exactly 200 counts (dfns-api.md §5.5).
func (r Result) OK() bool { return r.Status == "200" }

// Post sends body, signed with secret, to url.
func (c *Client) Post(ctx context.Context, url, secret string, body []byte) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{Status: "0", Error: "invalid webhook url"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "countersign-webhooks/1")
	req.Header.Set(SignatureHeader, Sign(secret, body))
	res, err := c.http.Do(req)
	if err != nil {
		return Result{Status: "0", Error: describe(err)}
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, maxResponse))
	res.Body.Close()
	r := Result{Status: strconv.Itoa(res.StatusCode)}
	if !r.OK() {
		r.Error = "receiver answered " + res.Status
		if res.StatusCode >= 300 && res.StatusCode < 400 {
			r.Error += " (redirects are not followed)"
		}
	}
	return r
}

// describe gives a short message for a transport error, without Go's wrapping noise.
func describe(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ErrBlocked):
		msg := err.Error()
		if i := strings.Index(msg, ErrBlocked.Error()); i >= 0 {
			msg = msg[i+len("webhooks: "):]
		}
		return msg
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return msg
}
