package netcheck

import (
	"math"
	"time"
)

// EModel is a simplified ITU-T G.107 E-model estimate of call quality from
// what the RTP probe measured. The formula is in docs/netcheck.md:
//
//	d      = RTT/2 + 2*jitter + 20 ms            one-way mouth-to-ear delay
//	Id     = 0.024*d + 0.11*(d-177.3)*H(d-177.3)  delay impairment (d in ms)
//	Ie,eff = 95*Ppl/(Ppl+4.3)                     G.711, random loss, no PLC
//	R      = 93.2 - Id - Ie,eff                   clamped to 0..100
//	MOS    = 1 + 0.035R + 7e-6*R*(R-60)*(100-R)   (G.107 Annex B)
type EModel struct {
	R      float64 `json:"r_factor"`
	MOS    float64 `json:"mos"`
	Rating string  `json:"rating"` // excellent, good, fair, poor, bad (G.109 bands)
}

// E-model constants (G.107 defaults, G.113 Appendix I for G.711).
const (
	emodelR0        = 93.2 // R0 - Is with every default value
	emodelCodec     = 20 * time.Millisecond
	emodelIe        = 0.0 // G.711
	emodelBpl       = 4.3 // G.711 without packet loss concealment
	emodelDelayKnee = 177.3
)

// Estimate computes the E-model for a round trip, interarrival jitter and
// loss fraction (0..1).
func Estimate(rtt, jitter time.Duration, loss float64) EModel {
	loss = min(max(loss, 0), 1)
	d := float64(rtt/2+2*jitter+emodelCodec) / float64(time.Millisecond)
	id := 0.024 * d
	if d > emodelDelayKnee {
		id += 0.11 * (d - emodelDelayKnee)
	}
	ppl := 100 * loss
	ie := emodelIe + (95-emodelIe)*ppl/(ppl+emodelBpl)
	r := min(max(emodelR0-id-ie, 0), 100)
	return EModel{R: round1(r), MOS: round2(mos(r)), Rating: rating(r)}
}

func mos(r float64) float64 {
	switch {
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	return 1 + 0.035*r + 7e-6*r*(r-60)*(100-r)
}

// rating names the G.109 band of r.
func rating(r float64) string {
	switch {
	case r >= 90:
		return "excellent"
	case r >= 80:
		return "good"
	case r >= 70:
		return "fair"
	case r >= 60:
		return "poor"
	}
	return "bad"
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
func round2(f float64) float64 { return math.Round(f*100) / 100 }
