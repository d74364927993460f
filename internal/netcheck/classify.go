package netcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// why explains a failed connection or exchange in a network admin's terms:
// silence means a firewall drops the packets, a refusal that one rejects
// them (or nothing listens), an ICMP unreachable that there is no route.
func why(err error, timeout time.Duration) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "check cancelled"
	case isTimeout(err):
		return fmt.Sprintf("no answer within %s: a firewall drops these packets (or the path is down)", Millis(timeout))
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused: a firewall rejects these packets, or nothing listens there"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset: a firewall or proxy cut it"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable: no route to the destination (ICMP unreachable)"
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return "not permitted: this host's own firewall blocks the packets"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tlsWhy explains a failed handshake; intercepted says it looks like a
// TLS-inspecting middlebox rather than a plain block.
func tlsWhy(err error, timeout time.Duration) (detail string, intercepted bool) {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		alert    tls.AlertError
		recErr   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown):
		return "TLS: the certificate is not signed by the provider's CA (a TLS-inspecting proxy or firewall answered instead)", true
	case errors.As(err, &hostname):
		return "TLS: the certificate does not name this server (" + hostname.Error() + ")", true
	case errors.As(err, &invalid):
		return "TLS: invalid certificate (" + invalid.Error() + ")", true
	case errors.As(err, &verify):
		return "TLS: certificate rejected (" + verify.Error() + ")", true
	case errors.As(err, &recErr):
		return "TLS: the server did not speak TLS (a proxy or captive portal answered)", true
	case errors.As(err, &alert):
		return "TLS: handshake refused by the other end (" + alert.Error() + ")", true
	case isTimeout(err):
		return fmt.Sprintf("TCP connected but the TLS handshake got no answer within %s: a firewall inspecting TLS holds it", Millis(timeout)), false
	}
	return "TLS: " + why(err, timeout), false
}
