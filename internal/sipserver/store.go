package sipserver

import (
	"context"
	"time"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/store"
)

// Store is the part of the deployment's store the server uses: devices
// and numbers to authenticate and route, the shared location table, and
// call records.
type Store interface {
	DeviceBySIPUser(ctx context.Context, sipUser string) (store.Device, error)
	// DeviceChanges is the log the device cache follows (devcache.go).
	DeviceChanges(ctx context.Context, after int64) ([]string, int64, bool, error)
	DevicesOf(ctx context.Context, number string) ([]store.Device, error)
	Number(ctx context.Context, number string) (store.Number, error)

	locationStore
	DeleteRegistration(ctx context.Context, number string, deviceID int64, node, flowID string) error
	Registrations(ctx context.Context, number string, now time.Time) ([]store.Registration, error)

	CreateCall(ctx context.Context, c store.Call) error
	UpdateCall(ctx context.Context, c store.Call) error
	Call(ctx context.Context, callID string) (store.Call, error)
	ChangeCall(ctx context.Context, callID string, change func(*store.Call)) error
	// The call record writer and the node-lost sweep (records.go).
	WriteCalls(ctx context.Context, ws []store.CallWrite) ([]int, error)
	CloseLostCalls(ctx context.Context, node string, startedBefore, lastKnown time.Time) ([]string, error)
	Nodes(ctx context.Context) ([]store.NodeStatus, error)

	// Relay calls: the registered location sent with 911, and the
	// interpreter queue shared by every node.
	Location(ctx context.Context, customerID int64) (store.Location, error)
	acd.Store
}
