package e2e

import (
	"context"
	"errors"
	"math/big"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app"
	"github.com/countersign/countersign/internal/chains/evm"
	"github.com/countersign/countersign/internal/chains/evm/devchain"
	"github.com/countersign/countersign/internal/testutil"
)

// killNode is one `countersign serve` process of the kill -9 test.
type killNode struct {
	cmd  *exec.Cmd
	out  tnBuffer
	done chan struct{}
	err  error // valid after done
	addr string
}

// startKillNode runs the binary on dataDir (and dsn when it is PostgreSQL) with extra
// flags and environment and, unless env is set (a node meant to crash soon), waits until
// it answers /healthz.
func startKillNode(t *testing.T, bin, dataDir, dsn string, env []string, flags ...string) *killNode {
	t.Helper()
	n := &killNode{addr: tnFreePorts(t, 1)[0], done: make(chan struct{})}
	args := append([]string{"serve", "--listen", n.addr, "--data-dir", dataDir}, flags...)
	if dsn != "" {
		args = append(args, "--database", dsn)
	}
	n.cmd = tnCommand(context.Background(), bin, args...)
	n.cmd.Env = append(n.cmd.Env, env...)
	n.cmd.Stdout, n.cmd.Stderr = &n.out, &n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.err = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		select {
		case <-n.done:
		default:
			n.cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() {
			t.Logf("node %s %v output:\n%s", n.addr, flags, n.out.String())
		}
	})
	if len(env) > 0 {
		return n
	}
	tn := &tnNode{addr: n.addr, done: n.done}
	if err := tn.waitHealthy(60 * time.Second); err != nil {
		t.Fatalf("node %v: %v\n%s", flags, err, n.out.String())
	}
	return n
}

func (n *killNode) url() string { return "http://" + n.addr }

// kill sends SIGKILL and waits for the process to be gone.
func (n *killNode) kill(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n.waitKilled(t, 10*time.Second)
}

// waitKilled waits for the process to die of SIGKILL.
func (n *killNode) waitKilled(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-n.done:
	case <-time.After(timeout):
		t.Fatalf("node did not die within %v", timeout)
	}
	var ee *exec.ExitError
	if !errors.As(n.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("node ended with %v, want death by SIGKILL", n.err)
	}
}

// stop ends the node with SIGTERM (a clean shutdown, which also closes the dev chain).
func (n *killNode) stop(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		if n.err != nil {
			t.Fatalf("node exited with %v after SIGTERM", n.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("node did not stop within 30s of SIGTERM")
	}
}

// TestKill9 crashes real server processes (SIGKILL, no shutdown code runs) at the two
// moments that matter for sending money exactly once, on both engines:
//
//  1. After signing, before broadcasting: an API-only node (--no-jobs) answers a transfer
//     and a broadcast request, each signed and stored with its nonce and its job, and is
//     killed.
//  2. After sending, before recording: a node started with COUNTERSIGN_FAULT=kill-after-send
//     works the jobs; right after its first transaction reaches the network and is mined,
//     it kills itself, leaving the job running and the request not marked Broadcasted.
//
// A normal node then starts on the same data directory and database (with short job
// timings, so the dead node's running job is rescued within the test): both requests end
// Confirmed, with exactly one transaction per nonce on the chain and exact balances.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := tnBuild(t)
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		dir := t.TempDir()
		dsn := ""
		if e.Name == "postgres" {
			dsn = e.DSN(t) // SQLite lives in the data directory
		}
		const network = "EthereumSepolia"

		// 1. Sign, then die before any broadcast.
		a := startKillNode(t, bin, dir, dsn, nil, "--no-jobs")
		env, err := client.LoadEnv(filepath.Join(dir, "bootstrap.env"))
		if err != nil {
			t.Fatal(err)
		}
		admin, err := env.Client()
		if err != nil {
			t.Fatal(err)
		}
		admin.BaseURL = a.url()
		var w walletResp
		if err := admin.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": network}, &w); err != nil {
			t.Fatal(err)
		}
		if err := admin.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": network, "address": w.Address, "amount": "1000000000000000000"}, nil); err != nil {
			t.Fatal(err)
		}
		const sink = "0x000000000000000000000000000000000000dEaD"
		var xfr transferResp
		if err := admin.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transfers", map[string]any{"kind": "Native", "to": sink, "amount": "12345"}, &xfr); err != nil {
			t.Fatal(err)
		}
		var tx transactionResp
		if err := admin.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transactions", map[string]any{"kind": "Evm", "to": sink, "value": "777"}, &tx); err != nil {
			t.Fatal(err)
		}
		if xfr.Status != "Executing" || tx.Status != "Pending" {
			t.Fatalf("before any job: transfer %s, transaction %s", xfr.Status, tx.Status)
		}
		a.kill(t)

		// 2. Send, then die before recording it.
		b := startKillNode(t, bin, dir, dsn, []string{app.FaultEnv + "=kill-after-send"})
		b.waitKilled(t, 90*time.Second)
		if !strings.Contains(b.out.String(), "fault injection: killing this node after sending") {
			t.Fatalf("the faulty node died, but not at the injected fault:\n%s", b.out.String())
		}

		// 3. A normal node finishes the work, sending nothing twice.
		c := startKillNode(t, bin, dir, dsn, nil, "--job-timeout", "5s", "--job-rescue-after", "8s")
		admin.BaseURL = c.url()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			if err := admin.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/transfers/"+xfr.ID, nil, &xfr); err != nil {
				t.Fatal(err)
			}
			if err := admin.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/transactions/"+tx.ID, nil, &tx); err != nil {
				t.Fatal(err)
			}
			if (xfr.Status == "Confirmed" || xfr.Status == "Failed") && (tx.Status == "Confirmed" || tx.Status == "Failed") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not final after restart: transfer %+v\ntransaction %+v", xfr, tx)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if xfr.Status != "Confirmed" || tx.Status != "Confirmed" || xfr.DateBroadcasted == "" || tx.DateBroadcasted == "" {
			t.Fatalf("after restart: transfer %+v\ntransaction %+v", xfr, tx)
		}
		var as assetsResp
		if err := admin.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/assets", nil, &as); err != nil || len(as.Assets) == 0 {
			t.Fatalf("assets %+v %v", as, err)
		}
		f1, _ := new(big.Int).SetString(xfr.Fee, 10)
		f2, _ := new(big.Int).SetString(tx.Fee, 10)
		want := new(big.Int).Sub(big.NewInt(1e18), big.NewInt(12345+777))
		want.Sub(want, f1).Sub(want, f2)
		if as.Assets[0].Balance != want.String() {
			t.Fatalf("balance %s, want 1e18 - 12345 - 777 - fees = %s", as.Assets[0].Balance, want)
		}
		c.stop(t)

		// The chain itself: exactly two transactions from the wallet, nonces 0 and 1.
		n, _ := evm.Lookup(network)
		chain, err := devchain.Start(ctx, devchain.Options{DataDir: filepath.Join(dir, "devchain"), ChainID: n.ChainID})
		if err != nil {
			t.Fatal(err)
		}
		defer chain.Close()
		from := common.HexToAddress(w.Address)
		if got, err := chain.Client().NonceAt(ctx, from, nil); err != nil || got != 2 {
			t.Fatalf("transactions mined from the wallet: %d %v, want 2", got, err)
		}
		nonces := map[uint64]bool{}
		for _, h := range []string{xfr.TxHash, tx.TxHash} {
			mined, pending, err := chain.Client().TransactionByHash(ctx, common.HexToHash(h))
			if err != nil || pending {
				t.Fatalf("%s: pending %v %v", h, pending, err)
			}
			nonces[mined.Nonce()] = true
		}
		if !nonces[0] || !nonces[1] {
			t.Fatalf("nonces %v, want 0 and 1", nonces)
		}
		if bal, err := chain.Client().BalanceAt(ctx, from, nil); err != nil || bal.Cmp(want) != 0 {
			t.Fatalf("chain balance %v %v, want %s", bal, err, want)
		}
	})
}
