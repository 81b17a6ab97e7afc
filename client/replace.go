package client

import (
	"context"
	"net/http"
	"net/url"
)

// Speed-up and cancel of a broadcast EVM transfer or transaction (Dfns: POST
// /wallets/{walletId}/transfers/{transferId}/speed-up and …/cancel, the same under
// /transactions/{transactionId}/). Each signs a user action; out (may be nil) receives the
// replacement, a TransactionRequest whose requestBody.kind is SpeedUpTransaction or
// CancelTransaction. The replaced request reports it as replacementId.

// SpeedUpTransfer replaces a transfer's pending transaction by the same one with higher fees.
func (c *Client) SpeedUpTransfer(ctx context.Context, walletID, transferID string, out any) error {
	return c.replace(ctx, walletID, "transfers", transferID, "speed-up", out)
}

// CancelTransfer replaces a transfer's pending transaction by a 0-value self-transfer.
func (c *Client) CancelTransfer(ctx context.Context, walletID, transferID string, out any) error {
	return c.replace(ctx, walletID, "transfers", transferID, "cancel", out)
}

// SpeedUpTransaction replaces a broadcast request's pending transaction by the same one
// with higher fees.
func (c *Client) SpeedUpTransaction(ctx context.Context, walletID, transactionID string, out any) error {
	return c.replace(ctx, walletID, "transactions", transactionID, "speed-up", out)
}

// CancelTransaction replaces a broadcast request's pending transaction by a 0-value
// self-transfer.
func (c *Client) CancelTransaction(ctx context.Context, walletID, transactionID string, out any) error {
	return c.replace(ctx, walletID, "transactions", transactionID, "cancel", out)
}

func (c *Client) replace(ctx context.Context, walletID, coll, id, op string, out any) error {
	return c.Do(ctx, http.MethodPost, "/wallets/"+url.PathEscape(walletID)+"/"+coll+"/"+url.PathEscape(id)+"/"+op, nil, out)
}
