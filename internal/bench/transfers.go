package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/countersign/countersign/client"
)

// transferWallets creates o.Wallets fresh wallets on o's network and funds each from the dev
// faucet; fresh, so that every transfer they list was created by this run.
func transferWallets(ctx context.Context, c *client.Client, o Options) ([]string, error) {
	n := max(o.Wallets, 1)
	ids := make([]string, 0, n)
	for i := range n {
		var w struct {
			ID      string `json:"id"`
			Address string `json:"address"`
		}
		if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]string{"network": o.network(), "name": "bench-" + strconv.Itoa(i)}, &w); err != nil {
			return nil, fmt.Errorf("bench: create wallet: %w", err)
		}
		if err := c.Do(ctx, http.MethodPost, "/dev/faucet", map[string]string{"network": o.network(), "address": w.Address,
			"amount": "1000000000000000000000"}, nil); err != nil {
			return nil, fmt.Errorf("bench: fund wallet (needs a dev chain): %w", err)
		}
		ids = append(ids, w.ID)
	}
	return ids, nil
}

// EndToEnd is what the background pipeline did with a run's transfers: the API's own
// timestamps, dateRequested (the server received the request) to dateBroadcasted and
// dateConfirmed.
type EndToEnd struct {
	Transfers  int // created by the run, warm-up included
	Confirmed  int
	Failed     int    // final but not Confirmed: errors
	Unfinished int    // still not final when the wait ended
	FirstFail  string // the reason of one Failed transfer
	// Span is from the first request to the last confirmation (or failure).
	Span time.Duration
	// Request to confirmation, Confirmed transfers only.
	P50, P95, P99, Max time.Duration
	// Request to broadcast, transfers that have been broadcast.
	BroadcastP50, BroadcastP99 time.Duration
}

// PerSecond is confirmations per second end to end (over Span).
func (e EndToEnd) PerSecond() float64 {
	if e.Span <= 0 {
		return 0
	}
	return float64(e.Confirmed) / e.Span.Seconds()
}

func (e EndToEnd) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	s := fmt.Sprintf("end-to-end transfers=%d confirmed=%d failed=%d unfinished=%d span=%s confirmed-rate=%.1f/s "+
		"request→confirmed p50=%s p95=%s p99=%s max=%s request→broadcast p50=%s p99=%s",
		e.Transfers, e.Confirmed, e.Failed, e.Unfinished, r(e.Span), e.PerSecond(),
		r(e.P50), r(e.P95), r(e.P99), r(e.Max), r(e.BroadcastP50), r(e.BroadcastP99))
	if e.FirstFail != "" {
		s += "\nfirst failure: " + e.FirstFail
	}
	return s
}

// transferRow is what the bench reads of a TransferRequest.
type transferRow struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	Reason          string `json:"reason"`
	DateRequested   string `json:"dateRequested"`
	DateBroadcasted string `json:"dateBroadcasted"`
	DateConfirmed   string `json:"dateConfirmed"`
}

func (t transferRow) final() bool { return t.Status == "Confirmed" || t.Status == "Failed" }

type transferPage struct {
	Items         []transferRow `json:"items"`
	NextPageToken string        `json:"nextPageToken"`
}

// listTransfers pages through GET /wallets/{id}/transfers; limit 0 reads every page,
// otherwise only the first page of that size (the newest).
func listTransfers(ctx context.Context, c *client.Client, walletID string, limit int) ([]transferRow, error) {
	var out []transferRow
	tok := ""
	for {
		size := 500 // the API's largest page
		if limit > 0 {
			size = limit
		}
		q := url.Values{"limit": {strconv.Itoa(size)}}
		if tok != "" {
			q.Set("paginationToken", tok)
		}
		var p transferPage
		if err := c.Do(ctx, http.MethodGet, "/wallets/"+walletID+"/transfers?"+q.Encode(), nil, &p); err != nil {
			return nil, fmt.Errorf("bench: list transfers: %w", err)
		}
		out = append(out, p.Items...)
		if limit > 0 || p.NextPageToken == "" {
			return out, nil
		}
		tok = p.NextPageToken
	}
}

// waitFinal waits until every transfer of wallets is final, or until wait has passed, and
// measures them. It reads little while the pipeline works: a sender's nonces are mined in
// order, so until the newest transfer of each wallet is final it reads only that one; then
// it reads every page until all are final.
func waitFinal(ctx context.Context, c *client.Client, wallets []string, wait time.Duration) (EndToEnd, error) {
	deadline := time.Now().Add(wait)
	const poll = 500 * time.Millisecond
	for newest := 0; newest < len(wallets) && time.Now().Before(deadline); {
		ts, err := listTransfers(ctx, c, wallets[newest], 1)
		if err != nil {
			return EndToEnd{}, err
		}
		if len(ts) == 0 || ts[0].final() {
			newest++
			continue
		}
		time.Sleep(poll)
	}
	for {
		var all []transferRow
		for _, w := range wallets {
			ts, err := listTransfers(ctx, c, w, 0)
			if err != nil {
				return EndToEnd{}, err
			}
			all = append(all, ts...)
		}
		done := !slices.ContainsFunc(all, func(t transferRow) bool { return !t.final() })
		if done || !time.Now().Before(deadline) {
			return measure(all)
		}
		time.Sleep(poll)
	}
}

// measure computes EndToEnd from the API's timestamps.
func measure(all []transferRow) (EndToEnd, error) {
	e := EndToEnd{Transfers: len(all)}
	parse := func(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }
	var first, last time.Time
	var confirm, broadcast []time.Duration
	for _, t := range all {
		req, err := parse(t.DateRequested)
		if err != nil {
			return e, fmt.Errorf("bench: transfer %s: dateRequested %q: %w", t.ID, t.DateRequested, err)
		}
		if first.IsZero() || req.Before(first) {
			first = req
		}
		if t.DateBroadcasted != "" {
			if b, err := parse(t.DateBroadcasted); err == nil {
				broadcast = append(broadcast, b.Sub(req))
			}
		}
		if !t.final() {
			e.Unfinished++
			continue
		}
		if t.Status == "Failed" {
			e.Failed++
			if e.FirstFail == "" {
				e.FirstFail = t.ID + ": " + t.Reason
			}
		} else {
			e.Confirmed++
		}
		if t.DateConfirmed == "" {
			continue // refused before any broadcast: final without a date
		}
		done, err := parse(t.DateConfirmed)
		if err != nil {
			return e, fmt.Errorf("bench: transfer %s: dateConfirmed %q: %w", t.ID, t.DateConfirmed, err)
		}
		if done.After(last) {
			last = done
		}
		if t.Status == "Confirmed" {
			confirm = append(confirm, done.Sub(req))
		}
	}
	if !last.IsZero() {
		e.Span = last.Sub(first)
	}
	q := func(l []time.Duration, p float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[min(len(l)-1, int(p*float64(len(l))))]
	}
	slices.Sort(confirm)
	slices.Sort(broadcast)
	e.P50, e.P95, e.P99, e.Max = q(confirm, 0.50), q(confirm, 0.95), q(confirm, 0.99), q(confirm, 1)
	e.BroadcastP50, e.BroadcastP99 = q(broadcast, 0.50), q(broadcast, 0.99)
	return e, nil
}
