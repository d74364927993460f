package sipcore

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/license"
)

// CheckLicense verifies the license a Z5 device presents in X-Z5-License
// for its number and device ID. It returns the 403 to answer, with a
// Warning saying why (agent: the domain), or the zero Refusal.
func CheckLicense(req *sipmsg.Request, number string, deviceID int64, agent string, now time.Time, keys []ed25519.PublicKey) Refusal {
	reason, detail := "", ""
	h := req.GetHeader("X-Z5-License")
	if h == nil || strings.TrimSpace(h.Value()) == "" {
		reason, detail = "Forbidden (License Required)", "a Z5 device must present its license in X-Z5-License"
	} else if claims, err := license.Verify(strings.TrimSpace(h.Value()), now, keys...); err != nil {
		reason, detail = "Forbidden (License Invalid)", err.Error()
	} else if claims.Number != number || claims.DeviceID != deviceID {
		reason, detail = "Forbidden (License Invalid)", "license is for another number or device"
	}
	if reason == "" {
		return Refusal{}
	}
	return refuse(403, reason, sipmsg.NewHeader("Warning", fmt.Sprintf(`399 %s "%s"`, agent, detail)))
}
