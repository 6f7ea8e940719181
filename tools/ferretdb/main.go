// Command ferretdb serves the MongoDB wire protocol over SQLite for sofeed's
// local database and test suite, using FerretDB v1's embeddable package.
//
// It wraps the package instead of building FerretDB's own cmd/ferretdb: that
// command panics at start when built as a module dependency, because its
// version check needs a build/version/version.txt that module builds lack.
// The check is skipped when the main module is not FerretDB itself, as here.
//
// Once the listener is bound, the server's MongoDB URI is printed as the first
// line of standard output, so a caller that asked for port 0 learns the port.
// With -stop-on-stdin-eof it also stops when its standard input closes, which
// happens when the process that started it dies, even by SIGKILL: a test run
// never leaves a server behind.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on; port 0 picks a free one")
	dataDir := flag.String("data", "", "directory for the SQLite database files (required)")
	logLevel := flag.String("log-level", "warn", "one of debug, info, warn, error")
	stopOnEOF := flag.Bool("stop-on-stdin-eof", false, "stop when standard input is closed")
	flag.Parse()

	if err := run(*listen, *dataDir, *logLevel, *stopOnEOF); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, dataDir, logLevel string, stopOnEOF bool) error {
	if dataDir == "" {
		return fmt.Errorf("-data is required: give the directory for the SQLite files")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	absDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if err = os.MkdirAll(absDir, 0o755); err != nil {
		return err
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	server, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + absDir + "/",
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if stopOnEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}

	fmt.Println(server.MongoDBURI())
	return server.Run(ctx)
}
