package siptest

import (
	"fmt"
	"os"
	"path/filepath"
)

// Baresip is a headless baresip user agent: it sends a 440 Hz sine from
// ausine (which works at 48 kHz only; baresip resamples it to PCMU), plays
// what arrives into aubridge, and answers calls itself.
type Baresip struct {
	Name     string // names its aubridge devices
	Listen   string // SIP ip:port
	RTPPorts int    // the first of its ten RTP ports
	// Its one account: AOR (a sip: URI) registers with User and Pass
	// through the proxy at Outbound (ip:port), over TCP.
	AOR, User, Pass, Outbound string
}

// Write writes the config and account files into dir, creating it.
func (b Baresip) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	config := fmt.Sprintf(`poll_method		epoll
sip_listen		%s
audio_source		ausine,440
ausrc_srate		48000
ausrc_channels		2
auplay_srate		48000
audio_player		aubridge,%s
audio_alert		aubridge,%s-alert
rtp_ports		%d-%d
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aubridge.so
module_tmp		account.so
module_app		menu.so
`, b.Listen, b.Name, b.Name, b.RTPPorts, b.RTPPorts+9)
	account := fmt.Sprintf("<%s;transport=tcp>;auth_user=%s;auth_pass=%s;outbound=\"sip:%s;transport=tcp\";regint=600;answermode=auto;audio_codecs=PCMU\n",
		b.AOR, b.User, b.Pass, b.Outbound)
	for file, text := range map[string]string{"config": config, "accounts": account} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			return fmt.Errorf("baresip %s: %w", file, err)
		}
	}
	return nil
}
