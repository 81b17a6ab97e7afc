package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/countersign/countersign/internal/webhooks"
)

type webhooksCmd struct {
	Listen webhooksListenCmd `cmd:"" help:"Receive webhook deliveries and print each verified event as one JSON line."`
}

type webhooksListenCmd struct {
	Secret string `required:"" help:"The webhook's secret (whs-…), as POST /webhooks returned it." env:"COUNTERSIGN_WEBHOOK_SECRET"`
	Port   int    `default:"8090" help:"Port to listen on."`
	Host   string `default:"127.0.0.1" help:"Address to listen on."`
	Answer int    `default:"200" help:"HTTP status to answer verified deliveries with (anything but 200 makes the server retry)."`
}

// maxSkew is how far timestampSent may be from now (the documented receiver check, dfns-api.md §5.3).
const maxSkew = 5 * time.Minute

func (l *webhooksListenCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", net.JoinHostPort(l.Host, strconv.Itoa(l.Port)))
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "listening for webhook deliveries on http://%s/\n", ln.Addr())
	srv := &http.Server{Handler: listenHandler(l.Secret, l.Answer, os.Stdout, os.Stderr), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// listenHandler verifies each delivery's signature over the exact body and its
// timestampSent, prints verified bodies to out and complaints to log.
func listenHandler(secret string, answer int, out, log io.Writer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if !webhooks.Verify(secret, body, r.Header.Get(webhooks.SignatureHeader)) {
			fmt.Fprintf(log, "refused a delivery with a bad or missing %s header\n", webhooks.SignatureHeader)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var env struct {
			TimestampSent int64 `json:"timestampSent"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			http.Error(w, "body is not JSON", http.StatusBadRequest)
			return
		}
		if skew := time.Since(time.Unix(env.TimestampSent, 0)); skew > maxSkew || skew < -maxSkew {
			fmt.Fprintf(log, "refused a delivery sent %v ago (replayed?)\n", skew.Round(time.Second))
			http.Error(w, "stale timestampSent", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(out, "%s\n", body)
		w.WriteHeader(answer)
	})
}
