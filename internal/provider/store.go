package provider

import (
	"context"

	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/postgres"
	"github.com/z5vrs/z5/internal/store/sqlite"
)

func openSQLite(ctx context.Context, path string) (store.Store, error) {
	return sqlite.Open(ctx, path)
}

func openPostgres(ctx context.Context, dsn string) (store.Store, error) {
	return postgres.Open(ctx, dsn)
}
