package relay

import (
	"encoding/binary"
	"time"

	"github.com/pion/rtcp"
)

// seqStats measures loss and interarrival jitter of the RTP a side sends,
// as the relay receives it (RFC 3550 appendix A.1, A.3 and A.8). It follows
// one SSRC at a time; when the sender switches SSRC the loss counted so far
// is kept and the new source starts afresh.
//
// The fixed RTP header it reads (RFC 3550 section 5.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|V=2|P|X|  CC   |M|     PT      |       sequence number         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                           timestamp                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           synchronization source (SSRC) identifier            |
//	+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
type seqStats struct {
	started  bool
	ssrc     uint32
	maxSeq   uint16
	cycles   uint32 // shifted count of sequence number wraps
	baseSeq  uint32
	badSeq   uint32
	received uint64
	prevLost int64 // loss of earlier SSRCs

	epoch       time.Time // arrival time origin for the jitter clock
	clock       uint32    // clock rate the transit times are in
	haveTransit bool
	transit     int32
	jitter      float64 // in timestamp units
}

const (
	maxDropout  = 3000
	maxMisorder = 100
	seqMod      = 1 << 16
)

// update accounts one RTP packet b (at least 12 bytes) arriving at now with
// the given clock rate.
func (s *seqStats) update(b []byte, now time.Time, clock uint32) {
	seq := binary.BigEndian.Uint16(b[2:4])
	ts := binary.BigEndian.Uint32(b[4:8])
	ssrc := binary.BigEndian.Uint32(b[8:12])
	if !s.started || ssrc != s.ssrc {
		if s.started {
			s.prevLost += s.currentLost()
		}
		prevLost, epoch := s.prevLost, s.epoch
		*s = seqStats{started: true, ssrc: ssrc, prevLost: prevLost, epoch: epoch}
		if s.epoch.IsZero() {
			s.epoch = now
		}
		s.initSeq(seq)
	} else if !s.updateSeq(seq) {
		return
	}
	s.received++

	// A.8: transit = arrival - timestamp, both in the media clock.
	if clock == 0 {
		return
	}
	if clock != s.clock {
		s.clock, s.haveTransit, s.jitter = clock, false, 0
	}
	// Whole seconds and the rest apart, so the product cannot overflow
	// however long the call; the result wraps like an RTP timestamp.
	el := now.Sub(s.epoch)
	secs, rest := uint64(el/time.Second), uint64(el%time.Second)
	arrival := uint32(secs*uint64(clock) + rest*uint64(clock)/uint64(time.Second))
	transit := int32(arrival - ts)
	if s.haveTransit {
		d := float64(transit - s.transit)
		if d < 0 {
			d = -d
		}
		s.jitter += (d - s.jitter) / 16
	}
	s.transit, s.haveTransit = transit, true
}

func (s *seqStats) initSeq(seq uint16) {
	s.baseSeq = uint32(seq)
	s.maxSeq = seq
	s.badSeq = seqMod + 1 // so seq == badSeq is false
	s.cycles = 0
	s.received = 0
}

// updateSeq is RFC 3550 A.1 update_seq without the probation period: the
// relay only sees packets that already passed latching. It reports whether
// the packet counts.
func (s *seqStats) updateSeq(seq uint16) bool {
	udelta := seq - s.maxSeq
	switch {
	case udelta < maxDropout:
		if seq < s.maxSeq {
			s.cycles += seqMod
		}
		s.maxSeq = seq
	case udelta <= seqMod-maxMisorder:
		// A very large jump: believe it only when the next packet follows.
		if uint32(seq) == s.badSeq {
			s.prevLost += s.currentLost()
			s.initSeq(seq)
		} else {
			s.badSeq = (uint32(seq) + 1) & (seqMod - 1)
			return false
		}
	default:
		// Duplicate or reordered packet.
	}
	return true
}

func (s *seqStats) currentLost() int64 {
	if !s.started {
		return 0
	}
	expected := int64(s.cycles) + int64(s.maxSeq) - int64(s.baseSeq) + 1
	return expected - int64(s.received)
}

// lost is the cumulative number of packets lost (negative with duplicates,
// as RFC 3550 allows).
func (s *seqStats) lost() int64 { return s.prevLost + s.currentLost() }

// jitterMS is the interarrival jitter estimate in milliseconds.
func (s *seqStats) jitterMS() float64 {
	if s.clock == 0 {
		return 0
	}
	return s.jitter * 1000 / float64(s.clock)
}

// reportStats keeps the latest RTCP report block per reported SSRC, from
// the sender and receiver reports passing through the relay.
type reportStats struct {
	blocks map[uint32]rtcp.ReceptionReport
}

// maxReportedSSRCs bounds the memory a hostile client can make the relay
// spend on report blocks.
const maxReportedSSRCs = 8

// update reads the report blocks of a compound RTCP packet. Anything that
// does not parse is ignored: the packet is still forwarded as it came.
func (r *reportStats) update(b []byte) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	for _, p := range pkts {
		var blocks []rtcp.ReceptionReport
		switch p := p.(type) {
		case *rtcp.SenderReport:
			blocks = p.Reports
		case *rtcp.ReceiverReport:
			blocks = p.Reports
		}
		for _, rb := range blocks {
			if r.blocks == nil {
				r.blocks = make(map[uint32]rtcp.ReceptionReport)
			}
			if _, ok := r.blocks[rb.SSRC]; !ok && len(r.blocks) >= maxReportedSSRCs {
				continue
			}
			r.blocks[rb.SSRC] = rb
		}
	}
}

func (r *reportStats) valid() bool { return len(r.blocks) > 0 }

// lost sums the cumulative loss of every reported source; the field is a
// signed 24-bit value (RFC 3550 section 6.4.1).
func (r *reportStats) lost() int64 {
	var n int64
	for _, rb := range r.blocks {
		v := int64(rb.TotalLost & 0xffffff)
		if v&0x800000 != 0 {
			v -= 1 << 24
		}
		n += v
	}
	return n
}

// jitterMS is the largest reported jitter, converted with clock.
func (r *reportStats) jitterMS(clock uint32) float64 {
	if clock == 0 {
		return 0
	}
	var m uint32
	for _, rb := range r.blocks {
		m = max(m, rb.Jitter)
	}
	return float64(m) * 1000 / float64(clock)
}
