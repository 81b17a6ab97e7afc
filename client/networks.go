package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// FeeOffer is one priority's EIP-1559 offer per gas, in wei (decimal strings).
type FeeOffer struct {
	MaxPriorityFeePerGas string `json:"maxPriorityFeePerGas"`
	MaxFeePerGas         string `json:"maxFeePerGas"`
}

// NetworkFees is the answer of GET /networks/fees for an EVM network (kind Eip1559).
type NetworkFees struct {
	Kind             string      `json:"kind"`
	Network          string      `json:"network"`
	BlockNumber      uint64      `json:"blockNumber"`
	Slow             FeeOffer    `json:"slow"`
	Standard         FeeOffer    `json:"standard"`
	Fast             FeeOffer    `json:"fast"`
	EstimatedBaseFee json.Number `json:"estimatedBaseFee"` // wei, a JSON number
	BaseFeePerGas    string      `json:"baseFeePerGas"`    // the same, as a string
}

// GetNetworkFees returns the current fee offers of a network (no user action).
func (c *Client) GetNetworkFees(ctx context.Context, network string) (*NetworkFees, error) {
	var out NetworkFees
	return &out, c.Do(ctx, http.MethodGet, "/networks/fees?network="+url.QueryEscape(network), nil, &out)
}

// ReadContractRequest is the body of POST /networks/read-contract.
type ReadContractRequest struct {
	Kind     string `json:"kind"` // "Evm"
	Network  string `json:"network"`
	Contract string `json:"contract"`
	Data     string `json:"data"` // 0x-hex call data
}

// ReadContract runs a read-only contract call at the latest block and returns its 0x-hex
// result. It takes no user action.
func (c *Client) ReadContract(ctx context.Context, r ReadContractRequest) (string, error) {
	var out struct {
		Kind string `json:"kind"`
		Data string `json:"data"`
	}
	err := c.Do(ctx, http.MethodPost, "/networks/read-contract", r, &out)
	return out.Data, err
}
