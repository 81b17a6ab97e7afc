package store_test

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/audit"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
	"github.com/countersign/countersign/internal/useraction"
)

// forEachTopology runs f on one handle per engine and, on PostgreSQL, also on two handles
// over one database: two nodes racing each other. (A SQLite file admits one process.)
func forEachTopology(t *testing.T, f func(t *testing.T, dbs []*store.DB)) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		t.Run("one-node", func(t *testing.T) { f(t, []*store.DB{newDB(t, e)}) })
		if e.Name == "postgres" {
			t.Run("two-nodes", func(t *testing.T) {
				dsn, ring := e.DSN(t), newRing(t, "k1")
				f(t, []*store.DB{open(t, dsn, ring), open(t, dsn, ring)})
			})
		}
	})
}

// race runs n calls of f at once (as near as goroutines allow) and waits for them.
func race(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	wg.Wait()
}

func TestConcurrentBootstrap(t *testing.T) {
	forEachTopology(t, func(t *testing.T, dbs []*store.DB) {
		ctx := t.Context()
		const n = 8
		at := now()
		orgs := make([]identity.Org, n)
		sas := make([]identity.ServiceAccount, n)
		for i := range n {
			orgs[i] = identity.Org{ID: ids.New("or"), Name: "org-" + strconv.Itoa(i), CreatedAt: at}
			// The same credential id everywhere: it is unique per organization only.
			sas[i] = newServiceAccount(orgs[i].ID, "admin", "cred-admin", at)
		}
		created := make([]bool, n)
		errors := make([]error, n)
		race(n, func(i int) { created[i], errors[i] = dbs[i%len(dbs)].Bootstrap(ctx, orgs[i], sas[i]) })
		winner := -1
		for i := range n {
			if errors[i] != nil {
				t.Fatalf("Bootstrap %d: %v", i, errors[i])
			}
			if created[i] {
				if winner >= 0 {
					t.Fatalf("Bootstrap created twice (%d and %d)", winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatal("no Bootstrap call created anything")
		}
		for _, db := range dbs {
			if got, err := db.BootstrapOrg(ctx); err != nil || got != orgs[winner].ID {
				t.Fatalf("BootstrapOrg = %q, %v; want the winner's %q", got, err, orgs[winner].ID)
			}
		}
		for i := range n {
			_, err := dbs[0].GetServiceAccount(ctx, orgs[i].ID, sas[i].User.ID)
			if i == winner {
				wantKind(t, "winner's service account", err, noErr)
			} else {
				wantKind(t, "loser "+strconv.Itoa(i)+"'s service account", err, errs.NotFound)
			}
		}
	})
}

func TestConcurrentConsume(t *testing.T) {
	forEachTopology(t, func(t *testing.T, dbs []*store.DB) {
		ctx := t.Context()
		f := seed(t, dbs[0])
		a, _, m := signedAction(t, dbs[0], f, "POST", "/wallets", []byte(`{"name":"w"}`))
		const n = 50
		var ok, notFound atomic.Int32
		var winner atomic.Value
		race(n, func(i int) {
			mi := m
			mi.AuditID = ids.New("al")
			got, err := dbs[i%len(dbs)].Consume(ctx, mi)
			switch kind(err) {
			case noErr:
				ok.Add(1)
				winner.Store(mi.AuditID)
				if got.ID != a.ID {
					t.Errorf("Consume returned action %s, want %s", got.ID, a.ID)
				}
			case errs.NotFound:
				notFound.Add(1)
			default:
				t.Errorf("Consume: %v", err)
			}
		})
		if ok.Load() != 1 || notFound.Load() != n-1 {
			t.Fatalf("%d Consume calls succeeded and %d were refused, want 1 and %d", ok.Load(), notFound.Load(), n-1)
		}
		for _, db := range dbs {
			l, err := db.ListAudit(ctx, f.org.ID, audit.Filter{Limit: n})
			if err != nil || len(l) != 1 || l[0].ID != winner.Load() {
				t.Fatalf("audit log = %+v, %v; want the winner's entry only", l, err)
			}
		}
	})
}

func TestConcurrentMarkSigned(t *testing.T) {
	forEachTopology(t, func(t *testing.T, dbs []*store.DB) {
		ctx := t.Context()
		f := seed(t, dbs[0])
		at := now()
		a := newAction(f, "POST", "/wallets", nil, at)
		if err := dbs[0].CreateUserAction(ctx, a); err != nil {
			t.Fatal(err)
		}
		const n = 50
		signed := make([]useraction.SignedAction, n)
		for i := range signed {
			signed[i], _ = signedFor(f, a, at)
		}
		var ok, conflict atomic.Int32
		winner := -1
		var mu sync.Mutex
		race(n, func(i int) {
			err := dbs[i%len(dbs)].MarkSigned(ctx, signed[i], at)
			switch kind(err) {
			case noErr:
				ok.Add(1)
				mu.Lock()
				winner = i
				mu.Unlock()
			case errs.Conflict:
				conflict.Add(1)
			default:
				t.Errorf("MarkSigned: %v", err)
			}
		})
		if ok.Load() != 1 || conflict.Load() != n-1 {
			t.Fatalf("%d MarkSigned calls succeeded and %d conflicted, want 1 and %d", ok.Load(), conflict.Load(), n-1)
		}
		// Only the winner's token is good.
		for i := range n {
			got, err := dbs[0].GetUserActionByToken(ctx, signed[i].TokenHash)
			if i == winner {
				if err != nil || got.ID != a.ID || got.State != useraction.Signed {
					t.Fatalf("winner's token: %+v, %v", got, err)
				}
			} else {
				wantKind(t, "loser's token", err, errs.NotFound)
			}
		}
	})
}

// hold occupies db's writer until release is closed: on SQLite, callers that arrive
// meanwhile queue up and are then committed as one group.
func hold(t *testing.T, db *store.DB) (release func()) {
	ch := make(chan struct{})
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Tx(context.Background(), func(tx *store.Tx) error {
			close(started)
			<-ch
			return nil
		})
	}()
	<-started
	return func() {
		close(ch)
		if err := <-done; err != nil {
			t.Errorf("holding transaction: %v", err)
		}
	}
}

// TestGroupCommitIsolation: callers committed together (SQLite group commit) each run in a
// savepoint of their own: a failing caller leaves nothing, and takes nobody down with it.
func TestGroupCommitIsolation(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		db := newDB(t, e)
		refused := errs.E(errs.Invalid, "refused", nil)

		t.Run("tx", func(t *testing.T) {
			ctx := t.Context()
			taken := newOrg(t, db, now())
			const n = 60
			orgIDs := make([]string, n)
			for i := range orgIDs {
				orgIDs[i] = ids.New("or")
			}
			results := make([]error, n)
			release := hold(t, db)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = db.Tx(ctx, func(tx *store.Tx) error {
						if _, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)`, orgIDs[i], "group", 0); err != nil {
							return err
						}
						switch i % 3 {
						case 1: // the caller's own error, after a successful insert
							return refused
						case 2: // a failing statement, after a successful insert
							_, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)`, taken.ID, "group", 0)
							return err
						}
						return nil
					})
				}()
			}
			time.Sleep(100 * time.Millisecond) // let the callers queue behind hold
			release()
			wg.Wait()
			want := []errs.Kind{noErr, errs.Invalid, errs.Conflict}
			for i, err := range results {
				wantKind(t, "caller "+strconv.Itoa(i), err, want[i%3])
			}
			var count int
			err := db.Tx(ctx, func(tx *store.Tx) error {
				if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM orgs WHERE name = 'group'`).Scan(&count); err != nil {
					return err
				}
				for i, id := range orgIDs {
					var n int
					if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM orgs WHERE id = $1`, id).Scan(&n); err != nil {
						return err
					}
					if rows := map[bool]int{true: 1, false: 0}[i%3 == 0]; n != rows {
						t.Errorf("caller %d (%s): %d rows, want %d", i, kindName(want[i%3]), n, rows)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if count != n/3 {
				t.Fatalf("%d rows committed, want %d", count, n/3)
			}
		})

		t.Run("service-accounts", func(t *testing.T) {
			ctx := t.Context()
			f := seed(t, db)
			dup := f.tok.Credential.CredID
			const n = 60
			sas := make([]identity.ServiceAccount, n)
			for i := range sas {
				cred := "cred-" + strconv.Itoa(i)
				if i%3 == 2 {
					cred = dup // the user is inserted, then the credential conflicts
				}
				sas[i] = newServiceAccount(f.org.ID, "sa-"+strconv.Itoa(i), cred, now())
			}
			results := make([]error, n)
			release := hold(t, db)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = db.CreateServiceAccount(ctx, sas[i])
				}()
			}
			time.Sleep(100 * time.Millisecond)
			release()
			wg.Wait()
			want := map[string]bool{f.sa.User.ID: true}
			for i, err := range results {
				if i%3 == 2 {
					wantKind(t, "duplicate credential "+strconv.Itoa(i), err, errs.Conflict)
				} else {
					wantKind(t, "service account "+strconv.Itoa(i), err, noErr)
					want[sas[i].User.ID] = true
				}
			}
			list, err := db.ListServiceAccounts(ctx, f.org.ID)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, sa := range list {
				got[sa.User.ID] = true
				if len(sa.Tokens) != 1 {
					t.Errorf("%s has %d tokens, want 1", sa.User.ID, len(sa.Tokens))
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d service accounts listed, want %d", len(got), len(want))
			}
			for id := range want {
				if !got[id] {
					t.Fatalf("service account %s is missing", id)
				}
			}
		})
	})
}

// TestGroupCommitCancelledCaller: a caller whose context ends while its statement runs must
// neither undo nor misreport the work of the callers committed in the same group.
func TestGroupCommitCancelledCaller(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		// A write that inserts nothing but takes a while: long enough to be interrupted when
		// its context ends (after 100 ms), short enough to let it finish when it is not.
		slow := func(n int) string {
			return `INSERT INTO orgs (id, name, created_at)
				SELECT 'never-' || x, 'x', 0 FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ` +
				strconv.Itoa(n) + `) SELECT x FROM c) AS s WHERE x < 0`
		}
		const probe = 10_000
		started := time.Now()
		if err := db.Tx(ctx, func(tx *store.Tx) error { _, err := tx.ExecContext(ctx, slow(probe)); return err }); err != nil {
			t.Fatal(err)
		}
		n := int(float64(probe) * float64(600*time.Millisecond) / float64(max(time.Since(started), time.Millisecond)))

		before, after := ids.New("or"), ids.New("or")
		insert := func(id string) func(tx *store.Tx) error {
			return func(tx *store.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, name, created_at) VALUES ($1, 'x', 0)`, id)
				return err
			}
		}
		release := hold(t, db)
		var wg sync.WaitGroup
		var errBefore, errSlow, errAfter error
		wg.Add(3)
		go func() { defer wg.Done(); errBefore = db.Tx(ctx, insert(before)) }()
		time.Sleep(30 * time.Millisecond) // queue in this order behind hold
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			errSlow = db.Tx(sctx, func(tx *store.Tx) error { _, err := tx.ExecContext(sctx, slow(n)); return err })
		}()
		time.Sleep(30 * time.Millisecond)
		go func() { defer wg.Done(); errAfter = db.Tx(ctx, insert(after)) }()
		time.Sleep(30 * time.Millisecond)
		release()
		wg.Wait()
		t.Logf("slow caller (%d rows scanned): %v", n, errSlow)
		exists := func(id string) bool {
			var n int
			if err := db.Tx(ctx, func(tx *store.Tx) error {
				return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM orgs WHERE id = $1`, id).Scan(&n)
			}); err != nil {
				t.Fatal(err)
			}
			return n == 1
		}
		for _, c := range []struct {
			name string
			id   string
			err  error
		}{{"before", before, errBefore}, {"after", after, errAfter}} {
			if c.err != nil || !exists(c.id) {
				t.Errorf("caller %s the cancelled one: err %v, row committed %v; want no error and the row", c.name, c.err, exists(c.id))
			}
		}
	})
}

// TestTxAfterClose: a write racing Close (a request still running at shutdown) must fail,
// not block forever.
func TestTxAfterClose(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		db, err := store.Open(context.Background(), e.DSN(t), newRing(t, "k1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		db.Close()
		done := make(chan error, 20)
		for range 20 {
			go func() {
				done <- db.Tx(context.Background(), func(tx *store.Tx) error { return nil })
			}()
		}
		timeout := time.After(5 * time.Second)
		for i := range 20 {
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Tx after Close succeeded")
				}
			case <-timeout:
				t.Fatalf("%d of 20 Tx calls after Close are still blocked", 20-i)
			}
		}
	})
}

// TestAuthCacheStress: revocation races readers; once a change has returned, no reader may
// see an older answer. Each kind of change is toggled alone, so that no later write's
// invalidation hides a stale entry left by an earlier one.
func TestAuthCacheStress(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		f := seed(t, db)
		at := now()
		status := func(active bool) string {
			if active {
				return identity.Active
			}
			return identity.Inactive
		}
		tokenActive := func() (bool, error) {
			st, err := db.TokenState(ctx, f.tok.ID)
			return st.Active, err
		}
		credUsable := func() (bool, error) {
			cs, err := db.UsableCredentials(ctx, f.principal())
			return len(cs) == 1, err
		}
		cases := []struct {
			name string
			set  func(active bool) error
			read func() (bool, error)
		}{
			{"token", func(a bool) error { return db.SetAccessTokenStatus(ctx, f.org.ID, f.tok.ID, status(a), at) }, tokenActive},
			{"service-account", func(a bool) error {
				return db.SetServiceAccountStatus(ctx, f.org.ID, f.sa.User.ID, status(a), at)
			}, tokenActive},
			{"credential", func(a bool) error {
				return db.SetCredentialStatus(ctx, f.org.ID, f.tok.Credential.UUID, status(a), at)
			}, credUsable},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				const toggles = 200
				stop := make(chan struct{})
				var wg sync.WaitGroup
				defer func() { close(stop); wg.Wait() }()
				var reads atomic.Int64
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							select {
							case <-stop:
								return
							default:
							}
							if _, err := c.read(); err != nil {
								t.Error(err)
								return
							}
							reads.Add(1)
							runtime.Gosched() // cached reads are quick: leave the writer some CPU
						}
					}()
				}
				for i := range toggles { // ends inactive
					active := i%2 == 0
					if err := c.set(active); err != nil {
						t.Fatal(err)
					}
					// The next read after a change has returned must see it.
					if got, err := c.read(); err != nil || got != active {
						t.Fatalf("toggle %d: read %v, %v; want %v", i, got, err, active)
					}
				}
				// Readers keep reading after the last change: none may see it active again.
				var stale atomic.Int64
				var after sync.WaitGroup
				for range 4 {
					after.Add(1)
					go func() {
						defer after.Done()
						for range 200 {
							if got, err := c.read(); err != nil || got {
								stale.Add(1)
							}
						}
					}()
				}
				after.Wait()
				if stale.Load() != 0 {
					t.Fatalf("%d reads after the final deactivation saw it active", stale.Load())
				}
				t.Logf("%d concurrent reads during %d toggles", reads.Load(), toggles)
				if err := c.set(true); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}
