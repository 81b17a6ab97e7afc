//go:build !race

package e2e

// whRace: the race detector is on (the webhook throughput test then sends fewer events).
const whRace = false
