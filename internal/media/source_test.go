package media

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	clipH264 = "testdata/clip.h264"
	clipWAV  = "testdata/clip.wav"
)

func nalTypes(au []byte) []byte {
	var ts []byte
	for _, nal := range splitAnnexB(au) {
		ts = append(ts, nal[0]&nalTypeMask)
	}
	return ts
}

func TestOpenH264FileClip(t *testing.T) {
	s, err := OpenH264File(clipH264)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 90 {
		t.Fatalf("clip has %d frames, want 90", s.Len())
	}
	if s.FrameDuration() != time.Second/30 {
		t.Errorf("frame duration %v, want 1/30 s", s.FrameDuration())
	}
	var keys []int
	for i, k := range s.keys {
		if k {
			keys = append(keys, i)
		}
	}
	if diff := cmp.Diff([]int{0, 30, 60}, keys); diff != "" {
		t.Errorf("keyframes (-want +got):\n%s", diff)
	}
	// x264 with repeat-headers: SPS and PPS ride in band with every IDR;
	// the first one also carries x264's SEI.
	if got := nalTypes(s.frames[30]); !bytes.Equal(got, []byte{nalSPS, nalPPS, nalIDR}) {
		t.Errorf("frame 30 NAL types %v, want [7 8 5]", got)
	}
	if got := nalTypes(s.frames[1]); !bytes.Equal(got, []byte{nalSlice}) {
		t.Errorf("frame 1 NAL types %v, want [1]", got)
	}
	// The frames hold every NAL unit of the file, in order.
	raw, err := os.ReadFile(clipH264)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, f := range s.frames {
		all = append(all, f...)
	}
	if want := splitAnnexB(raw); len(splitAnnexB(all)) != len(want) {
		t.Errorf("frames hold %d NAL units, file %d", len(splitAnnexB(all)), len(want))
	}
}

func TestSplitAccessUnits(t *testing.T) {
	// NAL units as (type, first_mb_in_slice==0) in Annex B.
	sps, pps, sei, aud := []byte{0x67, 0x42}, []byte{0x68, 0xce}, []byte{0x06, 0x05}, []byte{0x09, 0xf0}
	idr0, idr1 := []byte{0x65, 0x88}, []byte{0x65, 0x08} // first_mb 0, then a later slice
	p0, p1 := []byte{0x41, 0x9a}, []byte{0x41, 0x1a}
	tests := []struct {
		name string
		nals [][]byte
		want []int // NAL count per access unit
	}{
		{"one slice per picture", [][]byte{sps, pps, idr0, p0, p0}, []int{3, 1, 1}},
		{"several slices per picture", [][]byte{sps, pps, idr0, idr1, p0, p1, p1}, []int{4, 3}},
		{"SEI attaches to next picture", [][]byte{idr0, sei, p0, sei, sps, pps, idr0}, []int{1, 2, 4}},
		{"AUD starts a unit", [][]byte{aud, sps, pps, idr0, aud, p0, aud, p0}, []int{4, 2, 2}},
		{"leading parameter sets", [][]byte{sps, pps, sps, pps, idr0}, []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			for _, au := range splitAccessUnits(tt.nals) {
				got = append(got, len(au))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitAnnexB(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"\x00\x00\x00\x01\x67a\x00\x00\x01\x68b\x00\x00\x00\x01\x65c", []string{"\x67a", "\x68b", "\x65c"}},
		{"junk\x00\x00\x01\x41x\x00\x00", []string{"\x41x"}}, // trailing_zero_8bits
		{"\x00\x00\x01\x00\x00\x01\x41", []string{"\x41"}},   // empty unit
		{"\x41 no start code", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, n := range splitAnnexB([]byte(tt.in)) {
			got = append(got, string(n))
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("splitAnnexB(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestH264SourceLoopsAndRequestKeyframe(t *testing.T) {
	s, err := OpenH264File(clipH264)
	if err != nil {
		t.Fatal(err)
	}
	next := func() []byte {
		t.Helper()
		f, d, err := s.Next()
		if err != nil || d != time.Second/30 {
			t.Fatalf("Next: %v, duration %v", err, d)
		}
		return f
	}
	for range 5 {
		next()
	}
	s.RequestKeyframe()
	if f := next(); !bytes.Equal(f, s.frames[30]) {
		t.Errorf("after RequestKeyframe at frame 5, got frame %v, want frame 30", nalTypes(f))
	}
	for range 59 - 31 + 1 {
		next()
	}
	// At frame 60, already a keyframe: the request keeps it.
	s.RequestKeyframe()
	if f := next(); !bytes.Equal(f, s.frames[60]) {
		t.Error("RequestKeyframe before a keyframe skipped it")
	}
	s.RequestKeyframe()
	if f := next(); !bytes.Equal(f, s.frames[0]) {
		t.Error("RequestKeyframe at frame 61 did not wrap to frame 0")
	}
	if f := next(); !bytes.Equal(f, s.frames[1]) {
		t.Error("no loop to frame 1")
	}
}

func TestNewH264SourceErrors(t *testing.T) {
	if _, err := NewH264Source([]byte("\x00\x00\x01\x67\x42\x00\x00\x01\x68\xce"), 30); !errors.Is(err, ErrNoFrames) {
		t.Errorf("parameter sets only: %v, want ErrNoFrames", err)
	}
	if _, err := NewH264Source(nil, 0); !errors.Is(err, ErrUnsupportedFormat) {
		t.Errorf("0 fps: %v, want ErrUnsupportedFormat", err)
	}
	if _, err := OpenH264File(filepath.Join(t.TempDir(), "missing.h264")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestOpenPCMU(t *testing.T) {
	s, err := OpenPCMU(clipWAV)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.samples) != 24000 {
		t.Fatalf("clip has %d samples, want 24000 (3 s)", len(s.samples))
	}
	// 150 frames of 160 make the 3 s; the 151st wraps to the start.
	var first []byte
	for i := range 151 {
		f, d, err := s.Next()
		if err != nil || d != 20*time.Millisecond || len(f) != 160 {
			t.Fatalf("frame %d: %d bytes, %v, %v", i, len(f), d, err)
		}
		if i == 0 {
			first = f
		}
		if i == 150 && !bytes.Equal(f, first) {
			t.Error("no loop after 3 s")
		}
	}

	// Raw μ-law and a clip that is not a multiple of 160 samples.
	dir := t.TempDir()
	raw := filepath.Join(dir, "tone.ulaw")
	if err := os.WriteFile(raw, []byte{1, 2, 3}, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := OpenPCMU(raw)
	if err != nil {
		t.Fatal(err)
	}
	f, _, _ := r.Next()
	if f[0] != 1 || f[3] != 1 || f[159] != byte(159%3+1) {
		t.Errorf("short raw clip not wrapped: % x", f[:6])
	}
}

func TestOpenPCMUBadWAV(t *testing.T) {
	dir := t.TempDir()
	pcm := wavHeader(4)
	pcm[20] = 1 // WAVE_FORMAT_PCM
	tests := map[string][]byte{
		"pcm.wav":      append(pcm, 0, 0, 0, 0),
		"nodata.wav":   wavHeader(0)[:wavHeaderSize-8],
		"truncfmt.wav": []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x07\x00"),
		"notriff.wav":  []byte("hello"),
		"empty.ulaw":   nil,
	}
	for name, b := range tests {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenPCMU(p)
		if !errors.Is(err, ErrUnsupportedFormat) && !errors.Is(err, ErrNoFrames) {
			t.Errorf("%s: %v, want a format error", name, err)
		}
	}
}
