// Package media is the client's step 5: real codecs on the wire.
//
// It reads a short H.264 clip (Annex B) and a G.711 μ-law clip from files,
// sends them as RTP (RFC 3550) with RFC 6184 packetization-mode 1 for video,
// paced in real time, with RTCP sender and receiver reports; it receives the
// peer's RTP, computes the RFC 3550 reception statistics (loss, interarrival
// jitter, round-trip time), asks for keyframes with PLI when video breaks, and
// records what arrives: one Matroska file per call (Recorder, on
// internal/mkv) that players open as is, and optionally the raw streams
// (Annex B .h264, μ-law .wav).
//
// The pieces are usable alone: H264Source and PCMUSource produce frames,
// H264Packetizer and H264Depacketizer convert frames to and from RTP
// payloads, Sender and Receiver hold the per-stream RTP/RTCP state as pure
// functions of packets and time, and Session runs them over UDP sockets for
// one call. BuildOffer, BuildAnswer and ParseAnswer negotiate the streams
// with SDP (RFC 3264).
package media
