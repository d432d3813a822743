package jpegscale

// unzig maps the zigzag order coefficients are coded in to natural,
// row-major order (ITU T.81, figure A.6).
var unzig = [64]uint8{
	0, 1, 8, 16, 9, 2, 3, 10,
	17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34,
	27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36,
	29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46,
	53, 60, 61, 54, 47, 55, 62, 63,
}

// kept is, for each block size at the decoding scale (indexed by 8/denom),
// how many coefficients in zigzag order reach the reduced inverse DCT: the
// last one of its bs×bs lowest frequencies comes this far along.
var kept = [9]int{1: 1, 2: 5, 4: 25, 8: 64}

// scanComp is one component of a scan and its tables.
type scanComp struct {
	c      *component
	dc, ac *huffTable
	pred   int32 // the previous block's DC value
}

// scan is a start-of-scan header: the components and, for a progressive
// file, which coefficients and bits the scan refines.
type scan struct {
	comps  []scanComp
	ss, se int  // spectral selection, zigzag indices
	ah, al uint // successive approximation: previous and current low bit
}

func (d *decoder) readSOS(n int) error {
	if !d.frame {
		return formatError("missing SOF marker")
	}
	if n < 6 || 4+2*d.ncomp < n || n%2 != 0 {
		return formatError("SOS has wrong length")
	}
	var b [10]byte
	if err := d.src.readFull(b[:n]); err != nil {
		return err
	}
	nc := int(b[0])
	if n != 4+2*nc {
		return formatError("SOS length inconsistent with number of components")
	}
	var comps [3]scanComp
	var td, ta [3]byte
	totalHV := 0
	for i := range nc {
		id := b[1+2*i]
		var c *component
		for j := range d.ncomp {
			if d.comp[j].id == id {
				c = &d.comp[j]
			}
		}
		if c == nil {
			return formatError("unknown component selector")
		}
		for _, other := range comps[:i] {
			if other.c == c {
				return formatError("repeated component selector")
			}
		}
		comps[i].c = c
		totalHV += c.h * c.v
		td[i], ta[i] = b[2+2*i]>>4, b[2+2*i]&0x0F
		if td[i] > 3 || d.baseline && td[i] > 1 {
			return formatError("bad Td value")
		}
		if ta[i] > 3 || d.baseline && ta[i] > 1 {
			return formatError("bad Ta value")
		}
	}
	if d.ncomp > 1 && totalHV > 10 {
		return formatError("total sampling factors too large")
	}
	sc := scan{comps: comps[:nc], ss: 0, se: 63}
	if d.progressive {
		sc.ss, sc.se = int(b[1+2*nc]), int(b[2+2*nc])
		sc.ah, sc.al = uint(b[3+2*nc]>>4), uint(b[3+2*nc]&0x0F)
		if sc.ss == 0 && sc.se != 0 || sc.ss > sc.se || sc.se >= 64 {
			return formatError("bad spectral selection bounds")
		}
		if sc.ss != 0 && nc != 1 {
			return formatError("progressive AC coefficients for more than one component")
		}
		if sc.ah != 0 && sc.ah != sc.al+1 {
			return formatError("bad successive approximation values")
		}
	}
	// The tables the scan decodes with must exist (every scan has at
	// least one block): DC tables for DC first scans and sequential
	// ones, AC tables for AC scans and sequential ones.
	for i := range sc.comps {
		if sc.ss == 0 && sc.ah == 0 {
			sc.comps[i].dc = &d.huff[0][td[i]]
			if !sc.comps[i].dc.defined {
				return formatError("uninitialized Huffman table")
			}
		}
		if sc.se > 0 {
			sc.comps[i].ac = &d.huff[1][ta[i]]
			if !sc.comps[i].ac.defined {
				return formatError("uninitialized Huffman table")
			}
		}
	}
	if nc == 1 && d.ri > 0 && sc.comps[0].c.h*sc.comps[0].c.v > 1 {
		// image/jpeg counts the restart interval of such a scan in groups
		// of h×v blocks, where the standard counts blocks: leave these
		// files to it, so that they decode as they always have.
		return unsupported("restart interval in a non-interleaved scan of a subsampled image")
	}
	if !d.started {
		d.allocate()
	}
	for i := range sc.comps {
		sc.comps[i].c.scanned = true
	}
	return d.decodeScan(&sc)
}

// decodeScan decodes the scan's entropy-coded data, MCU by MCU: in an
// interleaved scan, each component's h×v blocks in turn; in a
// non-interleaved one, a single block, in raster order over the blocks
// that hold samples of the image (ITU T.81, A.2).
func (d *decoder) decodeScan(sc *scan) error {
	d.bits.reset()
	br := &d.bits
	interleaved := len(sc.comps) > 1
	total := d.mcux * d.mcuy
	if !interleaved {
		total = sc.comps[0].c.cw * sc.comps[0].c.ch
	}
	nextRST := byte(rst0)
	for m := range total {
		if interleaved {
			mx, my := m%d.mcux, m/d.mcux
			for i := range sc.comps {
				s := &sc.comps[i]
				for j := range s.c.h * s.c.v {
					if err := d.decodeBlock(sc, s, mx*s.c.h+j%s.c.h, my*s.c.v+j/s.c.h); err != nil {
						return err
					}
				}
			}
		} else {
			s := &sc.comps[0]
			if err := d.decodeBlock(sc, s, m%s.c.cw, m/s.c.cw); err != nil {
				return err
			}
		}
		if br.overread() {
			return formatError("short Huffman data")
		}
		if d.ri > 0 && (m+1)%d.ri == 0 && m+1 < total {
			if err := d.restart(nextRST); err != nil {
				return err
			}
			nextRST = rst0 + (nextRST-rst0+1)%8
			for i := range sc.comps {
				sc.comps[i].pred = 0
			}
		}
	}
	return nil
}

// restart finds the restart marker the data should have reached, skipping
// what lies before it the way image/jpeg does: bytes that are not a marker
// are ignored, any other marker is an error.
func (d *decoder) restart(want byte) error {
	d.bits.reset()
	d.eobrun = 0
	var tmp [2]byte
	if err := d.src.readFull(tmp[:]); err != nil {
		return err
	}
	for tmp[0] != 0xFF || tmp[1] != want {
		i := 0
		switch {
		case tmp[0] == 0xFF && tmp[1] == 0xFF:
			i = 1
		case tmp[0] == 0xFF && tmp[1] != 0:
			return formatError("bad RST marker")
		case tmp[0] != 0xFF && tmp[1] == 0xFF:
			tmp[0], i = 0xFF, 1
		}
		if err := d.src.readFull(tmp[i:]); err != nil {
			return err
		}
	}
	return nil
}

// decodeBlock decodes one block of a scan: a sequential scan's block is
// transformed into samples at once, a progressive scan's coefficients are
// kept for the end.
func (d *decoder) decodeBlock(sc *scan, s *scanComp, bx, by int) error {
	br := &d.bits
	if !d.progressive {
		if err := d.decodeSequential(s); err != nil {
			return err
		}
		c := s.c
		stride := c.bw * d.bs
		d.transform(c.pix[by*d.bs*stride+bx*d.bs:], stride)
		return nil
	}
	coef := (*[64]int16)(s.c.coef[(by*s.c.bw+bx)*64:])
	switch {
	case sc.ss == 0 && sc.ah == 0: // DC, first scan
		if err := d.decodeDC(s); err != nil {
			return err
		}
		coef[0] = int16(s.pred << sc.al)
	case sc.ss == 0: // DC, refinement: one more bit
		if br.bit() {
			coef[0] |= 1 << sc.al
		}
	case sc.ah == 0:
		return d.decodeACFirst(sc, s, coef)
	default:
		return d.decodeACRefine(sc, s, coef)
	}
	return nil
}

// decodeDC adds a block's DC difference to its component's prediction.
func (d *decoder) decodeDC(s *scanComp) error {
	br := &d.bits
	if br.n < 32 {
		br.fill()
	}
	t, ok := br.decode(s.dc)
	if !ok {
		return formatError("bad Huffman code")
	}
	if t > 16 {
		return formatError("DC difference of more than 16 bits")
	}
	if t > 0 {
		s.pred += br.receive(uint(t))
	}
	return nil
}

// decodeSequential decodes a sequential block into d.block, dequantised,
// keeping only the coefficients the decoding scale uses: the others are
// read past. This is where a reduced decode spends most of its time, so
// the AC loop keeps the bit buffer in local variables (the compiler keeps
// them in registers) and goes through the bitReader only to refill it or
// for the rare long code.
func (d *decoder) decodeSequential(s *scanComp) error {
	br := &d.bits
	q := &d.quant[s.c.tq]
	blk := &d.block
	keep := kept[d.bs]
	if err := d.decodeDC(s); err != nil {
		return err
	}
	blk[0] = s.pred * q[0]
	ac := s.ac
	acc, n := br.acc, br.n
	for k := 1; k < 64; {
		if n < 32 {
			br.acc, br.n = acc, n
			br.fill()
			acc, n = br.acc, br.n
		}
		if f := ac.fastAC[acc>>(64-lutBits)]; f != 0 && k+int(f>>8)&0x0F < 64 {
			k += int(f>>8) & 0x0F
			if k < keep {
				blk[unzig[k&63]] = f >> 16 * q[k&63]
			}
			acc <<= uint(f & 0xFF)
			n -= uint(f & 0xFF)
			k++
			continue
		}
		var rs byte
		if e := ac.lut[acc>>(64-lutBits)]; e != 0 {
			rs = byte(e)
			acc <<= e >> 8
			n -= uint(e >> 8)
		} else {
			br.acc, br.n = acc, n
			var ok bool
			if rs, ok = br.decode(ac); !ok {
				return formatError("bad Huffman code")
			}
			acc, n = br.acc, br.n
		}
		r, size := int(rs>>4), uint(rs&0x0F)
		if size == 0 {
			if r == 15 { // sixteen zeros
				k += 16
				continue
			}
			if r != 0 {
				// A run of blocks with no more coefficients: progressive
				// only. image/jpeg accepts it here too; leave it to it.
				return unsupported("end-of-band run in a sequential scan")
			}
			break // the block's end
		}
		k += r
		if k > 63 {
			break // image/jpeg ignores a run past the block's end
		}
		if k < keep {
			v := int32(acc >> (64 - size))
			if v < 1<<(size-1) {
				v += -1<<size + 1
			}
			blk[unzig[k]] = v * q[k]
		}
		acc <<= size
		n -= size
		k++
	}
	br.acc, br.n = acc, n
	return nil
}

// decodeACFirst decodes the first bits of a band of AC coefficients (ITU
// T.81, G.1.2.2): run-length coded like a sequential block, with runs of
// whole blocks that have no coefficients in the band (EOB runs).
func (d *decoder) decodeACFirst(sc *scan, s *scanComp, coef *[64]int16) error {
	if d.eobrun > 0 {
		d.eobrun--
		return nil
	}
	br := &d.bits
	for k := sc.ss; k <= sc.se; k++ {
		if br.n < 32 {
			br.fill()
		}
		rs, ok := br.decode(s.ac)
		if !ok {
			return formatError("bad Huffman code")
		}
		r, size := int(rs>>4), uint(rs&0x0F)
		if size == 0 {
			if r == 15 {
				k += 15
				continue
			}
			d.eobrun = 1 << r
			if r > 0 {
				d.eobrun |= int(br.bits(uint(r)))
			}
			d.eobrun--
			break
		}
		k += r
		if k > sc.se {
			break
		}
		coef[k] = int16(br.receive(size) << sc.al)
	}
	return nil
}

// decodeACRefine adds one bit to a band of AC coefficients (ITU T.81,
// G.1.2.3): a correction bit for each coefficient already non-zero, and the
// positions of those that become non-zero now, as ±1 in this bit.
func (d *decoder) decodeACRefine(sc *scan, s *scanComp, coef *[64]int16) error {
	br := &d.bits
	delta := int16(1) << sc.al
	k := sc.ss
	if d.eobrun == 0 {
		for ; k <= sc.se; k++ {
			if br.n < 32 {
				br.fill()
			}
			rs, ok := br.decode(s.ac)
			if !ok {
				return formatError("bad Huffman code")
			}
			r, size := int(rs>>4), rs&0x0F
			var z int16
			switch size {
			case 0:
				if r != 15 {
					d.eobrun = 1 << r
					if r > 0 {
						d.eobrun |= int(br.bits(uint(r)))
					}
				}
			case 1:
				z = delta
				if !br.bit() {
					z = -delta
				}
			default:
				return formatError("unexpected Huffman code")
			}
			if d.eobrun > 0 {
				break
			}
			k = refineNonZero(br, coef, k, sc.se, r, delta)
			if k > sc.se {
				return formatError("too many coefficients")
			}
			if z != 0 {
				coef[k] = z
			}
		}
	}
	if d.eobrun > 0 {
		d.eobrun--
		refineNonZero(br, coef, k, sc.se, -1, delta)
	}
	return nil
}

// refineNonZero reads a correction bit for each non-zero coefficient from
// k on, until it has passed zeros more zero coefficients, and returns the
// index of the zero coefficient it stopped at (past se when there was
// none; with zeros < 0, it refines the rest of the band).
func refineNonZero(br *bitReader, coef *[64]int16, k, se, zeros int, delta int16) int {
	for ; k <= se; k++ {
		if coef[k] == 0 {
			if zeros == 0 {
				break
			}
			zeros--
			continue
		}
		if br.bit() && coef[k]&delta == 0 {
			if coef[k] >= 0 {
				coef[k] += delta
			} else {
				coef[k] -= delta
			}
		}
	}
	return k
}

// transformAll turns a progressive file's coefficients into samples, once
// every scan has been read.
func (d *decoder) transformAll() {
	keep := kept[d.bs]
	for i := range d.ncomp {
		c := &d.comp[i]
		if !c.scanned {
			continue
		}
		q := &d.quant[c.tq]
		stride := c.bw * d.bs
		for by := range c.ch {
			for bx := range c.cw {
				coef := c.coef[(by*c.bw+bx)*64:][:64]
				for k, v := range coef[:keep] {
					d.block[unzig[k]] = int32(v) * q[k]
				}
				d.transform(c.pix[by*d.bs*stride+bx*d.bs:], stride)
			}
		}
	}
}
