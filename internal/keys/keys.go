package keys

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
)

// Statuses of keys and signature requests.
const (
	Active   = "Active"
	Archived = "Archived"
	Signed   = "Signed"
	Failed   = "Failed"
)

// Key is a signing key. Sealed is the private key as Custody sealed it; it never leaves
// the server.
type Key struct {
	ID        string
	OrgID     string
	Scheme    string
	Curve     string
	PublicKey []byte
	Sealed    []byte
	Name      string
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt time.Time

	DelegatedTo string // the end user the key is delegated to, for good ("" = the organization's)
	DelegatedAt time.Time
}

// Ref returns what a Signer needs to use k.
func (k Key) Ref() Ref {
	return Ref{OrgID: k.OrgID, KeyID: k.ID, Scheme: k.Scheme, Curve: k.Curve, Sealed: k.Sealed}
}

// SignatureRequest is one signature, as the API reports it.
type SignatureRequest struct {
	ID               string
	OrgID            string
	KeyID            string
	WalletID         string
	Network          string
	RequesterUserID  string
	RequesterTokenID string
	RequestBody      json.RawMessage
	Status           string
	Reason           string
	Signature        *SignatureParts
	Signatures       []SignatureParts // one per signed input (Psbt), instead of Signature
	SignedData       string
	ExternalID       string
	CreatedAt        time.Time
	SignedAt         time.Time
}

// SignatureParts is the signature object of a SignatureRequest (dfns-api.md §4.4.1).
type SignatureParts struct {
	R       string `json:"r"`
	S       string `json:"s"`
	RecID   *int   `json:"recid,omitempty"`
	Encoded string `json:"encoded,omitempty"`
}

// Page selects a page of a list, newest first. After is the last id of the previous page.
type Page struct {
	Limit int
	After string

	DelegatedTo string // only keys (wallets) delegated to this user; set for end users by ListFilter
}

// Store persists keys and signature requests.
type Store interface {
	CreateKey(ctx context.Context, k Key) error
	GetKey(ctx context.Context, orgID, id string) (Key, error)
	ListKeys(ctx context.Context, orgID string, page Page) ([]Key, error)
	UpdateKey(ctx context.Context, orgID, id, name string, now time.Time) error
	ArchiveKey(ctx context.Context, orgID, id string, now time.Time) error
	// DelegateKey sets the end user of an active, never delegated key; Conflict otherwise.
	DelegateKey(ctx context.Context, orgID, id, userID string, now time.Time) error
	CreateSignatureRequest(ctx context.Context, r SignatureRequest) error
	GetSignatureRequest(ctx context.Context, orgID, id string) (SignatureRequest, error)
	GetSignatureRequestByExternalID(ctx context.Context, orgID, externalID string) (SignatureRequest, error)
	ListSignatureRequests(ctx context.Context, orgID, keyID, walletID string, page Page) ([]SignatureRequest, error)
}

// Generator makes new keys (Custody does).
type Generator interface {
	Generate(orgID, keyID, scheme, curve string) (publicKey, sealed []byte, err error)
}

// Service is the Keys API.
type Service struct {
	store  Store
	gen    Generator
	signer Signer
	chains Chains
	now    func() time.Time

	endUsers EndUsers
}

// NewService wires the keys service.
func NewService(store Store, gen Generator, signer Signer, chains Chains, now func() time.Time) *Service {
	return &Service{store: store, gen: gen, signer: signer, chains: chains, now: now}
}

// RequireStaff refuses end users where only the organization acts (delegating); end users
// act on their own keys and wallets through Visible and CheckWrite.
func RequireStaff(p auth.Principal) error {
	if p.UserKind == "EndUser" {
		return errs.E(errs.PermissionDenied, "end users cannot manage keys or wallets of the organization", nil)
	}
	return nil
}

// CreateKeyRequest is the body of POST /keys.
type CreateKeyRequest struct {
	Scheme     string          `json:"scheme"`
	Curve      string          `json:"curve"`
	Name       string          `json:"name,omitempty"`
	MasterKey  *bool           `json:"masterKey,omitempty"`
	DeriveFrom json.RawMessage `json:"deriveFrom,omitempty"`
	StoreID    string          `json:"storeId,omitempty"`
	DelegateTo string          `json:"delegateTo,omitempty"`
	// DelayDelegation creates a key meant for an end user later (POST /keys/{keyId}/delegate).
	DelayDelegation *bool `json:"delayDelegation,omitempty"`
}

// ValidName checks an optional display name.
func ValidName(n string) error {
	if len(n) > 256 || !utf8.ValidString(n) {
		return errs.E(errs.Invalid, "name must be valid text of at most 256 bytes", nil)
	}
	return nil
}

// NewKey generates (but does not store) a key; wallets use it inside their own insert.
func (s *Service) NewKey(orgID, scheme, curve, name string) (Key, error) {
	if err := ValidName(name); err != nil {
		return Key{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	k := Key{ID: ids.NewAt("key", now), OrgID: orgID, Scheme: scheme, Curve: curve, Name: name, Status: Active,
		CreatedAt: now, UpdatedAt: now}
	var err error
	if k.PublicKey, k.Sealed, err = s.gen.Generate(orgID, k.ID, scheme, curve); err != nil {
		return Key{}, err
	}
	return k, nil
}

// Create makes a key.
func (s *Service) Create(ctx context.Context, p auth.Principal, r CreateKeyRequest) (Key, error) {
	switch {
	case r.MasterKey != nil && *r.MasterKey, len(r.DeriveFrom) > 0:
		return Key{}, errs.E(errs.Invalid, "master keys and key derivation are not supported", nil)
	case r.StoreID != "":
		return Key{}, errs.E(errs.Invalid, "storeId is not supported: keys are held by this server", nil)
	}
	to, err := s.DelegateTarget(ctx, p, r.DelegateTo, r.DelayDelegation != nil && *r.DelayDelegation)
	if err != nil {
		return Key{}, err
	}
	k, err := s.NewKey(p.OrgID, r.Scheme, r.Curve, r.Name)
	if err != nil {
		return Key{}, err
	}
	if to != "" {
		k.DelegatedTo, k.DelegatedAt = to, k.CreatedAt
	}
	return k, s.store.CreateKey(ctx, k)
}

// Get returns a key of the caller's organization that the caller may see.
func (s *Service) Get(ctx context.Context, p auth.Principal, id string) (Key, error) {
	k, err := s.store.GetKey(ctx, p.OrgID, id)
	if err == nil && !Visible(p, k) {
		err = errs.E(errs.NotFound, "not visible", nil)
	}
	if errs.Is(err, errs.NotFound) {
		return Key{}, errs.E(errs.NotFound, "key not found", err)
	}
	return k, err
}

// List returns a page of keys, newest first, and the next page token.
func (s *Service) List(ctx context.Context, p auth.Principal, page Page) ([]Key, string, error) {
	page = ListFilter(p, page)
	page.Limit = clampLimit(page.Limit)
	ks, err := s.store.ListKeys(ctx, p.OrgID, Page{Limit: page.Limit + 1, After: page.After, DelegatedTo: page.DelegatedTo})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(ks) > page.Limit {
		ks, next = ks[:page.Limit], ks[page.Limit-1].ID
	}
	return ks, next, nil
}

func clampLimit(n int) int {
	if n <= 0 {
		return 100
	}
	return min(n, 500)
}

// Update renames a key.
func (s *Service) Update(ctx context.Context, p auth.Principal, id, name string) (Key, error) {
	if err := ValidName(name); err != nil {
		return Key{}, err
	}
	k, err := s.Get(ctx, p, id)
	if err != nil {
		return Key{}, err
	}
	if err := CheckWrite(p, k); err != nil {
		return Key{}, err
	}
	if k.Status == Archived {
		return Key{}, errs.E(errs.Invalid, "key is archived", nil)
	}
	now := s.now().UTC()
	if err := s.store.UpdateKey(ctx, p.OrgID, id, name, now); err != nil {
		return Key{}, err
	}
	k.Name, k.UpdatedAt = name, now
	return k, nil
}

// Archive deletes a key for good: it can no longer sign.
func (s *Service) Archive(ctx context.Context, p auth.Principal, id string) (Key, error) {
	k, err := s.Get(ctx, p, id)
	if err != nil {
		return Key{}, err
	}
	if err := CheckWrite(p, k); err != nil {
		return Key{}, err
	}
	if k.Status == Archived {
		return k, nil
	}
	now := s.now().UTC()
	if err := s.store.ArchiveKey(ctx, p.OrgID, id, now); err != nil {
		return Key{}, err
	}
	k.Status, k.UpdatedAt, k.DeletedAt = Archived, now, now
	return k, nil
}

// SignRequest is the body of POST /keys/{keyId}/signatures and /wallets/{walletId}/signatures.
type SignRequest struct {
	Kind           string          `json:"kind"`
	Hash           string          `json:"hash,omitempty"`
	Message        json.RawMessage `json:"message,omitempty"` // hex string (Message) or object (Eip712)
	Transaction    string          `json:"transaction,omitempty"`
	Psbt           string          `json:"psbt,omitempty"`
	Format         string          `json:"format,omitempty"` // Bip322: Simple (default) or Full
	Types          json.RawMessage `json:"types,omitempty"`
	Domain         json.RawMessage `json:"domain,omitempty"`
	PrimaryType    string          `json:"primaryType,omitempty"`
	Network        string          `json:"network,omitempty"`
	BlockchainKind string          `json:"blockchainKind,omitempty"`
	ExternalID     string          `json:"externalId,omitempty"`
}

// Target says what a signature is made for: a key alone or a key through a wallet.
type Target struct {
	Key      *Key // the key, when the caller has loaded it already (a wallet's): not read again
	WalletID string
	Network  string // the wallet's network; "" for a bare key unless the body names one
}

// Chains turns a signature request into what to sign and the response fields, for the
// chain family of a network (EVM, Bitcoin, Solana) or of a bare key.
type Chains interface {
	Prepare(k PubKey, network, blockchainKind string, r SignRequest) (Prepared, error)
}

// PubKey is the public half of the signing key: chains check its type and find it in
// payloads (the PSBT inputs it may spend, its Solana signer slot).
type PubKey struct {
	Scheme, Curve string
	Key           []byte
}

// Prepared is a chain's signing payload: one digest and Finish, or Run when the chain
// needs several signatures or an EdDSA one.
type Prepared struct {
	Network string // resolved network ("" for chain-agnostic hashes)
	Digest  []byte
	Finish  func(r, s []byte, recid int) (parts SignatureParts, signedData string, err error)
	// Run, when set, replaces Digest and Finish: it calls sign once per payload (a 32-byte
	// digest for ECDSA keys, the message for EdDSA keys) and builds the response.
	Run func(sign func(payload []byte) (Signature, error)) (Result, error)
}

// Result is what a signature request reports of its signature(s).
type Result struct {
	Signature  *SignatureParts
	Signatures []SignatureParts
	SignedData string
}

// run signs p with sign.
func (p Prepared) run(sign func(payload []byte) (Signature, error)) (Result, error) {
	if p.Run != nil {
		return p.Run(sign)
	}
	sig, err := sign(p.Digest)
	if err != nil {
		return Result{}, err
	}
	parts, signedData, err := p.Finish(sig.R, sig.S, sig.RecID)
	if err != nil {
		return Result{}, err
	}
	return Result{Signature: &parts, SignedData: signedData}, nil
}

// Sign makes a signature with key keyID (through a wallet when t.WalletID is set). body
// is the exact request body: it is echoed back as requestBody and decides idempotency.
func (s *Service) Sign(ctx context.Context, p auth.Principal, keyID string, t Target, body []byte) (SignatureRequest, error) {
	var r SignRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return SignatureRequest{}, errs.E(errs.Invalid, "malformed JSON body", err)
	}
	if len(r.ExternalID) > 256 || !utf8.ValidString(r.ExternalID) {
		return SignatureRequest{}, errs.E(errs.Invalid, "externalId must be valid text of at most 256 bytes", nil)
	}
	var k Key
	if t.Key != nil && t.Key.ID == keyID && t.Key.OrgID == p.OrgID {
		k = *t.Key
	} else {
		var err error
		k, err = s.store.GetKey(ctx, p.OrgID, keyID)
		if errs.Is(err, errs.NotFound) {
			return SignatureRequest{}, errs.E(errs.NotFound, "key not found", err)
		}
		if err != nil {
			return SignatureRequest{}, err
		}
	}
	// Who may sign is decided before anything else, a replay included.
	if err := CheckWrite(p, k); err != nil {
		return SignatureRequest{}, err
	}
	if r.ExternalID != "" {
		prev, err := s.store.GetSignatureRequestByExternalID(ctx, p.OrgID, r.ExternalID)
		if err == nil {
			return s.replay(prev, keyID, t, body)
		}
		if !errs.Is(err, errs.NotFound) {
			return SignatureRequest{}, err
		}
	}
	if k.Status != Active {
		return SignatureRequest{}, errs.E(errs.Invalid, "key is archived", nil)
	}
	network := t.Network
	if network == "" {
		network = r.Network
	} else if r.Network != "" && r.Network != network {
		return SignatureRequest{}, errs.E(errs.Invalid, "network does not match the wallet's network", nil)
	}
	if k.Scheme != SchemeECDSA && k.Scheme != SchemeEdDSA {
		return SignatureRequest{}, errs.E(errs.Internal, "stored key has an unknown scheme", nil)
	}
	prep, err := s.chains.Prepare(PubKey{Scheme: k.Scheme, Curve: k.Curve, Key: k.PublicKey}, network, r.BlockchainKind, r)
	if err != nil {
		return SignatureRequest{}, err
	}
	network = prep.Network
	res, err := prep.run(func(payload []byte) (Signature, error) {
		if k.Scheme == SchemeEdDSA {
			return s.signer.SignMessage(ctx, k.Ref(), payload)
		}
		return s.signer.SignHash(ctx, k.Ref(), payload)
	})
	if err != nil {
		return SignatureRequest{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	sr := SignatureRequest{
		ID: ids.NewAt("sig", now), OrgID: p.OrgID, KeyID: k.ID, WalletID: t.WalletID, Network: network,
		RequesterUserID: p.UserID, RequesterTokenID: p.TokenID, RequestBody: json.RawMessage(bytes.Clone(body)),
		Status: Signed, Signature: res.Signature, Signatures: res.Signatures, SignedData: res.SignedData, ExternalID: r.ExternalID,
		CreatedAt: now, SignedAt: now,
	}
	if err := s.store.CreateSignatureRequest(ctx, sr); err != nil {
		if errs.Is(err, errs.Conflict) && r.ExternalID != "" { // a concurrent request with the same externalId won
			if prev, gerr := s.store.GetSignatureRequestByExternalID(ctx, p.OrgID, r.ExternalID); gerr == nil {
				return s.replay(prev, keyID, t, body)
			}
		}
		return SignatureRequest{}, err
	}
	return sr, nil
}

// replay answers a retried request (same externalId) with the original, or 409 when the
// retry is not the same request (dfns-api.md §6.4).
func (s *Service) replay(prev SignatureRequest, keyID string, t Target, body []byte) (SignatureRequest, error) {
	if prev.KeyID == keyID && prev.WalletID == t.WalletID && JSONEqual(prev.RequestBody, body) {
		return prev, nil
	}
	return SignatureRequest{}, errs.WithDetails(
		errs.E(errs.Conflict, "Conflicting signature request with same externalId", nil),
		map[string]any{"duplicate": map[string]string{"id": prev.ID, "externalId": prev.ExternalID}})
}

// JSONEqual compares two JSON documents by value, so key order and spacing of a retry do
// not matter.
func JSONEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// eddsaPayload is what an Ed25519 key signs: the raw bytes of a Hash or a Message.
func eddsaPayload(r SignRequest) ([]byte, error) {
	var h string
	switch r.Kind {
	case "Hash":
		h = r.Hash
	case "Message":
		if err := json.Unmarshal(r.Message, &h); err != nil {
			return nil, errs.E(errs.Invalid, "message must be a hex string", nil)
		}
	case "":
		return nil, errs.E(errs.Invalid, "kind is required", nil)
	default:
		return nil, errs.Ef(errs.Invalid, "signature kind %s is not supported for EdDSA keys", r.Kind)
	}
	b, err := hex.DecodeString(strings.TrimPrefix(h, "0x"))
	if err != nil || len(b) == 0 {
		return nil, errs.E(errs.Invalid, "hash or message must be non-empty hex", nil)
	}
	if r.Kind == "Hash" && len(b) != 32 {
		return nil, errs.E(errs.Invalid, "hash must be 32 bytes of hex", nil)
	}
	return b, nil
}

// GetSignature returns a signature request of a key (or of a wallet when walletID is set).
func (s *Service) GetSignature(ctx context.Context, p auth.Principal, keyID, walletID, id string) (SignatureRequest, error) {
	sr, err := s.store.GetSignatureRequest(ctx, p.OrgID, id)
	if err == nil && ((keyID != "" && sr.KeyID != keyID) || (walletID != "" && sr.WalletID != walletID)) {
		err = errs.E(errs.NotFound, "not found", nil)
	}
	if err == nil && isEndUser(p) {
		_, err = s.Get(ctx, p, sr.KeyID)
	}
	if errs.Is(err, errs.NotFound) {
		return SignatureRequest{}, errs.E(errs.NotFound, "signature request not found", err)
	}
	return sr, err
}

// ListSignatures returns a page of a key's (or wallet's) signature requests, newest first.
func (s *Service) ListSignatures(ctx context.Context, p auth.Principal, keyID, walletID string, page Page) ([]SignatureRequest, string, error) {
	if keyID != "" {
		if _, err := s.Get(ctx, p, keyID); err != nil {
			return nil, "", err
		}
	}
	page.Limit = clampLimit(page.Limit)
	items, err := s.store.ListSignatureRequests(ctx, p.OrgID, keyID, walletID, Page{Limit: page.Limit + 1, After: page.After})
	if err != nil {
		return nil, "", err
	}
	// A wallet's signatures all share its key: an end user who cannot see it sees none.
	if isEndUser(p) && len(items) > 0 {
		if _, err := s.Get(ctx, p, items[0].KeyID); err != nil {
			return nil, "", err
		}
	}
	next := ""
	if len(items) > page.Limit {
		items, next = items[:page.Limit], items[page.Limit-1].ID
	}
	return items, next, nil
}

// SignHash signs a 32-byte digest with key k (ECDSA secp256k1), for services that build
// the payload themselves (wallet transfers).
func (s *Service) SignHash(ctx context.Context, k Key, digest []byte) (Signature, error) {
	return s.signer.SignHash(ctx, k.Ref(), digest)
}
