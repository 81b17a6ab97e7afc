package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
)

// BootstrapResult says what the first start created.
type BootstrapResult struct {
	Created bool
	OrgID   string
	EnvFile string // <data-dir>/bootstrap.env
	KeyFile string // the admin credential's PKCS#8 private key
}

// Bootstrap creates, on the first start with an empty database, the organization and an
// admin service account holding a fresh Ed25519 Key credential, and writes
// <data-dir>/bootstrap.env (0600) for the SDKs. The secrets go to files first and the
// files are put in place only after the database commit, so a crash can neither leave an
// admin whose token was never written nor files that name an admin who does not exist.
// Later starts, and nodes that lose the race on a shared database, change nothing.
func (a *App) Bootstrap(ctx context.Context, baseURL string) (BootstrapResult, error) {
	res := BootstrapResult{
		EnvFile: filepath.Join(a.Cfg.DataDir, "bootstrap.env"),
		KeyFile: filepath.Join(a.Cfg.DataDir, "bootstrap-admin-key.pem"),
	}
	if org, err := a.DB.BootstrapOrg(ctx); err == nil {
		res.OrgID = org
		return res, nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return res, err
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return res, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return res, err
	}
	now := a.Now().UTC().Truncate(time.Millisecond)
	org := identity.Org{ID: ids.New("or"), Name: "countersign", CreatedAt: now}
	sa, err := a.Identity.NewServiceAccount(org.ID, identity.CreateTokenRequest{
		Name:      "bootstrap-admin",
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})),
	})
	if err != nil {
		return res, err
	}
	tok := sa.Tokens[0]
	if err := os.MkdirAll(a.Cfg.DataDir, 0o700); err != nil {
		return res, err
	}
	tmpKey, tmpEnv := res.KeyFile+".tmp", res.EnvFile+".tmp"
	keyPath, _ := filepath.Abs(res.KeyFile)
	env := fmt.Sprintf("# countersign bootstrap credentials: the admin service account. Keep this file secret.\n"+
		"DFNS_API_URL=%s\nDFNS_ORG_ID=%s\nDFNS_AUTH_TOKEN=%s\nDFNS_CRED_ID=%s\nDFNS_PRIVATE_KEY_FILE=%s\n",
		baseURL, org.ID, tok.Secret, tok.Credential.CredID, keyPath)
	if err := os.WriteFile(tmpKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return res, err
	}
	if err := os.WriteFile(tmpEnv, []byte(env), 0o600); err != nil {
		os.Remove(tmpKey)
		return res, err
	}
	created, err := a.DB.Bootstrap(ctx, org, sa)
	if err != nil || !created {
		os.Remove(tmpKey)
		os.Remove(tmpEnv)
		if err == nil {
			res.OrgID, err = a.DB.BootstrapOrg(ctx)
		}
		return res, err
	}
	if err := os.Rename(tmpKey, res.KeyFile); err != nil {
		return res, err
	}
	if err := os.Rename(tmpEnv, res.EnvFile); err != nil {
		return res, err
	}
	res.Created, res.OrgID = true, org.ID
	return res, nil
}
