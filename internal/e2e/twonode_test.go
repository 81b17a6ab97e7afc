package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/testutil"
)

// TestTwoNodesOnePostgres runs two real countersign processes over one PostgreSQL schema
// and checks that everything single-use stays single-use across nodes: they start at the
// same time (one bootstrap), a challenge made on one node is signed on the other, a user
// action token is accepted exactly once whichever node sees it, and a revoked token stops
// working on the other node at once.
func TestTwoNodesOnePostgres(t *testing.T) {
	pg := ""
	for _, e := range testutil.Engines(t) { // fails under CI without PostgreSQL
		if e.Name == "postgres" {
			pg = os.Getenv("COUNTERSIGN_TEST_POSTGRES")
		}
	}
	if pg == "" {
		t.Skip("COUNTERSIGN_TEST_POSTGRES is not set")
	}
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	started := time.Now()
	bin := tnBuild(t)
	t.Logf("built %s in %v", filepath.Base(bin), time.Since(started).Round(time.Millisecond))
	launched := time.Now()
	dsn := testutil.PostgresSchema(t, pg)

	root := t.TempDir()
	keyFile := filepath.Join(root, "master.key")
	dirA, dirB := filepath.Join(root, "node-a"), filepath.Join(root, "node-b")

	// The key file is created once, by a migrate run, so the two nodes do not race to
	// create two different keys at the same path.
	mctx, mcancel := context.WithTimeout(context.Background(), 60*time.Second)
	out, err := tnCommand(mctx, bin, "migrate", "--database", dsn, "--master-key-file", keyFile, "--data-dir", dirA).CombinedOutput()
	mcancel()
	if err != nil {
		t.Fatalf("countersign migrate: %v\n%s", err, out)
	}
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatalf("migrate did not create the master key file: %v", err)
	}

	// Both nodes start at the same moment on the same database.
	a, b := &tnNode{name: "A", dir: dirA}, &tnNode{name: "B", dir: dirB}
	ports := tnFreePorts(t, 2)
	a.addr, b.addr = ports[0], ports[1]
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for _, n := range []*tnNode{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			n.start(t, bin, dsn, keyFile)
		}()
	}
	close(gate)
	wg.Wait()
	for _, n := range []*tnNode{a, b} {
		if n.startErr != nil {
			t.Fatalf("node %s: start: %v", n.name, n.startErr)
		}
	}
	var hwg sync.WaitGroup
	for _, n := range []*tnNode{a, b} {
		hwg.Add(1)
		go func() { defer hwg.Done(); n.healthErr = n.waitHealthy(20 * time.Second) }()
	}
	hwg.Wait()
	for _, n := range []*tnNode{a, b} {
		if n.healthErr != nil {
			t.Fatalf("node %s: %v", n.name, n.healthErr)
		}
	}
	t.Logf("migrated, started and healthy in %v", time.Since(launched).Round(time.Millisecond))

	// Exactly one node bootstrapped, and the loser left nothing behind.
	var envPath string
	for _, n := range []*tnNode{a, b} {
		p := filepath.Join(n.dir, "bootstrap.env")
		if _, err := os.Stat(p); err == nil {
			if envPath != "" {
				t.Fatalf("both nodes wrote bootstrap.env: %s and %s", envPath, p)
			}
			envPath = p
			t.Logf("node %s won the bootstrap", n.name)
		}
		for _, tmp := range []string{"bootstrap.env.tmp", "bootstrap-admin-key.pem.tmp"} {
			if _, err := os.Stat(filepath.Join(n.dir, tmp)); err == nil {
				t.Errorf("node %s left %s behind", n.name, tmp)
			}
		}
	}
	if envPath == "" {
		t.Fatal("no node wrote bootstrap.env")
	}
	env, err := client.LoadEnv(envPath)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	cA, cB := *admin, *admin
	cA.BaseURL, cB.BaseURL = a.url(), b.url()
	ctx := context.Background()
	const saPath = "/auth/service-accounts"

	t.Run("ChallengeOnAUsedOnBReplayRefused", func(t *testing.T) {
		name, body := tnServiceAccountBody(t, "cross")
		ch, err := cA.InitUserAction(ctx, http.MethodPost, saPath, body)
		if err != nil {
			t.Fatalf("init on A: %v", err)
		}
		asr, err := admin.Signer.Sign(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		ua, err := cB.CompleteUserAction(ctx, ch.ChallengeIdentifier, asr)
		if err != nil {
			t.Fatalf("challenge made on A, signed on B: %v", err)
		}
		code, resp, err := cA.Raw(ctx, http.MethodPost, saPath, body, ua)
		if err != nil || code != http.StatusOK {
			t.Fatalf("request on A: %d %s %v", code, resp, err)
		}
		code, resp, err = cB.Raw(ctx, http.MethodPost, saPath, body, ua)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusBadRequest || tnMessage(resp) != "user action has already been used" {
			t.Errorf("replay on B: got %d %s, want 400 \"user action has already been used\"", code, resp)
		}
		if n := tnCountServiceAccounts(t, &cB, name); n != 1 {
			t.Errorf("service accounts named %s seen from B: %d, want 1", name, n)
		}
	})

	t.Run("TokenRace", func(t *testing.T) {
		const rounds = 20
		var names []string
		wins := map[string]int{}
		for i := range rounds {
			name, body := tnServiceAccountBody(t, fmt.Sprintf("race%02d", i))
			names = append(names, name)
			issuer := &cA
			if i%2 == 1 {
				issuer = &cB
			}
			ua, err := issuer.UserAction(ctx, http.MethodPost, saPath, body)
			if err != nil {
				t.Fatalf("round %d: user action: %v", i, err)
			}
			type result struct {
				code int
				body []byte
				err  error
			}
			var res [2]result
			var wg sync.WaitGroup
			gate := make(chan struct{})
			for j, c := range []*client.Client{&cA, &cB} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-gate
					res[j].code, res[j].body, res[j].err = c.Raw(ctx, http.MethodPost, saPath, body, ua)
				}()
			}
			close(gate)
			wg.Wait()
			ok, refused := 0, 0
			for j, r := range res {
				switch {
				case r.err != nil:
					t.Errorf("round %d node %s: %v", i, "AB"[j:j+1], r.err)
				case r.code == http.StatusOK:
					ok++
					wins["AB"[j:j+1]]++
				case r.code == http.StatusBadRequest && tnMessage(r.body) == "user action has already been used":
					refused++
				default:
					t.Errorf("round %d node %s: unexpected %d %s", i, "AB"[j:j+1], r.code, r.body)
				}
			}
			if ok != 1 || refused != 1 {
				t.Errorf("round %d: %d accepted and %d refused, want exactly 1 and 1 (A: %d %s; B: %d %s)",
					i, ok, refused, res[0].code, res[0].body, res[1].code, res[1].body)
			}
		}
		t.Logf("token race: A won %d, B won %d of %d rounds", wins["A"], wins["B"], rounds)
		sas := tnListServiceAccounts(t, &cA)
		for _, name := range names {
			n := 0
			for _, sa := range sas {
				if sa.UserInfo.Name == name {
					n++
				}
			}
			if n != 1 {
				t.Errorf("service account %s exists %d times, want 1", name, n)
			}
		}
	})

	t.Run("ChallengeRace", func(t *testing.T) {
		const rounds = 10
		for i := range rounds {
			_, body := tnServiceAccountBody(t, fmt.Sprintf("chrace%02d", i))
			ch, err := cA.InitUserAction(ctx, http.MethodPost, saPath, body)
			if err != nil {
				t.Fatal(err)
			}
			asr, err := admin.Signer.Sign(ctx, ch)
			if err != nil {
				t.Fatal(err)
			}
			var tokens [2]string
			var errs [2]error
			var wg sync.WaitGroup
			gate := make(chan struct{})
			for j, c := range []*client.Client{&cA, &cB} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-gate
					tokens[j], errs[j] = c.CompleteUserAction(ctx, ch.ChallengeIdentifier, asr)
				}()
			}
			close(gate)
			wg.Wait()
			winner := -1
			for j := range 2 {
				if errs[j] == nil && tokens[j] != "" {
					if winner >= 0 {
						t.Fatalf("round %d: the same signed challenge earned a user action on both nodes", i)
					}
					winner = j
				} else if st := status(errs[j]); st != http.StatusBadRequest && st != http.StatusUnauthorized {
					t.Errorf("round %d node %s: refusal was %v, want a 400 or 401 error", i, "AB"[j:j+1], errs[j])
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: no node accepted the signed challenge: A %v; B %v", i, errs[0], errs[1])
			}
			// The winning token works, once, on the other node.
			other := []*client.Client{&cB, &cA}[winner]
			if code, resp, err := other.Raw(ctx, http.MethodPost, saPath, body, tokens[winner]); err != nil || code != http.StatusOK {
				t.Errorf("round %d: the winning token on the other node: %d %s %v", i, code, resp, err)
			}
		}
	})

	t.Run("RevocationAcrossNodes", func(t *testing.T) {
		k := newKey(t, "Ed25519")
		pat, err := cA.CreatePAT(ctx, client.CreateTokenRequest{Name: "twonode-pat", PublicKey: k.PublicPEM})
		if err != nil {
			t.Fatalf("create PAT on A: %v", err)
		}
		if pat.AccessToken == "" {
			t.Fatalf("PAT without a token: %+v", pat)
		}
		patB := client.New(b.url(), pat.AccessToken, k.Signer(t, pat.CredID))
		if _, err := patB.ListPATs(ctx); err != nil {
			t.Fatalf("PAT on B: %v", err)
		}
		// A signed write too, so B has verified and cached the token and its credential.
		if _, err := patB.CreateServiceAccount(ctx, client.CreateTokenRequest{Name: "made-by-pat", PublicKey: newKey(t, "Ed25519").PublicPEM}); err != nil {
			t.Fatalf("signed write with the PAT on B: %v", err)
		}
		if _, err := cA.SetPATActive(ctx, pat.TokenID, false); err != nil {
			t.Fatalf("deactivate the PAT on A: %v", err)
		}
		if _, err := patB.ListPATs(ctx); status(err) != http.StatusUnauthorized {
			t.Fatalf("deactivated PAT on B: got %v, want 401", err)
		}
		if _, err := patB.CreateServiceAccount(ctx, client.CreateTokenRequest{Name: "made-by-dead-pat", PublicKey: newKey(t, "Ed25519").PublicPEM}); status(err) != http.StatusUnauthorized {
			t.Fatalf("signed write with the deactivated PAT on B: got %v, want 401", err)
		}
	})
	t.Logf("total %v", time.Since(started).Round(time.Millisecond))
}

// tnNode is one countersign serve process.
type tnNode struct {
	name, dir, addr string
	cmd             *exec.Cmd
	out             tnBuffer
	done            chan struct{} // closed when the process has exited
	waitErr         error         // valid after done
	startErr        error
	healthErr       error
}

func (n *tnNode) url() string { return "http://" + n.addr }

// start launches the node and registers its shutdown (SIGTERM, at most 10 s) and, if the
// test failed, the dump of its output.
func (n *tnNode) start(t *testing.T, bin, dsn, keyFile string) {
	ctx, cancel := context.WithCancel(context.Background())
	n.cmd = tnCommand(ctx, bin, "serve", "--listen", n.addr, "--data-dir", n.dir,
		"--database", dsn, "--master-key-file", keyFile)
	n.cmd.Stdout, n.cmd.Stderr = &n.out, &n.out
	n.done = make(chan struct{})
	if n.startErr = n.cmd.Start(); n.startErr != nil {
		cancel()
		return
	}
	go func() { n.waitErr = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		defer cancel() // kills the process if it is still there
		select {
		case <-n.done:
			t.Errorf("node %s exited before the end of the test: %v", n.name, n.waitErr)
		default:
			if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Errorf("node %s: SIGTERM: %v", n.name, err)
			}
			select {
			case <-n.done:
				if n.waitErr != nil {
					t.Errorf("node %s exited with %v after SIGTERM", n.name, n.waitErr)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("node %s did not exit within 10s of SIGTERM", n.name)
				cancel()
				<-n.done
			}
		}
		if t.Failed() {
			t.Logf("node %s (%s) output:\n%s", n.name, n.addr, n.out.String())
		}
	})
}

// waitHealthy polls GET /healthz until it answers 200.
func (n *tnNode) waitHealthy(timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			return fmt.Errorf("exited before becoming healthy: %v", n.waitErr)
		default:
		}
		res, err := hc.Get(n.url() + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = res.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("GET /healthz not 200 within %v (last: %s)", timeout, last)
}

// tnBuffer is a bytes.Buffer safe for the process's output copier and the test.
type tnBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *tnBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *tnBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tnCommand runs the binary with no COUNTERSIGN_* settings from the environment, so only
// the flags configure it.
func tnCommand(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COUNTERSIGN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// tnBuild compiles cmd/countersign from the module root into a temporary directory.
func tnBuild(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(wd, "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", wd, err)
	}
	bin := filepath.Join(t.TempDir(), "countersign")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/countersign")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/countersign: %v\n%s", err, out)
	}
	return bin
}

// tnFreePorts finds n free loopback ports (all held open until all are chosen, so they
// differ).
func tnFreePorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// tnServiceAccountBody is the JSON body creating a service account with a fresh key and a
// unique name.
func tnServiceAccountBody(t *testing.T, prefix string) (string, []byte) {
	t.Helper()
	name := fmt.Sprintf("twonode-%s-%d", prefix, time.Now().UnixNano())
	body, err := json.Marshal(client.CreateTokenRequest{Name: name, PublicKey: newKey(t, "Ed25519").PublicPEM})
	if err != nil {
		t.Fatal(err)
	}
	return name, body
}

func tnListServiceAccounts(t *testing.T, c *client.Client) []client.ServiceAccount {
	t.Helper()
	sas, err := c.ListServiceAccounts(context.Background())
	if err != nil {
		t.Fatalf("list service accounts on %s: %v", c.BaseURL, err)
	}
	return sas
}

func tnCountServiceAccounts(t *testing.T, c *client.Client, name string) int {
	t.Helper()
	n := 0
	for _, sa := range tnListServiceAccounts(t, c) {
		if sa.UserInfo.Name == name {
			n++
		}
	}
	return n
}

// tnMessage is the message of a Dfns error body.
func tnMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return ""
	}
	return e.Error.Message
}
