package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/wallets"
	"github.com/countersign/countersign/internal/webhooks"
)

// webhookJSON is a Webhook (dfns-api.md §4.6); secret only in the create response.
type webhookJSON struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Status      string   `json:"status"`
	Description string   `json:"description,omitempty"`
	DateCreated string   `json:"dateCreated"`
	DateUpdated string   `json:"dateUpdated"`
	Secret      string   `json:"secret,omitempty"`
}

func toWebhook(w webhooks.Webhook) webhookJSON {
	return webhookJSON{ID: w.ID, URL: w.URL, Events: w.Events, Status: w.Status, Description: w.Description,
		DateCreated: jsTime(w.CreatedAt), DateUpdated: jsTime(w.UpdatedAt), Secret: w.Secret}
}

// webhookEventJSON is a WebhookEvent with its delivery bookkeeping (dfns-api.md §5.2).
type webhookEventJSON struct {
	ID              string          `json:"id"`
	Kind            string          `json:"kind"`
	Date            string          `json:"date"`
	Data            json.RawMessage `json:"data"`
	Status          string          `json:"status"`
	Error           string          `json:"error,omitempty"`
	DeliveryFailed  bool            `json:"deliveryFailed"`
	DeliveryAttempt int             `json:"deliveryAttempt"`
	RetryOf         string          `json:"retryOf,omitempty"`
	TimestampSent   int64           `json:"timestampSent"`
	NextAttemptDate string          `json:"nextAttemptDate,omitempty"`
}

func toWebhookEvent(e webhooks.Event) webhookEventJSON {
	return webhookEventJSON{ID: e.ID, Kind: e.Kind, Date: jsTime(e.Date), Data: e.Data, Status: e.Status, Error: e.Error,
		DeliveryFailed: e.DeliveryFailed, DeliveryAttempt: e.DeliveryAttempt, RetryOf: e.RetryOf,
		TimestampSent: e.TimestampSent, NextAttemptDate: optTime(e.NextAttemptAt)}
}

// EventData turns the value a state change emits into the envelope's data object
// (dfns-api.md §5.2), in the same shapes the API answers with. A map or json.RawMessage
// is taken as already shaped (it must be a JSON object).
func EventData(v any) (json.RawMessage, error) {
	var obj any
	switch x := v.(type) {
	case keys.Key:
		obj = map[string]any{"key": toKey(x)}
	case wallets.Wallet:
		obj = map[string]any{"wallet": toWallet(x)}
	case keys.SignatureRequest:
		obj = map[string]any{"signatureRequest": toSignature(x)}
	case wallets.Transfer:
		obj = map[string]any{"transferRequest": toTransfer(x)}
	case wallets.Transaction:
		obj = map[string]any{"transactionRequest": toTransaction(x)}
	case wallets.HistoryItem:
		obj = map[string]any{"blockchainEvent": x}
	case json.RawMessage:
		if b := bytes.TrimSpace(x); len(b) == 0 || b[0] != '{' {
			return nil, fmt.Errorf("httpapi: webhook event data must be a JSON object")
		}
		return x, nil
	case map[string]any:
		obj = x
	default:
		return nil, fmt.Errorf("httpapi: no webhook event data for %T", v)
	}
	return json.Marshal(obj)
}

func (s *Server) createWebhook(r *http.Request, c *call) (any, error) {
	var req webhooks.CreateRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	w, err := s.Webhooks.Create(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return toWebhook(w), nil
}

func (s *Server) listWebhooks(r *http.Request, c *call) (any, error) {
	pg, err := page(r)
	if err != nil {
		return nil, err
	}
	ws, next, err := s.Webhooks.List(r.Context(), c.p, pg)
	if err != nil {
		return nil, err
	}
	out := itemsJSON[webhookJSON]{Items: make([]webhookJSON, 0, len(ws)), NextPageToken: next}
	for _, w := range ws {
		out.Items = append(out.Items, toWebhook(w))
	}
	return out, nil
}

func (s *Server) getWebhook(r *http.Request, c *call) (any, error) {
	w, err := s.Webhooks.Get(r.Context(), c.p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return toWebhook(w), nil
}

func (s *Server) updateWebhook(r *http.Request, c *call) (any, error) {
	var req webhooks.UpdateRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	w, err := s.Webhooks.Update(r.Context(), c.p, r.PathValue("id"), req)
	if err != nil {
		return nil, err
	}
	return toWebhook(w), nil
}

func (s *Server) deleteWebhook(r *http.Request, c *call) (any, error) {
	if err := s.Webhooks.Delete(r.Context(), c.p, r.PathValue("id")); err != nil {
		return nil, err
	}
	return map[string]bool{"deleted": true}, nil
}

func (s *Server) pingWebhook(r *http.Request, c *call) (any, error) {
	res, err := s.Webhooks.Ping(r.Context(), c.p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	out := struct {
		Status string `json:"status"`
		Error  string `json:"error,omitempty"`
	}{res.Status, res.Error}
	return out, nil
}

func (s *Server) listWebhookEvents(r *http.Request, c *call) (any, error) {
	pg, err := page(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	f := webhooks.EventFilter{Kind: q.Get("kind"), Limit: pg.Limit, After: pg.After}
	switch q.Get("deliveryFailed") {
	case "":
	case "true":
		f.DeliveryFailed = new(bool)
		*f.DeliveryFailed = true
	case "false":
		f.DeliveryFailed = new(bool)
	default:
		return nil, errs.E(errs.Invalid, "deliveryFailed must be true or false", nil)
	}
	evs, next, err := s.Webhooks.ListEvents(r.Context(), c.p, r.PathValue("id"), f)
	if err != nil {
		return nil, err
	}
	out := itemsJSON[webhookEventJSON]{Items: make([]webhookEventJSON, 0, len(evs)), NextPageToken: next}
	for _, e := range evs {
		out.Items = append(out.Items, toWebhookEvent(e))
	}
	return out, nil
}

func (s *Server) getWebhookEvent(r *http.Request, c *call) (any, error) {
	e, err := s.Webhooks.GetEvent(r.Context(), c.p, r.PathValue("id"), r.PathValue("eventId"))
	if err != nil {
		return nil, err
	}
	return toWebhookEvent(e), nil
}
