package store

import (
	"context"
	"crypto/ed25519"
	"errors"

	"github.com/countersign/countersign/internal/auth"
)

// SigningKeys returns the unretired server keys of a purpose, private parts unsealed.
func (db *DB) SigningKeys(ctx context.Context, purpose string) ([]auth.SigningKey, error) {
	rows, err := db.query(ctx, `SELECT id, public_key, sealed_private, created_at FROM server_keys
		WHERE purpose = $1 AND retired_at IS NULL ORDER BY created_at`, purpose)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []auth.SigningKey
	for rows.Next() {
		var k auth.SigningKey
		var pub, sealed []byte
		var created int64
		if err := rows.Scan(&k.ID, &pub, &sealed, &created); err != nil {
			return nil, mapErr(err)
		}
		seed, err := db.ring.Open(sealed, []byte("server_keys/"+k.ID))
		if err != nil {
			return nil, err
		}
		if len(seed) != ed25519.SeedSize || len(pub) != ed25519.PublicKeySize {
			return nil, errors.New("store: malformed server key " + k.ID)
		}
		k.PublicKey, k.PrivateKey, k.CreatedAt = pub, ed25519.NewKeyFromSeed(seed), fromMS(created)
		clear(seed)
		out = append(out, k)
	}
	return out, mapErr(rows.Err())
}

// CreateSigningKey stores k sealed under the newest KEK; an existing id wins.
func (db *DB) CreateSigningKey(ctx context.Context, purpose string, k auth.SigningKey) error {
	sealed := db.ring.Seal(k.PrivateKey.Seed(), []byte("server_keys/"+k.ID))
	_, err := db.exec(ctx, `INSERT INTO server_keys (id, purpose, algorithm, public_key, sealed_private, created_at)
		VALUES ($1, $2, 'Ed25519', $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		k.ID, purpose, []byte(k.PublicKey), sealed, ms(k.CreatedAt))
	return err
}
