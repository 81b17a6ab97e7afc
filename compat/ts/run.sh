#!/usr/bin/env bash
# Official Dfns TypeScript SDK compatibility test (CI entry point).
# Set COUNTERSIGN_BIN to test a prebuilt binary; otherwise the test builds ./cmd/countersign itself.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
node --test --test-reporter=spec *.test.mjs
