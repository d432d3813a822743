package jpegscale

import (
	"encoding/binary"
	"errors"
	"io"
)

// bufSize is the input buffer: large enough that refilling it costs
// nothing next to decoding what it holds, small next to any image.
const bufSize = 32 << 10

// source buffers the input: segments are read from it byte-wise and the
// entropy-coded data straight out of its buffer.
type source struct {
	r    io.Reader
	buf  []byte
	i, j int // buf[i:j] is read but not yet used
	err  error
}

// fill reads more input after buf[i:j], moved to the front; it reports
// whether any came.
func (s *source) fill() bool {
	if s.err != nil {
		return false
	}
	if s.i > 0 {
		s.j = copy(s.buf, s.buf[s.i:s.j])
		s.i = 0
	}
	for range 100 {
		n, err := s.r.Read(s.buf[s.j:])
		s.j += n
		if err != nil {
			s.err = err
		}
		if n > 0 || err != nil {
			return n > 0
		}
	}
	s.err = io.ErrNoProgress
	return false
}

// failure is the error of reading past the input's end.
func (s *source) failure() error {
	if s.err == nil || errors.Is(s.err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return s.err
}

func (s *source) readByte() (byte, error) {
	if s.i == s.j && !s.fill() {
		return 0, s.failure()
	}
	s.i++
	return s.buf[s.i-1], nil
}

func (s *source) readFull(p []byte) error {
	for len(p) > 0 {
		if s.i == s.j && !s.fill() {
			return s.failure()
		}
		n := copy(p, s.buf[s.i:s.j])
		s.i += n
		p = p[n:]
	}
	return nil
}

func (s *source) skip(n int) error {
	for n > 0 {
		if s.i == s.j && !s.fill() {
			return s.failure()
		}
		k := min(n, s.j-s.i)
		s.i += k
		n -= k
	}
	return nil
}

// bitReader reads entropy-coded data, most significant bit first, through
// a 64-bit buffer refilled a byte at a time. At a marker (or the end of the
// input) it feeds zero bits and counts them: decoding that uses them has
// read past the end of the scan's data, which is an error, as in
// image/jpeg.
type bitReader struct {
	src    *source
	acc    uint64 // the next n bits, left-aligned
	n      uint
	padded uint // the last padded of the n bits are not in the input
	end    bool // reached a marker or the input's end
}

func (br *bitReader) reset() {
	br.acc, br.n, br.padded, br.end = 0, 0, 0, false
}

// fill makes at least 57 bits available.
func (br *bitReader) fill() {
	s := br.src
	if br.n <= 56 && s.j-s.i >= 8 {
		// Most of the time the next bytes hold no 0xFF: take as many as
		// fit at once.
		v := binary.BigEndian.Uint64(s.buf[s.i:])
		if x := ^v; (x-0x0101010101010101)&^x&0x8080808080808080 == 0 {
			k := (64 - br.n) / 8
			br.acc |= v >> (64 - 8*k) << (64 - 8*k - br.n)
			br.n += 8 * k
			s.i += int(k)
			return
		}
	}
	for br.n <= 56 && !br.end {
		if s.j-s.i < 2 {
			s.fill()
		}
		var b byte
		switch {
		case s.j-s.i >= 2:
			b = s.buf[s.i]
			if b != 0xFF {
				s.i++
			} else if s.buf[s.i+1] == 0 {
				s.i += 2 // a stuffed 0xFF data byte
			} else {
				br.end = true // a marker: left for the caller to read
				continue
			}
		case s.j-s.i == 1 && s.buf[s.i] != 0xFF:
			b = s.buf[s.i]
			s.i++
		default:
			br.end = true
			continue
		}
		br.acc |= uint64(b) << (56 - br.n)
		br.n += 8
	}
	if br.n <= 56 {
		br.padded += 64 - br.n
		br.n = 64
	}
}

// overread reports whether decoding used bits the input does not have.
func (br *bitReader) overread() bool { return br.padded > br.n }

// bits returns the next s bits (1 ≤ s ≤ 16), of the at least s available.
func (br *bitReader) bits(s uint) int32 {
	v := int32(br.acc >> (64 - s))
	br.acc <<= s
	br.n -= s
	return v
}

// receive reads an s-bit coefficient: the codes with a leading 0 bit are
// the negative values (ITU T.81, F.2.2.1, EXTEND).
func (br *bitReader) receive(s uint) int32 {
	v := br.bits(s)
	if v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v
}

func (br *bitReader) bit() bool {
	if br.n == 0 {
		br.fill()
	}
	b := br.acc>>63 != 0
	br.acc <<= 1
	br.n--
	return b
}

// lutBits is how many bits the lookahead table decodes at once: nearly
// every code of a photo's tables is at most 9 bits.
const lutBits = 9

// huffTable decodes one Huffman code: codes of up to lutBits bits by one
// table lookup, longer ones length by length.
type huffTable struct {
	defined bool
	// lut, indexed by the next lutBits bits, holds value<<8 | length of
	// the code they start with; 0 when the code is longer.
	lut [1 << lutBits]uint16
	// fastAC, for a run/size symbol whose code and value bits both fit in
	// lutBits, holds value<<16 | run<<8 | the bits of both: most AC
	// coefficients of a photo are decoded with one lookup.
	fastAC  [1 << lutBits]int32
	maxCode [17]int32 // the largest code of each length; -1 for none
	offset  [17]int32 // index in vals of a code of that length, less the code
	vals    [256]byte
}

// decode reads one code. It needs 16 bits available.
func (br *bitReader) decode(h *huffTable) (byte, bool) {
	if e := h.lut[br.acc>>(64-lutBits)]; e != 0 {
		l := uint(e >> 8)
		br.acc <<= l
		br.n -= l
		return byte(e), true
	}
	for l := uint(lutBits + 1); l <= 16; l++ {
		code := int32(br.acc >> (64 - l))
		if code <= h.maxCode[l] {
			br.acc <<= l
			br.n -= l
			return h.vals[h.offset[l]+code], true
		}
	}
	return 0, false
}

// readDHT reads Huffman tables, validated as image/jpeg validates them.
func (d *decoder) readDHT(n int) error {
	for n > 0 {
		if n < 17 {
			return formatError("DHT has wrong length")
		}
		var b [17]byte
		if err := d.src.readFull(b[:]); err != nil {
			return err
		}
		tc, th := b[0]>>4, b[0]&0x0F
		if tc > 1 {
			return formatError("bad Tc value")
		}
		if th > 3 || d.baseline && th > 1 {
			return formatError("bad Th value")
		}
		total := 0
		for _, c := range b[1:] {
			total += int(c)
		}
		if total == 0 {
			return formatError("Huffman table has zero length")
		}
		if total > 256 {
			return formatError("Huffman table has excessive length")
		}
		n -= 17 + total
		if n < 0 {
			return formatError("DHT has wrong length")
		}
		h := &d.huff[tc][th]
		if err := d.src.readFull(h.vals[:total]); err != nil {
			return err
		}
		if err := h.build(b[1:]); err != nil {
			return err
		}
	}
	return nil
}

// build makes the decoding tables from the count of codes of each length
// (ITU T.81, C.2: codes are assigned in order of length, then of value).
func (h *huffTable) build(counts []byte) error {
	clear(h.lut[:])
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		cnt := int32(counts[l-1])
		h.offset[l] = k - code
		h.maxCode[l] = -1
		if cnt > 0 {
			h.maxCode[l] = code + cnt - 1
		}
		if code+cnt > 1<<l {
			// More codes than bits for them: image/jpeg reads such a
			// table its own way, so leave it to image/jpeg.
			return unsupported("over-subscribed Huffman table")
		}
		for range cnt {
			if l <= lutBits {
				// Every lutBits-bit index that starts with the code.
				shift := lutBits - l
				e := uint16(l)<<8 | uint16(h.vals[k])
				for i := code << shift; i < (code+1)<<shift; i++ {
					h.lut[i] = e
				}
			}
			code++
			k++
		}
		code <<= 1
	}
	for i, e := range h.lut {
		l, size := uint(e>>8), uint(e&0x0F)
		h.fastAC[i] = 0
		if e == 0 || size == 0 || l+size > lutBits {
			continue
		}
		v := int32(i>>(lutBits-l-size)) & (1<<size - 1)
		if v < 1<<(size-1) {
			v += -1<<size + 1
		}
		h.fastAC[i] = v<<16 | int32(e&0xF0)<<4 | int32(l+size)
	}
	h.defined = true
	return nil
}
