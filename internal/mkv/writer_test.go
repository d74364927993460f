package mkv

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// elem is one parsed EBML element; masters hold children.
type elem struct {
	id   uint32
	off  int64 // of the element's header in the file
	data []byte
	kids []elem
}

var masters = map[uint32]bool{idEBML: true, idSegment: true, idSeekHead: true, idSeek: true, idInfo: true,
	idTracks: true, idTrackEntry: true, idVideo: true, idAudio: true, idCluster: true, idBlockGroup: true,
	idCues: true, idCuePoint: true, idCueTrackPositions: true}

func readVint(b []byte, keepMarker bool) (uint64, int, error) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0, errors.New("bad vint")
	}
	n := 1
	for b[0]&(0x80>>(n-1)) == 0 {
		n++
	}
	if len(b) < n {
		return 0, 0, errors.New("short vint")
	}
	v := uint64(b[0])
	if !keepMarker {
		v &= 0xff >> n
	}
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, nil
}

func parse(t *testing.T, b []byte, base int64) []elem {
	t.Helper()
	var out []elem
	for len(b) > 0 {
		id, n, err := readVint(b, true)
		if err != nil {
			t.Fatalf("id at %d: %v", base, err)
		}
		size, m, err := readVint(b[n:], false)
		if err != nil || uint64(len(b)-n-m) < size {
			t.Fatalf("element %#x at %d: size %d of %d left: %v", id, base, size, len(b)-n-m, err)
		}
		e := elem{id: uint32(id), off: base, data: b[n+m : n+m+int(size)]}
		if masters[e.id] {
			e.kids = parse(t, e.data, base+int64(n+m))
		}
		out = append(out, e)
		b = b[n+m+int(size):]
		base += int64(n + m + int(size))
	}
	return out
}

func ids(es []elem) []uint32 {
	var out []uint32
	for _, e := range es {
		out = append(out, e.id)
	}
	return out
}

func find(es []elem, id uint32) []elem {
	var out []elem
	for _, e := range es {
		if e.id == id {
			out = append(out, e)
		}
	}
	return out
}

func uintOf(e elem) uint64 {
	var v uint64
	for _, c := range e.data {
		v = v<<8 | uint64(c)
	}
	return v
}

// TestWriterLayout writes two tracks, one learning its codec setup late,
// and reads the file back element by element: the head region keeps its
// size, the Segment's size is the file's, Info has the duration, the
// SeekHead points at Info, Tracks and Cues, a keyframe opens a cluster and
// the Cues point at it.
func TestWriterLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mkv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := NewWriter(f,
		TrackConfig{CodecID: CodecH264, NeedsPrivate: true},
		TrackConfig{CodecID: CodecPCM, SampleRate: 8000, Channels: 1, BitDepth: 16},
		TrackConfig{CodecID: CodecText})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBlock(1, 0, true, []byte{1}); err == nil {
		t.Error("a block on a track without its codec setup was accepted")
	}
	if err := w.SetCodecPrivate(1, []byte{1, 2, 3}, 320, 240); err != nil {
		t.Fatal(err)
	}
	writes := []struct {
		track int
		ts    int64
		key   bool
	}{
		{2, 0, true}, {1, 5, true}, {2, 20, true}, {1, 38, false}, {2, 40, true},
		{1, 71, true}, // a new cluster
		{2, 60, true}, // arrives after the keyframe, sorts before it
		{1, 104, false},
	}
	for _, wr := range writes {
		if err := w.WriteBlock(wr.track, wr.ts, wr.key, []byte{byte(wr.ts)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteText(3, 50, 1000, "hi"); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBlock(9, 0, true, nil); !errors.Is(err, ErrUnknownTrack) {
		t.Errorf("unknown track: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.WriteBlock(2, 200, true, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	top := parse(t, b, 0)
	if diff := cmp.Diff([]uint32{idEBML, idSegment}, ids(top)); diff != "" {
		t.Fatalf("top level (-want +got):\n%s", diff)
	}
	seg := top[1]
	segData := seg.off + 12
	if got := string(find(top[0].kids, idDocType)[0].data); got != "matroska" {
		t.Errorf("DocType %q", got)
	}
	if diff := cmp.Diff([]uint32{idSeekHead, idInfo, idTracks, idVoid, idCluster, idCluster, idCluster, idCues}, ids(seg.kids)); diff != "" {
		t.Fatalf("segment (-want +got):\n%s", diff)
	}
	if got := seg.kids[4].off - segData; got != HeadSize {
		t.Errorf("first cluster at %d in the segment, want %d", got, HeadSize)
	}
	info := seg.kids[1]
	dur := math.Float64frombits(binary.BigEndian.Uint64(find(info.kids, idDuration)[0].data))
	if dur != 1050 || uintOf(find(info.kids, idTimestampScale)[0]) != 1_000_000 {
		t.Errorf("duration %v ms (want 1050: the subtitle ends last)", dur)
	}
	var seeks []int64
	for _, s := range find(seg.kids[0].kids, idSeek) {
		seeks = append(seeks, int64(uintOf(find(s.kids, idSeekPosition)[0])))
	}
	if diff := cmp.Diff([]int64{seg.kids[1].off - segData, seg.kids[2].off - segData, seg.kids[7].off - segData}, seeks); diff != "" {
		t.Errorf("seek positions (-want +got):\n%s", diff)
	}
	entries := find(seg.kids[2].kids, idTrackEntry)
	if len(entries) != 3 || string(find(entries[0].kids, idCodecPrivate)[0].data) != "\x01\x02\x03" ||
		uintOf(find(find(entries[0].kids, idVideo)[0].kids, idPixelWidth)[0]) != 320 ||
		uintOf(find(entries[2].kids, idTrackType)[0]) != typeSubtitle {
		t.Errorf("tracks: %+v", entries)
	}

	type blk struct {
		track int
		rel   int16
		key   bool
	}
	cluster := func(c elem) (uint64, []blk) {
		var bs []blk
		for _, k := range c.kids {
			d := k.data
			if k.id == idBlockGroup {
				d = find(k.kids, idBlock)[0].data
			}
			if k.id == idSimpleBlock || k.id == idBlockGroup {
				bs = append(bs, blk{int(d[0] & 0x7f), int16(binary.BigEndian.Uint16(d[1:])), d[3]&0x80 != 0})
			}
		}
		return uintOf(find(c.kids, idTimestamp)[0]), bs
	}
	for i, want := range []struct {
		ts     uint64
		blocks []blk
	}{
		{0, []blk{{2, 0, true}}},
		{5, []blk{{1, 0, true}, {2, 15, true}, {1, 33, false}, {2, 35, true}}},
		{50, []blk{{3, 0, false}, {2, 10, true}, {1, 21, true}, {1, 54, false}}},
	} {
		ts, bs := cluster(seg.kids[4+i])
		if diff := cmp.Diff(want.blocks, bs, cmp.AllowUnexported(blk{})); ts != want.ts || diff != "" {
			t.Errorf("cluster %d at %d, want %d (-want +got):\n%s", i, ts, want.ts, diff)
		}
	}
	if got := int64(len(b)) - segData; got != int64(len(seg.data)) {
		t.Errorf("segment size %d, file holds %d", len(seg.data), got)
	}
	var cues [][2]uint64
	for _, cp := range find(seg.kids[7].kids, idCuePoint) {
		tp := find(cp.kids, idCueTrackPositions)[0]
		cues = append(cues, [2]uint64{uintOf(find(cp.kids, idCueTime)[0]), uintOf(find(tp.kids, idCueClusterPosition)[0])})
	}
	want := [][2]uint64{{5, uint64(seg.kids[5].off - segData)}, {71, uint64(seg.kids[6].off - segData)}}
	if diff := cmp.Diff(want, cues); diff != "" {
		t.Errorf("cues (-want +got):\n%s", diff)
	}
}

func TestAppendSizeAndVoid(t *testing.T) {
	for _, tc := range []struct {
		n     uint64
		width int
		want  []byte
	}{
		{0, 0, []byte{0x80}},
		{126, 0, []byte{0xfe}},
		{127, 0, []byte{0x40, 0x7f}}, // 0xff would mean "unknown"
		{5, 8, []byte{0x01, 0, 0, 0, 0, 0, 0, 5}},
	} {
		if diff := cmp.Diff(tc.want, appendSize(nil, tc.n, tc.width)); diff != "" {
			t.Errorf("appendSize(%d, %d) (-want +got):\n%s", tc.n, tc.width, diff)
		}
	}
	for _, n := range []int{2, 3, 128, 129, 130, 4000} {
		v := appendVoid(nil, n)
		es := parse(t, v, 0)
		if len(v) != n || len(es) != 1 || es[0].id != idVoid {
			t.Errorf("appendVoid(%d): %d bytes, %d elements", n, len(v), len(es))
		}
	}
}

func TestHeadFull(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "x.mkv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := NewWriter(f, TrackConfig{CodecID: CodecH264, NeedsPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetCodecPrivate(1, make([]byte, HeadSize), 16, 16); !errors.Is(err, ErrHeadFull) {
		t.Errorf("oversized codec private data: %v", err)
	}
	// The track is still waiting, and a fitting setup is taken.
	if err := w.SetCodecPrivate(1, []byte{1}, 16, 16); err != nil {
		t.Errorf("then a fitting one: %v", err)
	}
	if _, err := NewWriter(f, TrackConfig{CodecID: "X_UNKNOWN"}); err == nil {
		t.Error("a track of no known kind was accepted")
	}
}
