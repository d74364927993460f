// Package mkv writes Matroska files (RFC 9559) as media arrives: video,
// audio and subtitle tracks, blocks timestamped in milliseconds, a real
// duration and a seek index when the file is closed.
//
// The head of the file (EBML header, SeekHead, Info, Tracks) lives in a
// fixed region padded with a Void element and is rewritten in place: when a
// track learns its codec setup (H.264 parameter sets arrive with the first
// keyframe, not before) and at Close, which adds the duration and the Cues.
// A file cut short by a crash therefore still plays up to its last cluster.
package mkv

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// Track types (RFC 9559 5.1.4.1.3).
const (
	typeVideo    = 1
	typeAudio    = 2
	typeSubtitle = 0x11
)

// Codec IDs (Matroska codec mappings) for the tracks a call records.
const (
	CodecH264    = "V_MPEG4/ISO/AVC"
	CodecPCM     = "A_PCM/INT/LIT"
	CodecOpus    = "A_OPUS"
	CodecText    = "S_TEXT/UTF8"
	timestampSec = 1000 // TimestampScale 1 ms: block timestamps are in ms
)

// Limits that keep the head region and block timestamps in range.
const (
	// HeadSize is the room reserved for everything before the first
	// cluster; codec private data must fit in it.
	HeadSize = 4096
	// maxClusterSpan keeps block offsets inside the int16 a block has.
	maxClusterSpan = 5000 // ms
	// maxClusterBytes bounds what a cluster buffers in memory.
	maxClusterBytes = 4 << 20
)

// Errors callers branch on.
var (
	ErrClosed       = errors.New("mkv: writer closed")
	ErrUnknownTrack = errors.New("mkv: unknown track")
	ErrHeadFull     = errors.New("mkv: track headers do not fit the head region")
)

// TrackConfig describes one track. Number is assigned by the Writer.
type TrackConfig struct {
	CodecID string
	Name    string
	// CodecPrivate may be set later with SetCodecPrivate; a track is
	// declared in the file only once it is Ready.
	CodecPrivate []byte
	// Video.
	Width, Height int
	// Audio.
	SampleRate float64
	Channels   int
	BitDepth   int
	// NeedsPrivate holds the track back until SetCodecPrivate (H.264).
	NeedsPrivate bool
}

type track struct {
	TrackConfig
	number int
	kind   int
	blocks int
}

func (t *track) ready() bool { return !t.NeedsPrivate || t.CodecPrivate != nil }

type block struct {
	track    int
	ts       int64 // ms from the start of the file
	key      bool
	duration int64 // > 0: a BlockGroup with BlockDuration (subtitles)
	data     []byte
}

// Writer writes one Matroska file. Its methods are safe for concurrent use:
// a call's audio and video arrive on different goroutines.
type Writer struct {
	ws io.WriteSeeker

	mu       sync.Mutex // guards the following
	tracks   []*track
	segData  int64 // file offset of the Segment's payload
	end      int64 // file offset where the next cluster goes
	pending  []block
	pendSize int
	maxTS    int64 // largest block end timestamp, for the duration
	cues     []cue
	closed   bool
	err      error // first write error; the file is abandoned after it
}

type cue struct {
	ts    int64
	track int
	pos   int64 // cluster offset from segData
}

// NewWriter starts a file on ws (at offset 0) with the given tracks, which
// are numbered from 1 in order.
func NewWriter(ws io.WriteSeeker, tracks ...TrackConfig) (*Writer, error) {
	w := &Writer{ws: ws}
	for i, tc := range tracks {
		t := &track{TrackConfig: tc, number: i + 1}
		switch {
		case tc.Width > 0 || tc.Height > 0 || tc.CodecID == CodecH264:
			t.kind = typeVideo
		case tc.SampleRate > 0:
			t.kind = typeAudio
		case tc.CodecID == CodecText:
			t.kind = typeSubtitle
		default:
			return nil, fmt.Errorf("mkv: track %d (%s): neither video size, audio rate nor text", i+1, tc.CodecID)
		}
		w.tracks = append(w.tracks, t)
	}
	ebml := ebmlHeader()
	w.segData = int64(len(ebml)) + 4 + 8 // Segment ID and 8-byte size
	head := append(ebml, appendID(nil, idSegment)...)
	head = append(head, unknownSize...)
	body, err := w.headBody(false)
	if err != nil {
		return nil, err
	}
	if _, err := ws.Write(append(head, body...)); err != nil {
		return nil, fmt.Errorf("mkv: write header: %w", err)
	}
	w.end = w.segData + HeadSize
	return w, nil
}

func ebmlHeader() []byte {
	var p []byte
	p = appendUint(p, idEBMLVersion, 1)
	p = appendUint(p, idEBMLReadVersion, 1)
	p = appendUint(p, idEBMLMaxIDLength, 4)
	p = appendUint(p, idEBMLMaxSizeLength, 8)
	p = appendString(p, idDocType, "matroska")
	p = appendUint(p, idDocTypeVersion, 4)
	p = appendUint(p, idDocTypeReadVersion, 2)
	return appendElem(nil, idEBML, p)
}

// headBody is the Segment's first HeadSize bytes: SeekHead, Info, Tracks
// (the ready ones) and Void padding. final adds the duration and the Cues'
// position.
func (w *Writer) headBody(final bool) ([]byte, error) {
	var info []byte
	info = appendUint(info, idTimestampScale, 1_000_000)
	info = appendString(info, idMuxingApp, "z5")
	info = appendString(info, idWritingApp, "z5")
	if final {
		info = appendFloat(info, idDuration, float64(w.maxTS))
	}
	info = appendElem(nil, idInfo, info)

	var tracks []byte
	for _, t := range w.tracks {
		if t.ready() {
			tracks = append(tracks, t.entry()...)
		}
	}
	tracks = appendElem(nil, idTracks, tracks)

	// Seek positions are fixed-width, so the SeekHead's size does not
	// depend on them.
	seek := func(id uint32, pos int64) []byte {
		var s []byte
		s = appendElem(s, idSeekID, appendID(nil, id))
		s = appendUint8(s, idSeekPosition, uint64(pos))
		return appendElem(nil, idSeek, s)
	}
	entries := 2
	if final {
		entries = 3
	}
	seekLen := len(appendElem(nil, idSeekHead, slices.Repeat(seek(idInfo, 0), entries)))
	var sh []byte
	sh = append(sh, seek(idInfo, int64(seekLen))...)
	sh = append(sh, seek(idTracks, int64(seekLen+len(info)))...)
	if final {
		sh = append(sh, seek(idCues, w.end-w.segData)...)
	}
	body := append(appendElem(nil, idSeekHead, sh), info...)
	body = append(body, tracks...)
	pad := HeadSize - len(body)
	if pad < 2 {
		// Void cannot fill a single byte; nothing else should either.
		return nil, fmt.Errorf("%w: %d bytes, room for %d", ErrHeadFull, len(body), HeadSize-2)
	}
	return appendVoid(body, pad), nil
}

func (t *track) entry() []byte {
	var e []byte
	e = appendUint(e, idTrackNumber, uint64(t.number))
	e = appendUint(e, idTrackUID, uint64(t.number))
	e = appendUint(e, idTrackType, uint64(t.kind))
	e = appendUint(e, idFlagLacing, 0)
	e = appendString(e, idLanguage, "und")
	if t.Name != "" {
		e = appendString(e, idName, t.Name)
	}
	e = appendString(e, idCodecID, t.CodecID)
	if t.CodecPrivate != nil {
		e = appendElem(e, idCodecPrivate, t.CodecPrivate)
	}
	switch t.kind {
	case typeVideo:
		var v []byte
		v = appendUint(v, idPixelWidth, uint64(t.Width))
		v = appendUint(v, idPixelHeight, uint64(t.Height))
		e = appendElem(e, idVideo, v)
	case typeAudio:
		var a []byte
		a = appendFloat(a, idSamplingFrequency, t.SampleRate)
		a = appendUint(a, idChannels, uint64(max(t.Channels, 1)))
		if t.BitDepth > 0 {
			a = appendUint(a, idBitDepth, uint64(t.BitDepth))
		}
		e = appendElem(e, idAudio, a)
	}
	return appendElem(nil, idTrackEntry, e)
}

// SetCodecPrivate sets a track's codec setup (and, for video, its size)
// and rewrites the head so the track is declared from now on. Blocks of a
// track are refused until it is ready.
func (w *Writer) SetCodecPrivate(number int, private []byte, width, height int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, err := w.track(number)
	if err != nil {
		return err
	}
	old := t.TrackConfig
	t.CodecPrivate = slices.Clone(private)
	if width > 0 && height > 0 {
		t.Width, t.Height = width, height
	}
	if err := w.rewriteHead(false); err != nil {
		t.TrackConfig = old
		return err
	}
	return nil
}

func (w *Writer) track(number int) (*track, error) {
	if w.closed {
		return nil, ErrClosed
	}
	if w.err != nil {
		return nil, w.err
	}
	if number < 1 || number > len(w.tracks) {
		return nil, fmt.Errorf("%w: %d", ErrUnknownTrack, number)
	}
	return w.tracks[number-1], nil
}

// rewriteHead writes the head region again and returns to the end.
func (w *Writer) rewriteHead(final bool) error {
	body, err := w.headBody(final)
	if err != nil {
		return err
	}
	if _, err := w.ws.Seek(w.segData, io.SeekStart); err == nil {
		_, err = w.ws.Write(body)
	}
	if err == nil {
		_, err = w.ws.Seek(w.end, io.SeekStart)
	}
	if err != nil {
		w.err = fmt.Errorf("mkv: rewrite header: %w", err)
		return w.err
	}
	return nil
}

// WriteBlock adds one frame of track at ts milliseconds from the start of
// the file. A video keyframe starts a new cluster, so that every cluster
// can be decoded on its own and the Cues point at keyframes.
func (w *Writer) WriteBlock(number int, ts int64, keyframe bool, data []byte) error {
	return w.add(number, block{ts: ts, key: keyframe, data: slices.Clone(data)})
}

// WriteText adds a subtitle of duration ms at ts.
func (w *Writer) WriteText(number int, ts, duration int64, text string) error {
	if duration <= 0 {
		return fmt.Errorf("mkv: subtitle duration %d ms", duration)
	}
	return w.add(number, block{ts: ts, key: true, duration: duration, data: []byte(text)})
}

func (w *Writer) add(number int, b block) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, err := w.track(number)
	if err != nil {
		return err
	}
	if !t.ready() {
		return fmt.Errorf("mkv: track %d has no codec private data yet", number)
	}
	if b.ts < 0 {
		return fmt.Errorf("mkv: negative timestamp %d on track %d", b.ts, number)
	}
	b.track = number
	if len(w.pending) > 0 {
		lo, hi := w.pendRange()
		span := max(b.ts, hi) - min(b.ts, lo)
		if (t.kind == typeVideo && b.key) || span > maxClusterSpan || w.pendSize+len(b.data) > maxClusterBytes {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	w.pending = append(w.pending, b)
	w.pendSize += len(b.data)
	t.blocks++
	w.maxTS = max(w.maxTS, b.ts+max(b.duration, 0))
	return nil
}

func (w *Writer) pendRange() (lo, hi int64) {
	lo, hi = w.pending[0].ts, w.pending[0].ts
	for _, b := range w.pending[1:] {
		lo, hi = min(lo, b.ts), max(hi, b.ts)
	}
	return lo, hi
}

// flush writes the pending blocks as one cluster, in timestamp order (the
// two streams arrive interleaved by the network, not by time).
func (w *Writer) flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	slices.SortStableFunc(w.pending, func(a, b block) int {
		switch {
		case a.ts < b.ts:
			return -1
		case a.ts > b.ts:
			return 1
		}
		return 0
	})
	base := w.pending[0].ts
	var c []byte
	c = appendUint(c, idTimestamp, uint64(base))
	cuedTracks := map[int]bool{}
	for _, b := range w.pending {
		hdr := appendSize(nil, uint64(b.track), 0)
		rel := b.ts - base // <= maxClusterSpan, fits int16
		hdr = append(hdr, byte(uint16(rel)>>8), byte(rel))
		if b.duration > 0 {
			var g []byte
			g = appendElem(g, idBlock, append(append(hdr, 0), b.data...))
			g = appendUint(g, idBlockDuration, uint64(b.duration))
			c = appendElem(c, idBlockGroup, g)
			continue
		}
		flags := byte(0)
		if b.key {
			flags = 0x80
		}
		c = appendElem(c, idSimpleBlock, append(append(hdr, flags), b.data...))
		t := w.tracks[b.track-1]
		if b.key && t.kind != typeSubtitle && !cuedTracks[b.track] && (t.kind == typeVideo || !w.hasVideo()) {
			cuedTracks[b.track] = true
			w.cues = append(w.cues, cue{ts: b.ts, track: b.track, pos: w.end - w.segData})
		}
	}
	out := appendElem(nil, idCluster, c)
	w.pending, w.pendSize = w.pending[:0], 0
	if _, err := w.ws.Write(out); err != nil {
		w.err = fmt.Errorf("mkv: write cluster: %w", err)
		return w.err
	}
	w.end += int64(len(out))
	return nil
}

// hasVideo: with a video track the index points at its keyframes only.
func (w *Writer) hasVideo() bool {
	for _, t := range w.tracks {
		if t.kind == typeVideo && t.ready() {
			return true
		}
	}
	return false
}

// Blocks is the number of blocks written to a track so far.
func (w *Writer) Blocks(number int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if number < 1 || number > len(w.tracks) {
		return 0
	}
	return w.tracks[number-1].blocks
}

// Close writes the last cluster and the Cues, then the duration and the
// Segment's size into the head. It does not close the underlying file.
// Close is idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if err := w.flush(); err != nil {
		return err
	}
	var cues []byte
	for _, c := range w.cues {
		var tp []byte
		tp = appendUint(tp, idCueTrack, uint64(c.track))
		tp = appendUint(tp, idCueClusterPosition, uint64(c.pos))
		var p []byte
		p = appendUint(p, idCueTime, uint64(c.ts))
		p = appendElem(p, idCueTrackPositions, tp)
		cues = appendElem(cues, idCuePoint, p)
	}
	out := appendElem(nil, idCues, cues)
	if _, err := w.ws.Write(out); err != nil {
		w.err = fmt.Errorf("mkv: write cues: %w", err)
		return w.err
	}
	cuesAt := w.end
	w.end += int64(len(out))
	segSize := appendSize(nil, uint64(w.end-w.segData), 8)
	_, err := w.ws.Seek(w.segData-8, io.SeekStart)
	if err == nil {
		_, err = w.ws.Write(segSize)
	}
	if err != nil {
		w.err = fmt.Errorf("mkv: write segment size: %w", err)
		return w.err
	}
	end := w.end
	w.end = cuesAt // the SeekHead points at the Cues
	err = w.rewriteHead(true)
	w.end = end
	if err == nil {
		_, err = w.ws.Seek(end, io.SeekStart)
	}
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("mkv: finish: %w", err)
	}
	return w.err
}
