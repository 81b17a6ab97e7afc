package notify

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSMTP is a minimal SMTP server on loopback that records one message per session: the
// edge we do not own, faked rather than mocked.
type fakeSMTP struct {
	ln   net.Listener
	mu   sync.Mutex
	rcpt []string
	data []string
}

func startFakeSMTP(t *testing.T) *fakeSMTP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSMTP{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeSMTP) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	say := func(s string) { c.Write([]byte(s + "\r\n")) }
	say("220 fake ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 fake")
		case strings.HasPrefix(cmd, "MAIL FROM"):
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO"):
			f.mu.Lock()
			f.rcpt = append(f.rcpt, strings.TrimSpace(line[len("RCPT TO:"):]))
			f.mu.Unlock()
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			f.mu.Lock()
			f.data = append(f.data, b.String())
			f.mu.Unlock()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func TestSMTPDelivers(t *testing.T) {
	f := startFakeSMTP(t)
	s, err := ParseSMTP("smtp://" + f.ln.Addr().String() + "?from=noreply@example.co")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Delivers() {
		t.Fatal("SMTP must report delivery")
	}
	if err := s.Send(context.Background(), Message{To: "jane@example.co", Subject: "Your code", Body: "code ABC-DEF-GHJ\nbye"}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.rcpt) != 1 || f.rcpt[0] != "<jane@example.co>" || len(f.data) != 1 {
		t.Fatalf("rcpt %v, data %d", f.rcpt, len(f.data))
	}
	for _, want := range []string{"From: noreply@example.co\r\n", "To: jane@example.co\r\n", "Subject: Your code\r\n", "code ABC-DEF-GHJ\r\nbye"} {
		if !strings.Contains(f.data[0], want) {
			t.Errorf("message lacks %q:\n%s", want, f.data[0])
		}
	}
}

func TestSMTPRefusesHeaderInjection(t *testing.T) {
	s := &SMTP{Addr: "127.0.0.1:1", From: "noreply@example.co"}
	for _, m := range []Message{
		{To: "jane@example.co\r\nBcc: x@example.co", Subject: "s"},
		{To: "jane@example.co", Subject: "s\nBcc: x@example.co"},
		{To: "not an address", Subject: "s"},
	} {
		if err := s.Send(context.Background(), m); err == nil {
			t.Errorf("sent %+v", m)
		}
	}
}

func TestParseSMTP(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"smtp://mail.example.co:587?from=noreply@example.co", true},
		{"smtp://user:pw@mail.example.co?from=noreply@example.co", true},
		{"smtp://mail.example.co:25", false},
		{"http://mail.example.co?from=noreply@example.co", false},
		{"smtp://?from=noreply@example.co", false},
	} {
		s, err := ParseSMTP(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("ParseSMTP(%q) = %v, %v", tc.url, s, err)
		}
	}
}
