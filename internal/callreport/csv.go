// Package callreport is the call-quality record a user can send to
// support: per-second rows of bitrate, frame rate, loss, jitter and
// round-trip time for each stream and direction of a call, kept as CSV
// while the call runs (Sampler, Writer) and drawn as an SVG chart
// afterwards (Read, SVG).
package callreport

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/z5vrs/z5/internal/media"
)

// Directions of a row.
const (
	Send = "send" // what we send, as the far end's reports describe it
	Recv = "recv" // what we receive, as we measure it
)

// Header is the first line of a stats file; the columns are fixed.
var Header = []string{"time_s", "stream", "direction", "kbps", "fps", "loss_pct", "jitter_ms", "rtt_ms"}

// ErrFormat means a stats file is not in this package's CSV schema.
var ErrFormat = errors.New("callreport: not a call stats file")

// maxRows bounds what Read accepts: a day of one call's four series.
const maxRows = 4 * 86400

// Row is one second of one stream in one direction. A metric that is not
// known (no report from the far end yet, nothing received) is NaN and
// written as an empty field.
type Row struct {
	Time      float64 // seconds since the call was answered
	Stream    string  // media.KindAudio or media.KindVideo
	Direction string  // Send or Recv
	Kbps      float64
	FPS       float64 // frames per second; audio: packets per second
	LossPct   float64
	JitterMs  float64
	RTTMs     float64
}

func (r Row) values() []float64 {
	return []float64{r.Kbps, r.FPS, r.LossPct, r.JitterMs, r.RTTMs}
}

// Writer writes rows as CSV, the header first.
type Writer struct {
	w      *csv.Writer
	header bool
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: csv.NewWriter(w)} }

// Write appends rows and flushes, so that a call cut short leaves every
// second it had.
func (w *Writer) Write(rows []Row) error {
	if !w.header {
		w.header = true
		if err := w.w.Write(Header); err != nil {
			return fmt.Errorf("callreport: write header: %w", err)
		}
	}
	for _, r := range rows {
		rec := []string{strconv.FormatFloat(r.Time, 'f', 1, 64), r.Stream, r.Direction}
		for _, v := range r.values() {
			rec = append(rec, formatValue(v))
		}
		if err := w.w.Write(rec); err != nil {
			return fmt.Errorf("callreport: write row: %w", err)
		}
	}
	w.w.Flush()
	if err := w.w.Error(); err != nil {
		return fmt.Errorf("callreport: write: %w", err)
	}
	return nil
}

func formatValue(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// Read parses a stats file written by Writer.
func Read(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(Header)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	if !slices.Equal(head, Header) {
		return nil, fmt.Errorf("%w: header %q, want %q", ErrFormat, head, Header)
	}
	var rows []Row
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		if len(rows) == maxRows {
			return nil, fmt.Errorf("%w: more than %d rows", ErrFormat, maxRows)
		}
		row, err := parseRow(rec)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrFormat, line, err)
		}
		rows = append(rows, row)
	}
}

func parseRow(rec []string) (Row, error) {
	t, err := strconv.ParseFloat(rec[0], 64)
	if err != nil || t < 0 || math.IsInf(t, 0) {
		return Row{}, fmt.Errorf("time %q", rec[0])
	}
	r := Row{Time: t, Stream: rec[1], Direction: rec[2]}
	if r.Stream != media.KindAudio && r.Stream != media.KindVideo {
		return Row{}, fmt.Errorf("stream %q, want audio or video", r.Stream)
	}
	if r.Direction != Send && r.Direction != Recv {
		return Row{}, fmt.Errorf("direction %q, want send or recv", r.Direction)
	}
	dst := []*float64{&r.Kbps, &r.FPS, &r.LossPct, &r.JitterMs, &r.RTTMs}
	for i, f := range rec[3:] {
		*dst[i] = math.NaN()
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return Row{}, fmt.Errorf("%s %q", Header[3+i], f)
		}
		*dst[i] = v
	}
	return r, nil
}

// Sampler turns a call's cumulative counters, read about once a second,
// into rows for the interval since the previous reading.
type Sampler struct {
	prev  map[string]media.StreamStats
	prevT time.Duration
}

// Rows returns one send and one recv row per stream for the interval that
// ends el after the call was answered. It returns nothing for an interval
// under 100 ms: rates over it would be noise.
func (s *Sampler) Rows(el time.Duration, streams []media.StreamStats) []Row {
	dt := (el - s.prevT).Seconds()
	if dt < 0.1 {
		return nil
	}
	if s.prev == nil {
		s.prev = map[string]media.StreamStats{}
	}
	nan := math.NaN()
	var rows []Row
	for _, cur := range streams {
		p := s.prev[cur.Kind]
		t := math.Round(el.Seconds()*10) / 10
		send := Row{Time: t, Stream: cur.Kind, Direction: Send,
			Kbps:    float64(cur.BytesSent-p.BytesSent) * 8 / 1000 / dt,
			FPS:     float64(cur.FramesSent-p.FramesSent) / dt,
			LossPct: nan, JitterMs: nan, RTTMs: nan}
		if cur.RemoteReports > 0 {
			send.LossPct = cur.RemoteFractionLost * 100
			send.JitterMs = cur.RemoteJitterMs
		}
		if cur.RTTMs > 0 {
			// Measured on our sender reports: the round trip both
			// directions share.
			send.RTTMs = cur.RTTMs
		}
		recv := Row{Time: t, Stream: cur.Kind, Direction: Recv,
			Kbps:    float64(cur.BytesReceived-p.BytesReceived) * 8 / 1000 / dt,
			FPS:     float64(cur.FramesReceived-p.FramesReceived) / dt,
			LossPct: nan, JitterMs: nan, RTTMs: nan}
		got := int64(cur.PacketsReceived - p.PacketsReceived)
		lost := max(cur.Lost-p.Lost, 0) // duplicates make the count go down
		if got+lost > 0 {
			recv.LossPct = float64(lost) * 100 / float64(got+lost)
		}
		if cur.PacketsReceived > 0 {
			recv.JitterMs = cur.JitterMs
		}
		rows = append(rows, send, recv)
		s.prev[cur.Kind] = cur
	}
	s.prevT = el
	return rows
}
