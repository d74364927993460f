// Package t140 is real-time text (RFC 4103): T.140 text (ITU-T T.140,
// UTF-8) carried in RTP with RFC 2198 redundancy. It holds the pure parts:
// the RED payload codec, the sender's buffering state machine (Encoder),
// the receiver's loss recovery (Decoder) and the T.140 editing rules
// (backspace, new line, the keepalive BOM) as a line editor (Editor). The
// socket loops that drive them live in the client.
package t140
