package t140

import "fmt"

// Block is one RFC 2198 block: a redundant copy of an earlier T140block
// (TSOffset ms before the packet's timestamp) or the primary.
type Block struct {
	PT       uint8
	TSOffset uint16 // 14 bits; 0 for the primary
	Data     []byte
}

// RED limits from the header layout below.
const (
	maxTSOffset  = 1<<14 - 1
	maxBlockLen  = 1<<10 - 1
	maxRedBlocks = 16 // more than any sender uses; bounds parsing work
)

// ParseRED splits an RFC 2198 payload into its blocks, the primary last.
// The returned Data slices alias payload.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|F|   block PT  |  timestamp offset         |   block length    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|0|   block PT  |  (the primary's header: one byte)
//	+-+-+-+-+-+-+-+-+
func ParseRED(payload []byte) ([]Block, error) {
	var blocks []Block
	i := 0
	for {
		if i >= len(payload) {
			return nil, fmt.Errorf("%w: red header cut at byte %d", ErrBadPacket, i)
		}
		if payload[i]&0x80 == 0 {
			blocks = append(blocks, Block{PT: payload[i] & 0x7f})
			i++
			break
		}
		if len(blocks) == maxRedBlocks {
			return nil, fmt.Errorf("%w: more than %d red blocks", ErrBadPacket, maxRedBlocks)
		}
		if i+4 > len(payload) {
			return nil, fmt.Errorf("%w: red header cut at byte %d", ErrBadPacket, i)
		}
		h := payload[i : i+4]
		blocks = append(blocks, Block{
			PT:       h[0] & 0x7f,
			TSOffset: uint16(h[1])<<6 | uint16(h[2])>>2,
			Data:     make([]byte, int(h[2]&0x03)<<8|int(h[3])), // length for now
		})
		i += 4
	}
	for k := range blocks[:len(blocks)-1] {
		n := len(blocks[k].Data)
		if i+n > len(payload) {
			return nil, fmt.Errorf("%w: red block %d of %d bytes past the payload end", ErrBadPacket, k, n)
		}
		blocks[k].Data = payload[i : i+n : i+n]
		i += n
	}
	blocks[len(blocks)-1].Data = payload[i:len(payload):len(payload)]
	return blocks, nil
}

// AppendRED writes blocks (the primary last) as an RFC 2198 payload.
func AppendRED(dst []byte, blocks []Block) ([]byte, error) {
	if len(blocks) == 0 || len(blocks) > maxRedBlocks+1 {
		return dst, fmt.Errorf("%w: %d red blocks", ErrBadConfig, len(blocks))
	}
	for k, b := range blocks {
		if b.PT > 127 {
			return dst, fmt.Errorf("%w: block payload type %d", ErrBadConfig, b.PT)
		}
		if k == len(blocks)-1 {
			dst = append(dst, b.PT)
			break
		}
		if b.TSOffset > maxTSOffset || len(b.Data) > maxBlockLen {
			return dst, fmt.Errorf("%w: red block offset %d length %d", ErrBadConfig, b.TSOffset, len(b.Data))
		}
		n := len(b.Data)
		dst = append(dst, 0x80|b.PT, byte(b.TSOffset>>6), byte(b.TSOffset<<2)|byte(n>>8), byte(n))
	}
	for _, b := range blocks {
		dst = append(dst, b.Data...)
	}
	return dst, nil
}
