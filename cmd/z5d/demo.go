package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/z5vrs/z5/internal/demo"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "z5d demo [--data DIR] [--duration D]", stderr)
	data := fs.String("data", "", "keep the demo's state and recordings in DIR (default: a temp dir, removed)")
	duration := fs.Duration("duration", 0, "length of the video call (default 5s)")
	verbose := fs.Bool("v", false, "show the provider's info logs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	lvl := slog.LevelWarn
	if *verbose {
		lvl = slog.LevelInfo
	}
	return demo.Run(ctx, stdout, demo.Options{DataDir: *data, Duration: *duration,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))})
}
