package siptest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBaresipWrite checks the files carry each setting where baresip reads
// it: the listen address, the RTP range, the aubridge names and the
// account registering over TCP through the outbound proxy.
func TestBaresipWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bob")
	b := Baresip{Name: "bob", Listen: "127.0.0.7:5070", RTPPorts: 41000,
		AOR: "sip:2025550102@mcs.z5.test", User: "bob", Pass: "secret-b", Outbound: "127.0.0.1:5060"}
	if err := b.Write(dir); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string][]string{
		"config": {"sip_listen\t\t127.0.0.7:5070\n", "rtp_ports\t\t41000-41009\n", "audio_player\t\taubridge,bob\n", "audio_alert\t\taubridge,bob-alert\n"},
		"accounts": {`<sip:2025550102@mcs.z5.test;transport=tcp>;auth_user=bob;auth_pass=secret-b;outbound="sip:127.0.0.1:5060;transport=tcp";`,
			"answermode=auto;audio_codecs=PCMU\n"},
	} {
		got, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(got), w) {
				t.Errorf("%s lacks %q:\n%s", file, w, got)
			}
		}
	}
}
