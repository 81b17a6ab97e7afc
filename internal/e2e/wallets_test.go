package e2e

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	gethmath "github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"

	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

type walletResp struct {
	ID         string `json:"id"`
	Network    string `json:"network"`
	Address    string `json:"address"`
	Status     string `json:"status"`
	Custodial  bool   `json:"custodial"`
	ExternalID string `json:"externalId"`
	Tags       []string
	SigningKey struct {
		ID        string `json:"id"`
		Scheme    string `json:"scheme"`
		Curve     string `json:"curve"`
		PublicKey string `json:"publicKey"`
	} `json:"signingKey"`
}

type sigResp struct {
	ID        string          `json:"id"`
	KeyID     string          `json:"keyId"`
	WalletID  string          `json:"walletId"`
	Network   string          `json:"network"`
	Status    string          `json:"status"`
	Request   json.RawMessage `json:"requestBody"`
	Signature struct {
		R       string `json:"r"`
		S       string `json:"s"`
		RecID   *int   `json:"recid"`
		Encoded string `json:"encoded"`
	} `json:"signature"`
	SignedData string `json:"signedData"`
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// recoverAddr checks that (r, s, recid) over digest recovers to addr.
func recoverAddr(t *testing.T, digest []byte, sr sigResp, addr string) {
	t.Helper()
	if sr.Signature.RecID == nil {
		t.Fatalf("no recid in %+v", sr.Signature)
	}
	sig := append(append(mustHex(t, sr.Signature.R), mustHex(t, sr.Signature.S)...), byte(*sr.Signature.RecID))
	pub, err := crypto.SigToPub(digest, sig)
	if err != nil {
		t.Fatal(err)
	}
	if got := crypto.PubkeyToAddress(*pub).Hex(); got != addr {
		t.Fatalf("signature recovers to %s, want %s", got, addr)
	}
}

func TestWalletsAndSignatures(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		ctx := context.Background()
		c := n.Admin
		var w walletResp
		if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "EthereumSepolia", "name": "w1", "tags": []string{"a"}}, &w); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(w.ID, "wa-") || w.Network != "EthereumSepolia" || w.SigningKey.Scheme != "ECDSA" || w.SigningKey.Curve != "secp256k1" || !w.Custodial {
			t.Fatalf("wallet %+v", w)
		}
		pub, err := crypto.DecompressPubkey(mustHex(t, w.SigningKey.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		if want := crypto.PubkeyToAddress(*pub).Hex(); w.Address != want {
			t.Fatalf("address %s, want %s", w.Address, want)
		}
		var got walletResp
		if err := c.Do(ctx, http.MethodGet, "/wallets/"+w.ID, nil, &got); err != nil || got.Address != w.Address {
			t.Fatalf("get: %+v %v", got, err)
		}

		sign := func(t *testing.T, body map[string]any) sigResp {
			t.Helper()
			var sr sigResp
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/signatures", body, &sr); err != nil {
				t.Fatal(err)
			}
			if sr.Status != "Signed" || sr.WalletID != w.ID || sr.KeyID != w.SigningKey.ID || sr.Network != "EthereumSepolia" {
				t.Fatalf("signature request %+v", sr)
			}
			return sr
		}
		t.Run("Hash", func(t *testing.T) {
			h := crypto.Keccak256([]byte("hello"))
			recoverAddr(t, h, sign(t, map[string]any{"kind": "Hash", "hash": "0x" + hex.EncodeToString(h)}), w.Address)
		})
		t.Run("Message", func(t *testing.T) {
			msg := []byte("sign me")
			recoverAddr(t, accounts.TextHash(msg), sign(t, map[string]any{"kind": "Message", "message": "0x" + hex.EncodeToString(msg)}), w.Address)
		})
		t.Run("Transaction", func(t *testing.T) {
			to := common.HexToAddress("0x000000000000000000000000000000000000dEaD")
			tx := types.NewTx(&types.DynamicFeeTx{ChainID: big.NewInt(11155111), Nonce: 3, GasTipCap: big.NewInt(1e9),
				GasFeeCap: big.NewInt(2e9), Gas: 21000, To: &to, Value: big.NewInt(1000)})
			raw, _ := tx.MarshalBinary()
			sr := sign(t, map[string]any{"kind": "Transaction", "transaction": "0x" + hex.EncodeToString(raw)})
			var signed types.Transaction
			if err := signed.UnmarshalBinary(mustHex(t, sr.SignedData)); err != nil {
				t.Fatal(err)
			}
			from, err := types.Sender(types.LatestSignerForChainID(big.NewInt(11155111)), &signed)
			if err != nil || from.Hex() != w.Address {
				t.Fatalf("sender %s %v, want %s", from.Hex(), err, w.Address)
			}
		})
		t.Run("Eip712", func(t *testing.T) {
			sr := sign(t, map[string]any{"kind": "Eip712",
				"types":   map[string]any{"Person": []map[string]string{{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}}},
				"domain":  map[string]any{"name": "Test", "version": "1", "chainId": 11155111},
				"message": map[string]any{"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"}})
			// The digest computed independently by go-ethereum, with the domain type spelled out.
			td := apitypes.TypedData{
				Types: apitypes.Types{
					"EIP712Domain": {{Name: "name", Type: "string"}, {Name: "version", Type: "string"}, {Name: "chainId", Type: "uint256"}},
					"Person":       {{Name: "name", Type: "string"}, {Name: "wallet", Type: "address"}},
				},
				PrimaryType: "Person",
				Domain:      apitypes.TypedDataDomain{Name: "Test", Version: "1", ChainId: (*gethmath.HexOrDecimal256)(big.NewInt(11155111))},
				Message:     apitypes.TypedDataMessage{"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
			}
			digest, _, err := apitypes.TypedDataAndHash(td)
			if err != nil {
				t.Fatal(err)
			}
			recoverAddr(t, digest, sr, w.Address)
		})
		t.Run("idempotency", func(t *testing.T) {
			h := "0x" + strings.Repeat("11", 32)
			a := sign(t, map[string]any{"kind": "Hash", "hash": h, "externalId": "x-1"})
			b := sign(t, map[string]any{"externalId": "x-1", "hash": h, "kind": "Hash"})
			if a.ID != b.ID {
				t.Fatalf("retry made a new request: %s %s", a.ID, b.ID)
			}
			err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/signatures", map[string]any{"kind": "Hash", "hash": "0x" + strings.Repeat("22", 32), "externalId": "x-1"}, nil)
			if status(err) != 409 {
				t.Fatalf("different body, same externalId: %v, want 409", err)
			}
		})
		t.Run("refused", func(t *testing.T) {
			for _, tt := range []struct {
				name string
				path string
				body any
				want int
			}{
				{"fail/hash-31-bytes", "/wallets/" + w.ID + "/signatures", map[string]any{"kind": "Hash", "hash": "0x" + strings.Repeat("ab", 31)}, 400},
				{"fail/hash-not-hex", "/wallets/" + w.ID + "/signatures", map[string]any{"kind": "Hash", "hash": "0x" + strings.Repeat("zz", 32)}, 400},
				{"fail/bad-rlp", "/wallets/" + w.ID + "/signatures", map[string]any{"kind": "Transaction", "transaction": "0x02f8"}, 400},
				{"fail/bad-typed-data", "/wallets/" + w.ID + "/signatures", map[string]any{"kind": "Eip712", "types": map[string]any{}, "domain": map[string]any{}, "message": map[string]any{}}, 400},
				{"fail/unknown-kind", "/wallets/" + w.ID + "/signatures", map[string]any{"kind": "Psbt", "psbt": "00"}, 400},
				{"fail/unknown-wallet", "/wallets/wa-00000-00000-0000000000000000/signatures", map[string]any{"kind": "Hash", "hash": "0x" + strings.Repeat("ab", 32)}, 404},
				{"fail/unknown-network", "/wallets", map[string]any{"network": "Narnia"}, 400},
				{"fail/no-network", "/wallets", map[string]any{"name": "x"}, 400},
			} {
				t.Run(tt.name, func(t *testing.T) {
					// The audit log records the refused (but properly signed) request; no wallet,
					// key or signature may appear.
					before := countRows(t, n)
					err := c.Do(ctx, http.MethodPost, tt.path, tt.body, nil)
					if status(err) != tt.want {
						t.Fatalf("got %v, want %d", err, tt.want)
					}
					if after := countRows(t, n); after != before {
						t.Fatalf("rows changed: %v -> %v", before, after)
					}
				})
			}
		})
		t.Run("list-and-pagination", func(t *testing.T) {
			for i := 0; i < 3; i++ {
				if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "Base"}, nil); err != nil {
					t.Fatal(err)
				}
			}
			var page1 struct {
				Items         []walletResp `json:"items"`
				NextPageToken string       `json:"nextPageToken"`
			}
			if err := c.Do(ctx, http.MethodGet, "/wallets?limit=2", nil, &page1); err != nil || len(page1.Items) != 2 || page1.NextPageToken == "" {
				t.Fatalf("page 1: %+v %v", page1, err)
			}
			var page2 struct {
				Items         []walletResp `json:"items"`
				NextPageToken string       `json:"nextPageToken"`
			}
			if err := c.Do(ctx, http.MethodGet, "/wallets?limit=2&paginationToken="+page1.NextPageToken, nil, &page2); err != nil || len(page2.Items) != 2 || page2.NextPageToken != "" {
				t.Fatalf("page 2: %+v %v", page2, err)
			}
			var sigs struct {
				WalletID string    `json:"walletId"`
				Items    []sigResp `json:"items"`
			}
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/signatures", nil, &sigs); err != nil || sigs.WalletID != w.ID || len(sigs.Items) < 4 {
				t.Fatalf("signatures: %+v %v", sigs, err)
			}
		})
		t.Run("tags-and-update", func(t *testing.T) {
			if err := c.Do(ctx, http.MethodPut, "/wallets/"+w.ID+"/tags", map[string]any{"tags": []string{"b", "c"}}, nil); err != nil {
				t.Fatal(err)
			}
			if err := c.Do(ctx, http.MethodDelete, "/wallets/"+w.ID+"/tags", map[string]any{"tags": []string{"a"}}, nil); err != nil {
				t.Fatal(err)
			}
			var got walletResp
			if err := c.Do(ctx, http.MethodPut, "/wallets/"+w.ID, map[string]any{"name": "renamed", "externalId": "ext-w"}, &got); err != nil {
				t.Fatal(err)
			}
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+w.ID, nil, &got); err != nil || strings.Join(got.Tags, ",") != "b,c" || got.ExternalID != "ext-w" {
				t.Fatalf("after tags/update: %+v %v", got, err)
			}
		})
	})
}

func TestKeys(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		ctx := context.Background()
		c := n.Admin
		type keyResp struct {
			ID, Scheme, Curve, PublicKey, Status, Name string
		}
		var ek keyResp
		if err := c.Do(ctx, http.MethodPost, "/keys", map[string]any{"scheme": "EdDSA", "curve": "ed25519", "name": "ed"}, &ek); err != nil {
			t.Fatal(err)
		}
		var sr sigResp
		msg := []byte("solana says hi")
		if err := c.Do(ctx, http.MethodPost, "/keys/"+ek.ID+"/signatures", map[string]any{"kind": "Message", "message": "0x" + hex.EncodeToString(msg)}, &sr); err != nil {
			t.Fatal(err)
		}
		if !ed25519.Verify(mustHex(t, ek.PublicKey), msg, mustHex(t, sr.Signature.Encoded)) {
			t.Fatal("Ed25519 signature does not verify")
		}
		var kk keyResp
		if err := c.Do(ctx, http.MethodPost, "/keys", map[string]any{"scheme": "ECDSA", "curve": "secp256k1"}, &kk); err != nil {
			t.Fatal(err)
		}
		h := crypto.Keccak256([]byte("x"))
		if err := c.Do(ctx, http.MethodPost, "/keys/"+kk.ID+"/signatures", map[string]any{"kind": "Hash", "hash": hex.EncodeToString(h)}, &sr); err != nil {
			t.Fatal(err)
		}
		pub, _ := crypto.DecompressPubkey(mustHex(t, kk.PublicKey))
		recoverAddr(t, h, sr, crypto.PubkeyToAddress(*pub).Hex())
		// A wallet can reuse the key on a network.
		var w walletResp
		if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "Base", "signingKey": map[string]string{"id": kk.ID}}, &w); err != nil || w.SigningKey.ID != kk.ID {
			t.Fatalf("wallet on key: %+v %v", w, err)
		}
		if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "Base", "signingKey": map[string]string{"id": kk.ID}}, nil); status(err) != 409 {
			t.Fatalf("second wallet of one key on one network: %v, want 409", err)
		}
		for _, tt := range []struct {
			name string
			body any
			want int
		}{
			{"fail/unsupported-curve", map[string]any{"scheme": "ECDSA", "curve": "stark"}, 400},
			{"fail/scheme-curve-mismatch", map[string]any{"scheme": "EdDSA", "curve": "secp256k1"}, 400},
			{"fail/missing", map[string]any{}, 400},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if err := c.Do(ctx, http.MethodPost, "/keys", tt.body, nil); status(err) != tt.want {
					t.Fatalf("got %v, want %d", err, tt.want)
				}
			})
		}
		// Archived keys sign nothing; their wallets are archived too.
		if err := c.Do(ctx, http.MethodDelete, "/keys/"+kk.ID, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, http.MethodPost, "/keys/"+kk.ID+"/signatures", map[string]any{"kind": "Hash", "hash": hex.EncodeToString(h)}, nil); status(err) != 400 {
			t.Fatalf("archived key signed: %v", err)
		}
		if err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/signatures", map[string]any{"kind": "Hash", "hash": hex.EncodeToString(h)}, nil); status(err) != 400 {
			t.Fatalf("wallet of archived key signed: %v", err)
		}
		// Signing without a user action is refused.
		st, _, _ := c.Raw(ctx, http.MethodPost, "/keys/"+ek.ID+"/signatures", []byte(`{"kind":"Message","message":"0x00"}`), "")
		if st != 403 {
			t.Fatalf("no user action: %d", st)
		}
	})
}

// countRows counts keys, wallets and signature requests of the admin's organization.
func countRows(t *testing.T, n *apptest.Node) [3]int {
	t.Helper()
	ctx := context.Background()
	var out [3]int
	for i, path := range []string{"/keys?limit=500", "/wallets?limit=500"} {
		var l struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := n.Admin.Do(ctx, http.MethodGet, path, nil, &l); err != nil {
			t.Fatal(err)
		}
		out[i] = len(l.Items)
	}
	var ws struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	n.Admin.Do(ctx, http.MethodGet, "/wallets?limit=500", nil, &ws)
	for _, w := range ws.Items {
		var l struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := n.Admin.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/signatures?limit=500", nil, &l); err != nil {
			t.Fatal(err)
		}
		out[2] += len(l.Items)
	}
	return out
}
