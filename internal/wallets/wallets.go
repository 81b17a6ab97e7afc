// Package wallets owns wallets: a key bound to a network, with the address that key has
// there. Signing goes through the keys service; chain specifics through internal/chains.
package wallets

import (
	"context"
	"encoding/json"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
)

// Statuses of wallets.
const (
	Active   = "Active"
	Archived = "Archived"
)

// Wallet is a key on a network.
type Wallet struct {
	ID         string
	OrgID      string
	Network    string
	Address    string
	Key        keys.Key
	Name       string
	Status     string
	ExternalID string
	Tags       []string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Store persists wallets.
type Store interface {
	// CreateWallet stores w, and w.Key too when newKey is set, in one transaction.
	CreateWallet(ctx context.Context, w Wallet, newKey bool) error
	GetWallet(ctx context.Context, orgID, id string) (Wallet, error)
	ListWallets(ctx context.Context, orgID string, page keys.Page) ([]Wallet, error)
	UpdateWallet(ctx context.Context, orgID, id string, name, externalID *string, now time.Time) error
	SetWalletTags(ctx context.Context, orgID, id string, tags []string, now time.Time) error
	ListWalletsOfKey(ctx context.Context, orgID, keyID string) ([]Wallet, error)
}

// Service is the Wallets API.
type Service struct {
	store  Store
	keys   *keys.Service
	kst    keys.Store
	chains Chains
	now    func() time.Time

	transfers TransferStore
	txs       TransactionStore
	fills     FillStore
	repl      ReplaceStore                                      // nil until SetReplacements (replace.go)
	afterSend func(ctx context.Context, network, txHash string) // fault injection only, see SetAfterSend
	history   *history                                          // nil until SetHistory
	btc       bitcoinBroadcast                                  // Psbt broadcasts; empty until SetBitcoin
	asyncDev  bool                                              // sends to dev chains do not wait; see SetAsyncDevSends
}

// NewService wires the wallets service.
func NewService(store Store, ks *keys.Service, kst keys.Store, now func() time.Time) *Service {
	return &Service{store: store, keys: ks, kst: kst, now: now}
}

// CreateRequest is the body of POST /wallets.
type CreateRequest struct {
	Network         string          `json:"network"`
	Name            string          `json:"name,omitempty"`
	Tags            []string        `json:"tags,omitempty"`
	ExternalID      string          `json:"externalId,omitempty"`
	DelegateTo      string          `json:"delegateTo,omitempty"`
	DelayDelegation *bool           `json:"delayDelegation,omitempty"`
	SigningKey      *SigningKeySpec `json:"signingKey,omitempty"`
}

// SigningKeySpec reuses a key ({id}) or asks for a scheme/curve.
type SigningKeySpec struct {
	ID     string `json:"id,omitempty"`
	Scheme string `json:"scheme,omitempty"`
	Curve  string `json:"curve,omitempty"`
}

func validTags(tags []string) error {
	if len(tags) > 50 {
		return errs.E(errs.Invalid, "at most 50 tags", nil)
	}
	for _, t := range tags {
		if t == "" || len(t) > 100 || !utf8.ValidString(t) {
			return errs.E(errs.Invalid, "tags must be non-empty text of at most 100 bytes", nil)
		}
	}
	return nil
}

// Create makes a wallet on a network (EVM, Bitcoin, Solana), with a new key of the
// network's type unless signingKey.id names one.
func (s *Service) Create(ctx context.Context, p auth.Principal, r CreateRequest) (Wallet, error) {
	if r.Network == "" {
		return Wallet{}, errs.E(errs.Invalid, "network is required", nil)
	}
	net, ok := keys.LookupNetwork(r.Network)
	if !ok {
		return Wallet{}, errs.Ef(errs.Invalid, "network %q is not supported", r.Network)
	}
	wrongKey := errs.Ef(errs.Invalid, "%s wallets use %s/%s keys", r.Network, net.Scheme, net.Curve)
	if err := keys.ValidName(r.Name); err != nil {
		return Wallet{}, err
	}
	if err := validTags(r.Tags); err != nil {
		return Wallet{}, err
	}
	if len(r.ExternalID) > 256 || !utf8.ValidString(r.ExternalID) {
		return Wallet{}, errs.E(errs.Invalid, "externalId must be valid text of at most 256 bytes", nil)
	}
	to, err := s.keys.DelegateTarget(ctx, p, r.DelegateTo, r.DelayDelegation != nil && *r.DelayDelegation)
	if err != nil {
		return Wallet{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	w := Wallet{ID: ids.NewAt("wa", now), OrgID: p.OrgID, Network: r.Network, Name: r.Name, Status: Active,
		ExternalID: r.ExternalID, Tags: dedupe(r.Tags), CreatedAt: now, UpdatedAt: now}
	newKey := true
	if r.SigningKey != nil && r.SigningKey.ID != "" {
		k, err := s.kst.GetKey(ctx, p.OrgID, r.SigningKey.ID)
		if err == nil {
			err = keys.CheckWrite(p, k) // a new wallet on a key is a new way to sign with it
		}
		if errs.Is(err, errs.NotFound) {
			return Wallet{}, errs.E(errs.NotFound, "signing key not found", err)
		}
		if err != nil {
			return Wallet{}, err
		}
		if to != k.DelegatedTo && (to != "" || r.DelegateTo != "") {
			return Wallet{}, errs.E(errs.Invalid, "a wallet on an existing key is delegated like that key: delegateTo must match it", nil)
		}
		if k.Status != keys.Active {
			return Wallet{}, errs.E(errs.Invalid, "signing key is archived", nil)
		}
		w.Key, newKey = k, false
	} else {
		scheme, curve := net.Scheme, net.Curve
		if r.SigningKey != nil && (r.SigningKey.Scheme != "" || r.SigningKey.Curve != "") &&
			(r.SigningKey.Scheme != scheme || r.SigningKey.Curve != curve) {
			return Wallet{}, wrongKey
		}
		k, err := s.keys.NewKey(p.OrgID, scheme, curve, r.Name)
		if err != nil {
			return Wallet{}, err
		}
		if to != "" {
			k.DelegatedTo, k.DelegatedAt = to, k.CreatedAt
		}
		w.Key = k
	}
	if w.Key.Scheme != net.Scheme || w.Key.Curve != net.Curve {
		return Wallet{}, wrongKey
	}
	addr, err := net.Address(w.Key.PublicKey)
	if err != nil {
		return Wallet{}, errs.E(errs.Internal, "could not derive the address", err)
	}
	w.Address = addr
	if err := s.store.CreateWallet(ctx, w, newKey); err != nil {
		if errs.Is(err, errs.Conflict) {
			return Wallet{}, errs.E(errs.Conflict, "a wallet with this externalId, or of this key on this network, already exists", err)
		}
		return Wallet{}, err
	}
	return w, nil
}

func dedupe(tags []string) []string {
	out := []string{}
	for _, t := range tags {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// Get returns a wallet of the caller's organization that the caller may see (its key's
// delegation decides, keys.Visible).
func (s *Service) Get(ctx context.Context, p auth.Principal, id string) (Wallet, error) {
	w, err := s.store.GetWallet(ctx, p.OrgID, id)
	if err == nil && !keys.Visible(p, w.Key) {
		err = errs.E(errs.NotFound, "not visible", nil)
	}
	if errs.Is(err, errs.NotFound) {
		return Wallet{}, errs.E(errs.NotFound, "wallet not found", err)
	}
	return w, err
}

// List returns a page of wallets, newest first.
func (s *Service) List(ctx context.Context, p auth.Principal, page keys.Page) ([]Wallet, string, error) {
	page = keys.ListFilter(p, page)
	if page.Limit <= 0 {
		page.Limit = 100
	}
	page.Limit = min(page.Limit, 500)
	ws, err := s.store.ListWallets(ctx, p.OrgID, keys.Page{Limit: page.Limit + 1, After: page.After, DelegatedTo: page.DelegatedTo})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(ws) > page.Limit {
		ws, next = ws[:page.Limit], ws[page.Limit-1].ID
	}
	return ws, next, nil
}

// UpdateRequest is the body of PUT /wallets/{walletId}. externalId may be null (cleared).
type UpdateRequest struct {
	Name       *string         `json:"name,omitempty"`
	ExternalID json.RawMessage `json:"externalId,omitempty"`
}

// Update renames a wallet or sets/clears its externalId.
func (s *Service) Update(ctx context.Context, p auth.Principal, id string, r UpdateRequest) (Wallet, error) {
	if r.Name != nil {
		if err := keys.ValidName(*r.Name); err != nil {
			return Wallet{}, err
		}
	}
	var ext *string
	if len(r.ExternalID) > 0 {
		var v *string
		if err := json.Unmarshal(r.ExternalID, &v); err != nil {
			return Wallet{}, errs.E(errs.Invalid, "externalId must be a string or null", nil)
		}
		if v == nil {
			v = new(string)
		}
		if len(*v) > 256 || !utf8.ValidString(*v) {
			return Wallet{}, errs.E(errs.Invalid, "externalId must be valid text of at most 256 bytes", nil)
		}
		ext = v
	}
	w, err := s.Writable(ctx, p, id)
	if err != nil {
		return Wallet{}, err
	}
	now := s.now().UTC()
	if err := s.store.UpdateWallet(ctx, p.OrgID, id, r.Name, ext, now); err != nil {
		if errs.Is(err, errs.Conflict) {
			return Wallet{}, errs.E(errs.Conflict, "another wallet has this externalId", err)
		}
		return Wallet{}, err
	}
	if r.Name != nil {
		w.Name = *r.Name
	}
	if ext != nil {
		w.ExternalID = *ext
	}
	w.UpdatedAt = now
	return w, nil
}

// TagsRequest is the body of PUT and DELETE /wallets/{walletId}/tags.
type TagsRequest struct {
	Tags []string `json:"tags"`
}

// Tag adds (add=true) or removes tags.
func (s *Service) Tag(ctx context.Context, p auth.Principal, id string, r TagsRequest, add bool) error {
	if r.Tags == nil {
		return errs.E(errs.Invalid, "tags is required", nil)
	}
	if err := validTags(r.Tags); err != nil {
		return err
	}
	w, err := s.Writable(ctx, p, id)
	if err != nil {
		return err
	}
	tags := w.Tags
	if add {
		tags = dedupe(append(slices.Clone(tags), r.Tags...))
	} else {
		tags = slices.DeleteFunc(slices.Clone(tags), func(t string) bool { return slices.Contains(r.Tags, t) })
	}
	if err := validTags(tags); err != nil {
		return err
	}
	return s.store.SetWalletTags(ctx, p.OrgID, id, tags, s.now().UTC())
}

// Sign makes a signature with the wallet's key, in the wallet's network.
func (s *Service) Sign(ctx context.Context, p auth.Principal, id string, body []byte) (keys.SignatureRequest, error) {
	w, err := s.Writable(ctx, p, id)
	if err != nil {
		return keys.SignatureRequest{}, err
	}
	if w.Status != Active {
		return keys.SignatureRequest{}, errs.E(errs.Invalid, "wallet is not active", nil)
	}
	return s.keys.Sign(ctx, p, w.Key.ID, keys.Target{Key: &w.Key, WalletID: w.ID, Network: w.Network}, body)
}

// OfKey lists the wallets of a key.
func (s *Service) OfKey(ctx context.Context, p auth.Principal, keyID string) ([]Wallet, error) {
	ws, err := s.store.ListWalletsOfKey(ctx, p.OrgID, keyID)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ws, func(w Wallet) bool { return !keys.Visible(p, w.Key) }), nil
}

// Writable returns a wallet the caller may sign with or change: the one check (keys.CheckWrite
// on its key) that every write path of a wallet goes through.
func (s *Service) Writable(ctx context.Context, p auth.Principal, id string) (Wallet, error) {
	w, err := s.Get(ctx, p, id)
	if err != nil {
		return Wallet{}, err
	}
	return w, keys.CheckWrite(p, w.Key)
}

// DelegateRequest is the body of POST /wallets/{walletId}/delegate.
type DelegateRequest struct {
	UserID string `json:"userId"`
}

// Delegate hands the wallet's key, and so every wallet on it, to an end user for good.
func (s *Service) Delegate(ctx context.Context, p auth.Principal, id, userID string) (Wallet, error) {
	if err := keys.RequireStaff(p); err != nil {
		return Wallet{}, err
	}
	w, err := s.Get(ctx, p, id)
	if err != nil {
		return Wallet{}, err
	}
	k, err := s.keys.Delegate(ctx, p, w.Key.ID, userID)
	if err != nil {
		return Wallet{}, err
	}
	w.Key = k
	return w, nil
}
