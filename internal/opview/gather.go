package opview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/z5vrs/z5/internal/config"
)

// AnswerWithin is how long a node has to answer before the view goes on
// without it: an operator wants the nodes that work now, not to wait on
// one that is down.
const AnswerWithin = 2 * time.Second

// maxBody bounds a node's answer (about 30,000 registrations).
const maxBody = 16 << 20

// Target is one node's operations listener.
type Target struct {
	Node string
	Addr string // host:port
}

// Targets are the operations listeners of cfg's MCS nodes, in file order:
// each node's bind address (its address when it binds every interface)
// at ports.metrics.
func Targets(cfg *config.Config) []Target {
	var out []Target
	for _, n := range cfg.NodesWithRole(config.RoleMCS) {
		ip := n.BindAddr()
		if !ip.IsValid() || ip.IsUnspecified() {
			ip = n.Addr()
		}
		out = append(out, Target{Node: n.Name, Addr: netip.AddrPortFrom(ip, uint16(cfg.Ports.Metrics)).String()})
	}
	return out
}

// Unanswered is a node the view had to go without.
type Unanswered struct {
	Node   string `json:"node"`
	Addr   string `json:"address"`
	Reason string `json:"reason"`
}

// Gather asks every target for path and returns the rows of those that
// answered, in target order, and the targets that did not within
// AnswerWithin.
func Gather[T any](ctx context.Context, hc *http.Client, targets []Target, path string) ([]T, []Unanswered) {
	type answer struct {
		rows []T
		err  error
	}
	answers := make([]answer, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			answers[i].rows, answers[i].err = fetch[T](ctx, hc, t.Addr, path)
		})
	}
	wg.Wait()
	var rows []T
	var silent []Unanswered
	for i, a := range answers {
		if a.err != nil {
			silent = append(silent, Unanswered{Node: targets[i].Node, Addr: targets[i].Addr, Reason: reason(a.err)})
			continue
		}
		rows = append(rows, a.rows...)
	}
	return rows, silent
}

func fetch[T any](ctx context.Context, hc *http.Client, addr, path string) ([]T, error) {
	ctx, cancel := context.WithTimeout(ctx, AnswerWithin)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s (not an MCS node, or an older z5d)", res.Status)
	}
	var rows []T
	if err := json.NewDecoder(io.LimitReader(res.Body, maxBody)).Decode(&rows); err != nil {
		return nil, fmt.Errorf("unreadable answer: %w", err)
	}
	return rows, nil
}

// reason says in a few words why a node did not answer.
func reason(err error) string {
	var op *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within " + AnswerWithin.String()
	case errors.As(err, &op) && op.Op == "dial":
		if errors.Is(err, syscall.ECONNREFUSED) {
			return "connection refused (z5d not running there?)"
		}
		return "cannot connect: " + op.Err.Error()
	}
	return err.Error()
}
