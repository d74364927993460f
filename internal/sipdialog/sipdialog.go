// Package sipdialog holds what every Z5 user agent needs from a sipgo
// dialog beyond sipgo itself. A leaf on sipgo alone, so the client links
// no server code.
package sipdialog

import (
	"context"
	"strings"

	"github.com/emiago/sipgo"
)

// tooManyResponses is the text of the error sipgo's WaitAnswer (v1.7.3)
// gives up with after ten responses, provisional ones included; it has no
// sentinel to match.
const tooManyResponses = "more than 10 responses received"

// WaitAnswer waits for the final answer to an INVITE as sipgo's
// DialogClientSession.WaitAnswer does, without its limit of ten
// responses: a relay call waiting for an interpreter hears a 182 Queued
// at every change of its place and every 30 s, for up to acd.max_wait,
// and must not give up on the tenth. Canceling ctx still sends CANCEL.
func WaitAnswer(ctx context.Context, sess *sipgo.DialogClientSession, opts sipgo.AnswerOptions) error {
	for {
		err := sess.WaitAnswer(ctx, opts)
		if err == nil || !strings.Contains(err.Error(), tooManyResponses) || ctx.Err() != nil {
			return err
		}
		// The transaction goes on: wait for its next responses.
	}
}
