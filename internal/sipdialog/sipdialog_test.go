package sipdialog

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// TestWaitAnswerAfterManyProvisionals: 25 provisional responses (a caller
// long in the interpreter queue) and then 200: the answer is seen, and
// every 182 reaches OnResponse. sipgo hands each response to the
// transaction on its own goroutine, so a 200 sent right behind a 182 may
// overtake it (and the transaction then drops the late 182); the server
// here sends the 200 only once the client has seen every 182, as a real
// queue does when it answers seconds later.
func TestWaitAnswerAfterManyProvisionals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	const provisionals = 25
	allSeen := make(chan struct{})
	srv.OnInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		for i := range provisionals {
			res := sipmsg.NewResponseFromRequest(req, 182, fmt.Sprintf("Queued (position %d)", provisionals-i), nil)
			if err := tx.Respond(res); err != nil {
				return
			}
		}
		select {
		case <-allSeen:
		case <-ctx.Done():
			return
		}
		res := sipmsg.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(&sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1"}})
		tx.Respond(res)
	})
	srv.OnAck(func(*sipmsg.Request, sipmsg.ServerTransaction) {})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTCP(l)
	defer l.Close()

	cua, err := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cua.Close()
	cli, err := sipgo.NewClient(cua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	dc := sipgo.NewDialogClientCache(cli, sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "caller", Host: "127.0.0.1"}})
	addr := l.Addr().(*net.TCPAddr)
	ruri := sipmsg.Uri{Scheme: "sip", User: "2125550100", Host: "127.0.0.1", Port: addr.Port, UriParams: sipmsg.NewParams()}
	ruri.UriParams.Add("transport", "tcp")
	req := sipmsg.NewRequest(sipmsg.INVITE, ruri)
	sess, err := dc.WriteInvite(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	seen := 0
	err = WaitAnswer(ctx, sess, sipgo.AnswerOptions{OnResponse: func(res *sipmsg.Response) error {
		if res.StatusCode == 182 {
			seen++
			if seen == provisionals {
				close(allSeen)
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatalf("after %d provisional responses: %v, want the 200", seen, err)
	}
	if seen != provisionals || sess.InviteResponse.StatusCode != 200 {
		t.Fatalf("saw %d of %d 182s, final %d", seen, provisionals, sess.InviteResponse.StatusCode)
	}
}
