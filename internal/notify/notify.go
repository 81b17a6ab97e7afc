// Package notify delivers one-time codes (registration, recovery) to people. SMTP is used
// when configured (--smtp-url); otherwise the message goes to the server log, and the
// services that can hand a code back to an authenticated admin do so (see users.Service).
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"strings"
	"time"
)

// Message is one email-like notice.
type Message struct {
	To      string
	Subject string
	Body    string
}

// Notifier sends messages.
type Notifier interface {
	Send(ctx context.Context, m Message) error
	// Delivers reports whether messages reach the recipient (false: the log only).
	Delivers() bool
}

// Log writes messages to the server log: the fallback without SMTP. Codes then reach an
// operator, never the network.
type Log struct{ L *slog.Logger }

// Send logs m.
func (l Log) Send(_ context.Context, m Message) error {
	l.L.Info("notification (no SMTP configured)", "to", m.To, "subject", m.Subject, "body", m.Body)
	return nil
}

// Delivers is false: nobody but the operator sees the log.
func (Log) Delivers() bool { return false }

// SMTP sends mail through one server given as a URL:
// smtp://user:pass@host:587?from=noreply@example.com (STARTTLS when offered; PLAIN auth
// when a user is given, which net/smtp only allows over TLS or to localhost).
type SMTP struct {
	Addr string
	From string
	Auth smtp.Auth
}

// ParseSMTP parses --smtp-url.
func ParseSMTP(raw string) (*SMTP, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "smtp" || u.Host == "" {
		return nil, errors.New("notify: --smtp-url must look like smtp://[user:pass@]host:port?from=address")
	}
	from := u.Query().Get("from")
	if _, err := mail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("notify: --smtp-url needs a valid from= address: %v", err)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, "25"
	}
	s := &SMTP{Addr: net.JoinHostPort(host, port), From: from}
	if u.User != nil {
		pass, _ := u.User.Password()
		s.Auth = smtp.PlainAuth("", u.User.Username(), pass, host)
	}
	return s, nil
}

// Delivers is true.
func (*SMTP) Delivers() bool { return true }

// Send sends m. Header values are checked for line breaks so a username can never inject
// headers.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	for _, v := range []string{m.To, m.Subject, s.From} {
		if strings.ContainsAny(v, "\r\n") {
			return errors.New("notify: line break in a header value")
		}
	}
	if _, err := mail.ParseAddress(m.To); err != nil {
		return fmt.Errorf("notify: recipient %q is not an email address", m.To)
	}
	msg := "From: " + s.From + "\r\nTo: " + m.To + "\r\nSubject: " + m.Subject +
		"\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) +
		"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.ReplaceAll(m.Body, "\n", "\r\n") + "\r\n"
	done := make(chan error, 1)
	go func() { done <- smtp.SendMail(s.Addr, s.Auth, s.From, []string{m.To}, []byte(msg)) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
