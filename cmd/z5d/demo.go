package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/demo"
)

func demoCmd() *cobra.Command {
	cmd := command("demo [--data DIR] [--duration D]", "the dev stack, two clients and a video call, step by step", 0, 0)
	f := cmd.Flags()
	data := f.String("data", "", "keep the demo's state and recordings in DIR (default: a temp dir, removed)")
	duration := f.Duration("duration", 0, "length of the video call (default 5s)")
	verbose := f.BoolP("verbose", "v", false, "show the provider's info logs")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		lvl := slog.LevelWarn
		if *verbose {
			lvl = slog.LevelInfo
		}
		return demo.Run(cmd.Context(), cmd.OutOrStdout(), demo.Options{DataDir: *data, Duration: *duration,
			Log: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: lvl}))})
	}
	return cmd
}
