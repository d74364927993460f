package relay

import (
	"encoding/binary"
	"time"

	"github.com/pion/rtcp"

	"github.com/z5vrs/z5/internal/rtpstats"
)

// seqStats measures loss and interarrival jitter of the RTP a side sends,
// as the relay receives it (RFC 3550 appendix A.1, A.3 and A.8, in
// rtpstats). It follows one SSRC at a time; when the sender switches SSRC,
// or restarts its sequence, the loss counted so far is kept and the new
// run starts afresh.
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
	prevLost int64 // loss of earlier SSRCs and sequence runs
	rx       rtpstats.Receiver
}

// update accounts one RTP packet b (at least 12 bytes) arriving at now with
// the given clock rate.
func (s *seqStats) update(b []byte, now time.Time, clock uint32) {
	seq := binary.BigEndian.Uint16(b[2:4])
	ts := binary.BigEndian.Uint32(b[4:8])
	ssrc := binary.BigEndian.Uint32(b[8:12])
	if s.started && ssrc != s.ssrc {
		s.prevLost += s.rx.Lost()
		s.rx = rtpstats.Receiver{}
	}
	s.started, s.ssrc = true, ssrc
	before := s.rx.Lost()
	if s.rx.Update(seq, ts, now, clock) == rtpstats.Restarted {
		s.prevLost += before
	}
}

// lost is the cumulative number of packets lost (negative with duplicates,
// as RFC 3550 allows).
func (s *seqStats) lost() int64 { return s.prevLost + s.rx.Lost() }

// jitterMS is the interarrival jitter estimate in milliseconds.
func (s *seqStats) jitterMS() float64 { return s.rx.JitterMS() }

// clock is the clock rate of the jitter estimate, 0 when unknown.
func (s *seqStats) clock() uint32 { return s.rx.Clock() }

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
		n += rtpstats.Lost24(rb.TotalLost)
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
