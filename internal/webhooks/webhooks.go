// Package webhooks tells subscribers about state changes (dfns-api.md §4.6, §5): the
// Webhooks API, the events outbox, signed delivery with retries, and an HTTP client that
// refuses private addresses.
//
// Emitting: a state change reports itself with store.Tx.Emit(ctx, orgID, kind, data)
// inside the transaction that makes it. One event row per subscribed webhook, and one
// delivery job per row, are written in that same transaction (outbox), so an event exists
// if and only if its change committed, and is delivered at least once even if the node
// dies right after the commit. Each attempt is its own row (a retry is a new event whose
// retryOf names the previous one), all visible through GET /webhooks/{id}/events.
package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
)

// Event kinds countersign emits (dfns-api.md §5.1). Emit one of these, with data of the
// shape the kind documents (§5.2).
const (
	KeyCreated            = "key.created"                // data {"key": Key}
	KeyDeleted            = "key.deleted"                // data {"key": Key}
	WalletCreated         = "wallet.created"             // data {"wallet": Wallet}
	WalletTagsModified    = "wallet.tags.modified"       // data {"wallet": Wallet}
	SignatureRequested    = "wallet.signature.requested" // data {"signatureRequest": SignatureRequest}
	SignatureSigned       = "wallet.signature.signed"
	SignatureFailed       = "wallet.signature.failed"
	TransferRequested     = "wallet.transfer.requested" // data {"transferRequest": TransferRequest}
	TransferBroadcasted   = "wallet.transfer.broadcasted"
	TransferConfirmed     = "wallet.transfer.confirmed"
	TransferFailed        = "wallet.transfer.failed"
	TransactionRequested  = "wallet.transaction.requested" // data {"transactionRequest": TransactionRequest}
	TransactionBroadcast  = "wallet.transaction.broadcasted"
	TransactionConfirmed  = "wallet.transaction.confirmed"
	TransactionFailed     = "wallet.transaction.failed"
	BlockchainEventDetect = "wallet.blockchainevent.detected" // data {"blockchainEvent": HistoryItem}
	WalletDelegated       = "wallet.delegated"
	KeyDelegated          = "key.delegated"
	// PingKind is the kind of the test event POST /webhooks/{id}/ping sends (not stored;
	// Dfns does not document its kind).
	PingKind = "webhook.ping"
)

// Kinds are every kind a webhook may subscribe to: the official SDK's list, so that
// subscriptions made for Dfns are accepted unchanged; "*" means all.
var Kinds = []string{
	"policy.triggered", "policy.approval.pending", "policy.approval.resolved",
	"key.created", "key.deleted", "key.delegated", "key.exported",
	"wallet.blockchainevent.detected", "wallet.blockchain_event.transfer.included",
	"wallet.created", "wallet.activated", "wallet.delegated", "wallet.exported",
	"wallet.signature.failed", "wallet.signature.rejected", "wallet.signature.requested", "wallet.signature.signed",
	"wallet.transaction.broadcasted", "wallet.transaction.confirmed", "wallet.transaction.failed",
	"wallet.transaction.rejected", "wallet.transaction.requested",
	"wallet.transfer.broadcasted", "wallet.transfer.confirmed", "wallet.transfer.failed",
	"wallet.transfer.rejected", "wallet.transfer.requested",
	"wallet.offer.received", "wallet.offer.accepted", "wallet.offer.rejected", "wallet.offer.withdrawn",
	"wallet.tags.modified", "payout.action.required",
}

// Statuses of webhooks.
const (
	Enabled  = "Enabled"
	Disabled = "Disabled"
)

// MaxPerOrg bounds the webhooks of one organization (Dfns' default is 5; fan-out per
// state change is what it protects).
const MaxPerOrg = 20

// RetentionPeriod is how long events stay queryable (dfns-api.md §5.5).
const RetentionPeriod = 31 * 24 * time.Hour

// Webhook is a subscription. Secret is set only on the value Create returns.
type Webhook struct {
	ID           string
	OrgID        string
	URL          string
	Events       []string
	Status       string
	Description  string
	SealedSecret []byte
	Secret       string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Subscribed reports whether w receives events of kind.
func (w Webhook) Subscribed(kind string) bool {
	return w.Status == Enabled && (slices.Contains(w.Events, "*") || slices.Contains(w.Events, kind))
}

// Event is one delivery attempt of one event to one webhook.
type Event struct {
	ID              string
	OrgID           string
	WebhookID       string
	Kind            string
	Data            json.RawMessage
	Date            time.Time // when the state change happened
	DeliveryAttempt int
	RetryOf         string
	FirstAttemptAt  time.Time // the retry schedule counts from here
	Status          string    // HTTP status of the attempt, "0" without a response, "" before the attempt
	Error           string
	DeliveryFailed  bool
	TimestampSent   int64     // Unix seconds; 0 before the attempt
	NextAttemptAt   time.Time // when this row is (re)tried: the retry of a failed attempt, or this pending row
	CreatedAt       time.Time
}

// NewEvents makes the event rows of one state change: one per webhook in hooks that is
// subscribed to kind. data is the JSON object of the envelope's data field.
func NewEvents(hooks []Webhook, kind string, data json.RawMessage, now time.Time) []Event {
	var out []Event
	now = now.UTC().Truncate(time.Millisecond)
	for _, h := range hooks {
		if !h.Subscribed(kind) {
			continue
		}
		out = append(out, Event{ID: ids.NewAt("whe", now), OrgID: h.OrgID, WebhookID: h.ID, Kind: kind, Data: data,
			Date: now, DeliveryAttempt: 1, CreatedAt: now})
	}
	return out
}

// EventFilter selects events of a webhook, newest first.
type EventFilter struct {
	Kind           string
	DeliveryFailed *bool
	Limit          int
	After          string
}

// Store persists webhooks and their events.
type Store interface {
	// CreateWebhook stores w unless the org already has max webhooks (errs Invalid).
	CreateWebhook(ctx context.Context, w Webhook, max int) error
	GetWebhook(ctx context.Context, orgID, id string) (Webhook, error)
	ListWebhooks(ctx context.Context, orgID string, page keys.Page) ([]Webhook, error)
	UpdateWebhook(ctx context.Context, w Webhook) error
	// DeleteWebhook deletes a webhook and its events.
	DeleteWebhook(ctx context.Context, orgID, id string) error
	ListWebhookEvents(ctx context.Context, orgID, webhookID string, f EventFilter) ([]Event, error)
	GetWebhookEvent(ctx context.Context, orgID, webhookID, id string) (Event, error)
	// LoadDelivery returns an event and its webhook by the event id alone (NotFound when
	// either is gone).
	LoadDelivery(ctx context.Context, eventID string) (Event, Webhook, error)
	// RecordAttempt stores the outcome of ev's attempt, unless one was already recorded
	// (then it reports false), and in the same transaction stores retry, if any, and
	// queues its delivery.
	RecordAttempt(ctx context.Context, ev Event, retry *Event) (bool, error)
	// PurgeWebhookEvents deletes events created before t.
	PurgeWebhookEvents(ctx context.Context, before time.Time) (int64, error)
}

// Sealer encrypts webhook secrets at rest (secrets.Ring).
type Sealer interface {
	Seal(plaintext, aad []byte) []byte
	Open(sealed, aad []byte) ([]byte, error)
}

// Service is the Webhooks API and the delivery of events.
type Service struct {
	store        Store
	sealer       Sealer
	client       *Client
	schedule     []time.Duration
	allowPrivate bool
	now          func() time.Time // event dates and retention
	wall         func() time.Time // delivery times: real time, as the job queue schedules by it
}

// NewService wires the service. schedule is the retry schedule (ParseSchedule);
// allowPrivate lets webhooks reach private, loopback and link-local addresses.
func NewService(store Store, sealer Sealer, schedule []time.Duration, allowPrivate bool, now func() time.Time) *Service {
	return &Service{store: store, sealer: sealer, client: NewClient(allowPrivate), schedule: schedule,
		allowPrivate: allowPrivate, now: now, wall: time.Now}
}

// DefaultSchedule is Dfns' retry schedule (dfns-api.md §5.5): after the first attempt,
// retries 1 min, 12 min, 2 h and 24 h after it, five attempts in all.
const DefaultSchedule = "1m,12m,2h,24h"

// ParseSchedule parses a comma-separated list of increasing delays, each counted from an
// event's first attempt ("1s,2s,4s"); an empty list means no retries.
func ParseSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("webhook retry schedule: %q is not a positive duration", part)
		}
		if len(out) > 0 && d <= out[len(out)-1] {
			return nil, fmt.Errorf("webhook retry schedule: delays must increase (%v after %v)", d, out[len(out)-1])
		}
		out = append(out, d)
	}
	if len(out) > 20 {
		return nil, fmt.Errorf("webhook retry schedule: at most 20 retries")
	}
	return out, nil
}

func aad(orgID, id string) []byte { return []byte("webhooks/" + orgID + "/" + id) }

// CreateRequest is the body of POST /webhooks.
type CreateRequest struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description,omitempty"`
	Status      string   `json:"status,omitempty"`
}

// UpdateRequest is the body of PUT /webhooks/{webhookId}.
type UpdateRequest struct {
	URL         *string  `json:"url,omitempty"`
	Events      []string `json:"events,omitempty"`
	Description *string  `json:"description,omitempty"`
	Status      *string  `json:"status,omitempty"`
}

func (s *Service) validURL(raw string) error {
	if raw == "" {
		return errs.E(errs.Invalid, "url is required", nil)
	}
	if len(raw) > 2048 || !utf8.ValidString(raw) {
		return errs.E(errs.Invalid, "url must be at most 2048 bytes", nil)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Opaque != "" {
		return errs.E(errs.Invalid, "url must be an absolute http or https URL", err)
	}
	if u.User != nil {
		return errs.E(errs.Invalid, "url must not carry credentials", nil)
	}
	// A literal address is checked now for a clear answer; names are checked when a
	// delivery dials (the address may change).
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !s.allowPrivate && Blocked(ip) {
		return errs.E(errs.Invalid, "url points to a private, loopback or link-local address, which this server does not call", nil)
	}
	return nil
}

func validEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return nil, errs.E(errs.Invalid, "events must list at least one event kind, or \"*\"", nil)
	}
	out := []string{}
	for _, e := range events {
		if e != "*" && !slices.Contains(Kinds, e) {
			return nil, errs.Ef(errs.Invalid, "unknown event kind %q", clip(e, 64))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func validDescription(d string) error {
	if len(d) > 1024 || !utf8.ValidString(d) {
		return errs.E(errs.Invalid, "description must be valid text of at most 1024 bytes", nil)
	}
	return nil
}

func validStatus(st string) error {
	if st != Enabled && st != Disabled {
		return errs.E(errs.Invalid, "status must be Enabled or Disabled", nil)
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// newSecret makes "whs-" and 32 random alphanumerics (the shape of Dfns' secrets, §5.4).
func newSecret() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		b[i] = alphabet[n.Int64()]
	}
	return "whs-" + string(b)
}

// Create makes a webhook; the returned value carries its secret, shown this once.
func (s *Service) Create(ctx context.Context, p auth.Principal, r CreateRequest) (Webhook, error) {
	if err := keys.RequireStaff(p); err != nil {
		return Webhook{}, err
	}
	if err := s.validURL(r.URL); err != nil {
		return Webhook{}, err
	}
	events, err := validEvents(r.Events)
	if err != nil {
		return Webhook{}, err
	}
	if err := validDescription(r.Description); err != nil {
		return Webhook{}, err
	}
	if r.Status == "" {
		r.Status = Enabled
	}
	if err := validStatus(r.Status); err != nil {
		return Webhook{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	w := Webhook{ID: ids.NewAt("wh", now), OrgID: p.OrgID, URL: r.URL, Events: events, Status: r.Status,
		Description: r.Description, Secret: newSecret(), CreatedAt: now, UpdatedAt: now}
	w.SealedSecret = s.sealer.Seal([]byte(w.Secret), aad(w.OrgID, w.ID))
	if err := s.store.CreateWebhook(ctx, w, MaxPerOrg); err != nil {
		return Webhook{}, err
	}
	return w, nil
}

// Get returns a webhook of the caller's organization.
func (s *Service) Get(ctx context.Context, p auth.Principal, id string) (Webhook, error) {
	if err := keys.RequireStaff(p); err != nil {
		return Webhook{}, err
	}
	w, err := s.store.GetWebhook(ctx, p.OrgID, id)
	if errs.Is(err, errs.NotFound) {
		return Webhook{}, errs.E(errs.NotFound, "webhook not found", err)
	}
	return w, err
}

func clampLimit(n int) int {
	if n <= 0 {
		return 100
	}
	return min(n, 500)
}

// List returns a page of webhooks, newest first, and the next page token.
func (s *Service) List(ctx context.Context, p auth.Principal, page keys.Page) ([]Webhook, string, error) {
	if err := keys.RequireStaff(p); err != nil {
		return nil, "", err
	}
	page.Limit = clampLimit(page.Limit)
	ws, err := s.store.ListWebhooks(ctx, p.OrgID, keys.Page{Limit: page.Limit + 1, After: page.After})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(ws) > page.Limit {
		ws, next = ws[:page.Limit], ws[page.Limit-1].ID
	}
	return ws, next, nil
}

// Update changes a webhook's url, events, description or status. Re-enabling a webhook
// before a pending retry is due lets that retry go out.
func (s *Service) Update(ctx context.Context, p auth.Principal, id string, r UpdateRequest) (Webhook, error) {
	if r.URL != nil {
		if err := s.validURL(*r.URL); err != nil {
			return Webhook{}, err
		}
	}
	var events []string
	if r.Events != nil {
		var err error
		if events, err = validEvents(r.Events); err != nil {
			return Webhook{}, err
		}
	}
	if r.Description != nil {
		if err := validDescription(*r.Description); err != nil {
			return Webhook{}, err
		}
	}
	if r.Status != nil {
		if err := validStatus(*r.Status); err != nil {
			return Webhook{}, err
		}
	}
	w, err := s.Get(ctx, p, id)
	if err != nil {
		return Webhook{}, err
	}
	if r.URL != nil {
		w.URL = *r.URL
	}
	if events != nil {
		w.Events = events
	}
	if r.Description != nil {
		w.Description = *r.Description
	}
	if r.Status != nil {
		w.Status = *r.Status
	}
	w.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	if err := s.store.UpdateWebhook(ctx, w); err != nil {
		return Webhook{}, err
	}
	return w, nil
}

// Delete removes a webhook and its events; pending retries stop.
func (s *Service) Delete(ctx context.Context, p auth.Principal, id string) error {
	if _, err := s.Get(ctx, p, id); err != nil {
		return err
	}
	return s.store.DeleteWebhook(ctx, p.OrgID, id)
}

// ListEvents returns a page of a webhook's events, newest first.
func (s *Service) ListEvents(ctx context.Context, p auth.Principal, webhookID string, f EventFilter) ([]Event, string, error) {
	if _, err := s.Get(ctx, p, webhookID); err != nil {
		return nil, "", err
	}
	if f.Kind != "" && !slices.Contains(Kinds, f.Kind) {
		return nil, "", errs.Ef(errs.Invalid, "unknown event kind %q", clip(f.Kind, 64))
	}
	f.Limit = clampLimit(f.Limit)
	lim := f.Limit
	f.Limit++
	evs, err := s.store.ListWebhookEvents(ctx, p.OrgID, webhookID, f)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(evs) > lim {
		evs, next = evs[:lim], evs[lim-1].ID
	}
	return evs, next, nil
}

// GetEvent returns one event of a webhook.
func (s *Service) GetEvent(ctx context.Context, p auth.Principal, webhookID, id string) (Event, error) {
	if _, err := s.Get(ctx, p, webhookID); err != nil {
		return Event{}, err
	}
	ev, err := s.store.GetWebhookEvent(ctx, p.OrgID, webhookID, id)
	if errs.Is(err, errs.NotFound) {
		return Event{}, errs.E(errs.NotFound, "webhook event not found", err)
	}
	return ev, err
}

func (s *Service) secret(w Webhook) (string, error) {
	b, err := s.sealer.Open(w.SealedSecret, aad(w.OrgID, w.ID))
	if err != nil {
		return "", errs.E(errs.Internal, "webhook secret cannot be opened", err)
	}
	return string(b), nil
}

// Ping sends a test event to the webhook now and reports the receiver's answer. The event
// is not stored.
func (s *Service) Ping(ctx context.Context, p auth.Principal, id string) (Result, error) {
	w, err := s.Get(ctx, p, id)
	if err != nil {
		return Result{}, err
	}
	secret, err := s.secret(w)
	if err != nil {
		return Result{}, err
	}
	now := s.wall().UTC()
	body, err := Envelope{ID: ids.NewAt("whe", now), Kind: PingKind, Date: jsTime(now),
		Data: json.RawMessage(`{"webhookId":` + quote(w.ID) + `}`), DeliveryAttempt: 1, TimestampSent: now.Unix()}.Body()
	if err != nil {
		return Result{}, errs.E(errs.Internal, "could not encode the ping", err)
	}
	return s.client.Post(ctx, w.URL, secret, body), nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// jsTime formats like JavaScript's Date.toISOString (dfns-api.md §6.4).
func jsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Deliver makes the attempt of event id. It is idempotent: an event whose attempt was
// recorded, or whose webhook is gone, is left alone. A failed attempt with retries left
// stores the retry (a new event) and queues it for its time on the schedule; retries
// stop once the webhook is disabled.
func (s *Service) Deliver(ctx context.Context, id string) error {
	ev, w, err := s.store.LoadDelivery(ctx, id)
	if errs.Is(err, errs.NotFound) {
		return nil // deleted with its webhook, or purged
	}
	if err != nil {
		return err
	}
	if ev.Status != "" {
		return nil
	}
	now := s.wall().UTC()
	if ev.FirstAttemptAt.IsZero() {
		ev.FirstAttemptAt = now
	}
	var res Result
	if w.Status != Enabled {
		res = Result{Status: "0", Error: "webhook is disabled"}
	} else {
		secret, err := s.secret(w)
		if err != nil {
			return err
		}
		ev.TimestampSent = now.Unix()
		body, err := Envelope{ID: ev.ID, Kind: ev.Kind, Date: jsTime(ev.Date), Data: ev.Data,
			DeliveryAttempt: ev.DeliveryAttempt, RetryOf: ev.RetryOf, TimestampSent: ev.TimestampSent}.Body()
		if err != nil {
			return fmt.Errorf("webhooks: encode event %s: %w", ev.ID, err)
		}
		res = s.client.Post(ctx, w.URL, secret, body)
	}
	ev.Status, ev.Error, ev.DeliveryFailed, ev.NextAttemptAt = res.Status, res.Error, !res.OK(), time.Time{}
	var retry *Event
	if !res.OK() && w.Status == Enabled && ev.DeliveryAttempt <= len(s.schedule) {
		next := ev.FirstAttemptAt.Add(s.schedule[ev.DeliveryAttempt-1])
		ev.NextAttemptAt = next
		// Never before the failed row: ids sort by time, and the events list newest first.
		created := s.now().UTC().Truncate(time.Millisecond)
		if floor := ev.CreatedAt.Add(time.Millisecond); created.Before(floor) {
			created = floor
		}
		retry = &Event{ID: ids.NewAt("whe", created), OrgID: ev.OrgID, WebhookID: ev.WebhookID, Kind: ev.Kind,
			Data: ev.Data, Date: ev.Date, DeliveryAttempt: ev.DeliveryAttempt + 1, RetryOf: ev.ID,
			FirstAttemptAt: ev.FirstAttemptAt, NextAttemptAt: next, CreatedAt: created}
	}
	_, err = s.store.RecordAttempt(ctx, ev, retry)
	return err
}

// Purge deletes events past the retention period.
func (s *Service) Purge(ctx context.Context) (int64, error) {
	return s.store.PurgeWebhookEvents(ctx, s.now().Add(-RetentionPeriod))
}
