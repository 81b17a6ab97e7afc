package webhooks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The signature test vector of dfns-api.md §2.10 item 3.
func TestSignVector(t *testing.T) {
	body := []byte(`{"id":"whe-test-1","kind":"wallet.created","date":"2024-01-01T00:00:00.000Z","data":{"wallet":{"id":"wa-test"}},"deliveryAttempt":1,"timestampSent":1704067200}`)
	const want = "sha256=caaf475c8362e370c8aa70c78337bfdf3a20a618f858dc72dd88d33b98c5b304"
	if got := Sign("whs-test-secret", body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if !Verify("whs-test-secret", body, want) || Verify("whs-test-secret", append(body, ' '), want) || Verify("other", body, want) {
		t.Fatal("Verify accepts what it must not, or refuses the vector")
	}
	// The envelope encodes to exactly these bytes.
	got, err := Envelope{ID: "whe-test-1", Kind: "wallet.created", Date: "2024-01-01T00:00:00.000Z",
		Data: json.RawMessage(`{"wallet": {"id": "wa-test"}}`), DeliveryAttempt: 1, TimestampSent: 1704067200}.Body()
	if err != nil || string(got) != string(body) {
		t.Fatalf("Body = %s %v", got, err)
	}
}

var canonCases = []struct{ name, in, want string }{
	{"compact", "{ \"a\" : [1, 2 ,{}], \"b\":null }", `{"a":[1,2,{}],"b":null}`},
	{"html-raw", `{"s":"<a href=\"x\">&amp;</a>"}`, `{"s":"<a href=\"x\">&amp;</a>"}`},
	{"line-separators-raw", `{"s":"a\u2028b\u2029c"}`, "{\"s\":\"a\u2028b\u2029c\"}"},
	{"control-escapes", `{"s":"\u0001\b\f\n\r\t\"\\/"}`, `{"s":"\u0001\b\f\n\r\t\"\\/"}`},
	{"unicode-raw", `{"s":"\u00e9\ud83d\ude00"}`, `{"s":"é😀"}`},
	{"index-keys-first", `{"b":1,"10":2,"a":3,"2":4,"01":5}`, `{"2":4,"10":2,"b":1,"a":3,"01":5}`},
	{"duplicate-key-keeps-place", `{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
	{"numbers", `[1.0, -0, 1e21, 1e-7, 0.5, 123456789012, 1E3]`, `[1,0,1e+21,1e-7,0.5,123456789012,1000]`},
	{"nested", `{"x":{"y":[true,false,"z"]}}`, `{"x":{"y":[true,false,"z"]}}`},
}

func TestCanonical(t *testing.T) {
	for _, c := range canonCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Canonical([]byte(c.in))
			if err != nil || string(got) != c.want {
				t.Fatalf("Canonical(%s) = %s %v, want %s", c.in, got, err, c.want)
			}
		})
	}
	for _, bad := range []string{``, `{`, `{"a":1} x`, `[1,]`, `1e999`} {
		if _, err := Canonical([]byte(bad)); err == nil {
			t.Errorf("Canonical(%q) succeeded", bad)
		}
	}
}

// TestCanonicalMatchesJavaScript checks every case against node's
// JSON.stringify(JSON.parse(s)), the receiver-side computation the signature must survive.
func TestCanonicalMatchesJavaScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	var ins []string
	for _, c := range canonCases {
		ins = append(ins, c.in)
	}
	in, _ := json.Marshal(ins)
	cmd := exec.Command(node, "-e", `let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{process.stdout.write(JSON.stringify(JSON.parse(s).map(x=>JSON.stringify(JSON.parse(x)))))})`)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var js []string
	if err := json.Unmarshal(out, &js); err != nil {
		t.Fatal(err)
	}
	for i, c := range canonCases {
		got, _ := Canonical([]byte(c.in))
		if string(got) != js[i] {
			t.Errorf("%s: Go %s, JavaScript %s", c.name, got, js[i])
		}
	}
}

func TestBlocked(t *testing.T) {
	for _, c := range []struct {
		ip      string
		blocked bool
	}{
		{"127.0.0.1", true}, {"127.8.9.10", true}, {"::1", true}, {"10.1.2.3", true}, {"172.16.0.1", true},
		{"172.31.255.255", true}, {"192.168.1.1", true}, {"169.254.169.254", true}, {"fe80::1", true},
		{"fd00:ec2::254", true}, {"100.64.0.1", true}, {"100.100.100.200", true}, {"0.0.0.0", true}, {"::", true},
		{"::ffff:127.0.0.1", true}, {"::ffff:10.0.0.1", true}, {"224.0.0.1", true}, {"255.255.255.255", true},
		{"64:ff9b::a00:1", true}, {"198.18.0.1", true},
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"172.32.0.1", false}, {"100.128.0.1", false}, {"2606:4700::1111", false},
	} {
		if got := Blocked(netip.MustParseAddr(c.ip)); got != c.blocked {
			t.Errorf("Blocked(%s) = %v, want %v", c.ip, got, c.blocked)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []time.Duration
		ok   bool
	}{
		{DefaultSchedule, []time.Duration{time.Minute, 12 * time.Minute, 2 * time.Hour, 24 * time.Hour}, true},
		{"1s, 2s,4s", []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, true},
		{"", nil, true},
		{"2s,1s", nil, false},
		{"1s,1s", nil, false},
		{"0s", nil, false},
		{"-1s", nil, false},
		{"soon", nil, false},
	} {
		got, err := ParseSchedule(c.in)
		if (err == nil) != c.ok || len(got) != len(c.want) {
			t.Errorf("ParseSchedule(%q) = %v %v", c.in, got, err)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("ParseSchedule(%q)[%d] = %v", c.in, i, got[i])
			}
		}
	}
}

// TestClient: the dialer refuses loopback unless allowed; redirects are not followed;
// only 200 counts; the body arrives signed.
func TestClient(t *testing.T) {
	var got []byte
	var sig string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/created":
			w.WriteHeader(http.StatusCreated)
		default:
			got, _ = io.ReadAll(r.Body)
			sig = r.Header.Get(SignatureHeader)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	body := []byte(`{"a":1}`)

	res := NewClient(false).Post(ctx, srv.URL+"/ok", "whs-x", body)
	if res.OK() || res.Status != "0" || !strings.Contains(res.Error, "127.0.0.1") || got != nil {
		t.Fatalf("loopback not refused: %+v (receiver got %q)", res, got)
	}
	name := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) // a name that resolves to loopback
	if res := NewClient(false).Post(ctx, name+"/ok", "whs-x", body); res.OK() || got != nil {
		t.Fatalf("loopback by name not refused: %+v", res)
	}
	c := NewClient(true)
	if res := c.Post(ctx, srv.URL+"/ok", "whs-x", body); !res.OK() || string(got) != string(body) || !Verify("whs-x", got, sig) {
		t.Fatalf("allowed delivery: %+v body %q sig %q", res, got, sig)
	}
	got = nil
	if res := c.Post(ctx, srv.URL+"/redirect", "whs-x", body); res.OK() || res.Status != "302" || got != nil {
		t.Fatalf("redirect followed or counted: %+v", res)
	}
	if res := c.Post(ctx, srv.URL+"/created", "whs-x", body); res.OK() || res.Status != "201" {
		t.Fatalf("201 counted as delivered: %+v", res)
	}
}
