package httpapi

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/wallets"
)

type signingKeyJSON struct {
	ID        string `json:"id"`
	Scheme    string `json:"scheme"`
	Curve     string `json:"curve"`
	PublicKey string `json:"publicKey"`
	// DelegatedTo is the end user the key (and wallet) is delegated to.
	DelegatedTo string `json:"delegatedTo,omitempty"`
}

type walletJSON struct {
	ID          string         `json:"id"`
	Network     string         `json:"network"`
	Address     string         `json:"address,omitempty"`
	SigningKey  signingKeyJSON `json:"signingKey"`
	Status      string         `json:"status"`
	DateCreated string         `json:"dateCreated"`
	DateDeleted string         `json:"dateDeleted,omitempty"`
	Name        string         `json:"name,omitempty"`
	Custodial   bool           `json:"custodial"`
	ExternalID  string         `json:"externalId,omitempty"`
	Tags        []string       `json:"tags"`
}

type keyJSON struct {
	ID          string `json:"id"`
	Scheme      string `json:"scheme"`
	Curve       string `json:"curve"`
	PublicKey   string `json:"publicKey"`
	Name        string `json:"name,omitempty"`
	Status      string `json:"status"`
	Custodial   bool   `json:"custodial"`
	DateCreated string `json:"dateCreated"`
	DateDeleted string `json:"dateDeleted,omitempty"`
}

type requesterJSON struct {
	UserID  string `json:"userId"`
	TokenID string `json:"tokenId,omitempty"`
}

type signatureJSON struct {
	ID            string               `json:"id"`
	KeyID         string               `json:"keyId"`
	WalletID      string               `json:"walletId,omitempty"`
	Network       string               `json:"network,omitempty"`
	Requester     requesterJSON        `json:"requester"`
	RequestBody   json.RawMessage      `json:"requestBody"`
	Status        string               `json:"status"`
	Reason        string               `json:"reason,omitempty"`
	Signature     *keys.SignatureParts `json:"signature,omitempty"`
	SignedData    string               `json:"signedData,omitempty"`
	ExternalID    string               `json:"externalId,omitempty"`
	DateRequested string               `json:"dateRequested"`
	DateSigned    string               `json:"dateSigned,omitempty"`

	Signatures []keys.SignatureParts `json:"signatures,omitempty"` // one per signed PSBT input
}

// optTime formats t, or gives "" (field omitted) for the zero time.
func optTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return jsTime(t)
}

func toKey(k keys.Key) keyJSON {
	return keyJSON{ID: k.ID, Scheme: k.Scheme, Curve: k.Curve, PublicKey: hex.EncodeToString(k.PublicKey), Name: k.Name,
		Status: k.Status, Custodial: k.DelegatedTo == "", DateCreated: jsTime(k.CreatedAt), DateDeleted: optTime(k.DeletedAt)}
}

func toWallet(w wallets.Wallet) walletJSON {
	tags := w.Tags
	if tags == nil {
		tags = []string{}
	}
	return walletJSON{ID: w.ID, Network: w.Network, Address: w.Address,
		SigningKey: signingKeyJSON{ID: w.Key.ID, Scheme: w.Key.Scheme, Curve: w.Key.Curve, PublicKey: hex.EncodeToString(w.Key.PublicKey),
			DelegatedTo: w.Key.DelegatedTo},
		Status: w.Status, DateCreated: jsTime(w.CreatedAt), Name: w.Name, Custodial: w.Key.DelegatedTo == "", ExternalID: w.ExternalID, Tags: tags,
		DateDeleted: optTime(w.Key.DeletedAt)}
}

func toSignature(r keys.SignatureRequest) signatureJSON {
	return signatureJSON{ID: r.ID, KeyID: r.KeyID, WalletID: r.WalletID, Network: r.Network,
		Requester: requesterJSON{UserID: r.RequesterUserID, TokenID: r.RequesterTokenID}, RequestBody: r.RequestBody,
		Status: r.Status, Reason: r.Reason, Signature: r.Signature, Signatures: r.Signatures, SignedData: r.SignedData, ExternalID: r.ExternalID,
		DateRequested: jsTime(r.CreatedAt), DateSigned: optTime(r.SignedAt)}
}

// page reads limit and paginationToken.
func page(r *http.Request) (keys.Page, error) {
	q := r.URL.Query()
	n, err := parseLimit(q.Get("limit"))
	if err != nil {
		return keys.Page{}, err
	}
	tok := q.Get("paginationToken")
	if len(tok) > 128 {
		return keys.Page{}, errs.E(errs.Invalid, "paginationToken is not valid", nil)
	}
	return keys.Page{Limit: n, After: tok}, nil
}

func (s *Server) createKey(r *http.Request, c *call) (any, error) {
	var req keys.CreateKeyRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	k, err := s.Keys.Create(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return toKey(k), nil
}

func (s *Server) listKeys(r *http.Request, c *call) (any, error) {
	pg, err := page(r)
	if err != nil {
		return nil, err
	}
	ks, next, err := s.Keys.List(r.Context(), c.p, pg)
	if err != nil {
		return nil, err
	}
	out := itemsJSON[keyJSON]{Items: make([]keyJSON, 0, len(ks)), NextPageToken: next}
	for _, k := range ks {
		out.Items = append(out.Items, toKey(k))
	}
	return out, nil
}

// keyDetailJSON is GET /keys/{id}: the key, its wallets, and where it is stored. The SDK
// types name three store kinds; a key sealed by this server is held like an HSM key (one
// holder, never exported), so it reports "Hsm".
type keyDetailJSON struct {
	keyJSON
	Wallets []keyWalletJSON `json:"wallets"`
	Store   keyStoreJSON    `json:"store"`
}

type keyWalletJSON struct {
	ID      string `json:"id"`
	Network string `json:"network"`
}

type keyStoreJSON struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	KeyID string `json:"keyId"`
}

func (s *Server) getKey(r *http.Request, c *call) (any, error) {
	k, err := s.Keys.Get(r.Context(), c.p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	ws, err := s.Wallets.OfKey(r.Context(), c.p, k.ID)
	if err != nil {
		return nil, err
	}
	out := keyDetailJSON{keyJSON: toKey(k), Wallets: make([]keyWalletJSON, 0, len(ws)),
		Store: keyStoreJSON{ID: "countersign-local", Kind: "Hsm", KeyID: k.ID}}
	for _, w := range ws {
		out.Wallets = append(out.Wallets, keyWalletJSON{ID: w.ID, Network: w.Network})
	}
	return out, nil
}

func (s *Server) updateKey(r *http.Request, c *call) (any, error) {
	var req struct {
		Name *string `json:"name"`
	}
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if req.Name == nil {
		return nil, errs.E(errs.Invalid, "name is required", nil)
	}
	k, err := s.Keys.Update(r.Context(), c.p, r.PathValue("id"), *req.Name)
	if err != nil {
		return nil, err
	}
	return toKey(k), nil
}

func (s *Server) deleteKey(r *http.Request, c *call) (any, error) {
	k, err := s.Keys.Archive(r.Context(), c.p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return toKey(k), nil
}

// signBody checks the body is a JSON object before the services parse it themselves (they
// keep the exact bytes as requestBody).
func signBody(body []byte) error {
	var v map[string]json.RawMessage
	return decode(body, &v)
}

func (s *Server) keySign(r *http.Request, c *call) (any, error) {
	if err := signBody(c.body); err != nil {
		return nil, err
	}
	sr, err := s.Keys.Sign(r.Context(), c.p, r.PathValue("id"), keys.Target{}, c.body)
	if err != nil {
		return nil, err
	}
	return toSignature(sr), nil
}

type sigListJSON struct {
	KeyID         string          `json:"keyId,omitempty"`
	WalletID      string          `json:"walletId,omitempty"`
	Items         []signatureJSON `json:"items"`
	NextPageToken string          `json:"nextPageToken,omitempty"`
}

func (s *Server) listSignatures(keyParam, walletParam string) handlerFunc {
	return func(r *http.Request, c *call) (any, error) {
		pg, err := page(r)
		if err != nil {
			return nil, err
		}
		keyID, walletID := r.PathValue(keyParam), r.PathValue(walletParam)
		filterKey := keyID
		if walletID != "" { // the wallet must exist and be the caller's org's
			w, err := s.Wallets.Get(r.Context(), c.p, walletID)
			if err != nil {
				return nil, err
			}
			keyID = w.Key.ID // reported as the wallet's underlying key
		} else if _, err := s.Keys.Get(r.Context(), c.p, keyID); err != nil {
			return nil, err
		}
		items, next, err := s.Keys.ListSignatures(r.Context(), c.p, filterKey, walletID, pg)
		if err != nil {
			return nil, err
		}
		out := sigListJSON{KeyID: keyID, WalletID: walletID, Items: make([]signatureJSON, 0, len(items)), NextPageToken: next}
		for _, it := range items {
			out.Items = append(out.Items, toSignature(it))
		}
		return out, nil
	}
}

func (s *Server) getSignature(keyParam, walletParam string) handlerFunc {
	return func(r *http.Request, c *call) (any, error) {
		sr, err := s.Keys.GetSignature(r.Context(), c.p, r.PathValue(keyParam), r.PathValue(walletParam), r.PathValue("sigId"))
		if err != nil {
			return nil, err
		}
		return toSignature(sr), nil
	}
}

func (s *Server) createWallet(r *http.Request, c *call) (any, error) {
	var req wallets.CreateRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	w, err := s.Wallets.Create(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return toWallet(w), nil
}

func (s *Server) listWallets(r *http.Request, c *call) (any, error) {
	pg, err := page(r)
	if err != nil {
		return nil, err
	}
	ws, next, err := s.Wallets.List(r.Context(), c.p, pg)
	if err != nil {
		return nil, err
	}
	out := itemsJSON[walletJSON]{Items: make([]walletJSON, 0, len(ws)), NextPageToken: next}
	for _, w := range ws {
		out.Items = append(out.Items, toWallet(w))
	}
	return out, nil
}

func (s *Server) getWallet(r *http.Request, c *call) (any, error) {
	w, err := s.Wallets.Get(r.Context(), c.p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return toWallet(w), nil
}

func (s *Server) updateWallet(r *http.Request, c *call) (any, error) {
	var req wallets.UpdateRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	w, err := s.Wallets.Update(r.Context(), c.p, r.PathValue("id"), req)
	if err != nil {
		return nil, err
	}
	return toWallet(w), nil
}

func (s *Server) tagWallet(add bool) handlerFunc {
	return func(r *http.Request, c *call) (any, error) {
		var req wallets.TagsRequest
		if err := decode(c.body, &req); err != nil {
			return nil, err
		}
		if err := s.Wallets.Tag(r.Context(), c.p, r.PathValue("id"), req, add); err != nil {
			return nil, err
		}
		return struct{}{}, nil
	}
}

func (s *Server) walletSign(r *http.Request, c *call) (any, error) {
	if err := signBody(c.body); err != nil {
		return nil, err
	}
	sr, err := s.Wallets.Sign(r.Context(), c.p, r.PathValue("id"), c.body)
	if err != nil {
		return nil, err
	}
	return toSignature(sr), nil
}
