package jpegscale

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"testing"
)

// The test encoder makes the JPEGs image/jpeg's encoder cannot: 4:4:4 and
// 4:2:2 chroma, restart intervals, one scan per component, and progressive
// files with spectral selection and successive approximation. It borrows
// image/jpeg's quantisation and Huffman tables (read back from a file it
// wrote) and writes everything else itself, from ITU T.81.

// encoding says how to encode.
type encoding struct {
	gray        bool
	h, v        int  // luma sampling factors; chroma is always 1×1
	ri          int  // restart interval in MCUs; 0 for none
	separate    bool // sequential: one scan per component, not interleaved
	progressive bool
}

// tables are image/jpeg's quantisation and Huffman tables at one quality.
type tables struct {
	dqt   []byte       // the whole segment, marker included
	spec  [2][2][]byte // each Huffman table as a DHT segment holds it
	quant [2][64]int32
	huff  [2][2]encTable // [class][luma, chroma]
}

type encTable struct {
	code [256]uint16
	size [256]uint8
}

// stdTables reads the tables back from a small file image/jpeg encodes.
func stdTables(t testing.TB, quality int) *tables {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 16, 16)), &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	tb := &tables{}
	for i := 2; i+4 <= len(b) && b[i+1] != sos; {
		n := int(b[i+2])<<8 | int(b[i+3])
		seg := b[i+4 : i+2+n]
		switch b[i+1] {
		case dqt:
			tb.dqt = append(tb.dqt, b[i:i+2+n]...)
			for len(seg) >= 65 {
				for k := range 64 {
					tb.quant[seg[0]&1][k] = int32(seg[1+k])
				}
				seg = seg[65:]
			}
		case dht:
			for len(seg) >= 17 {
				counts, total := seg[1:17], 0
				for _, c := range counts {
					total += int(c)
				}
				tb.huff[seg[0]>>4][seg[0]&1] = makeEncTable(counts, seg[17:17+total])
				tb.spec[seg[0]>>4][seg[0]&1] = seg[:17+total]
				seg = seg[17+total:]
			}
		}
		i += 2 + n
	}
	return tb
}

func makeEncTable(counts, vals []byte) encTable {
	var e encTable
	code, k := uint16(0), 0
	for l := 1; l <= 16; l++ {
		for range counts[l-1] {
			e.code[vals[k]], e.size[vals[k]] = code, uint8(l)
			code++
			k++
		}
		code <<= 1
	}
	return e
}

// flatCounts codes every byte value: 255 of them in 8 bits, the last in 9,
// leaving the all-ones code unused as the standard asks. Progressive AC
// scans need symbols (EOB runs) image/jpeg's tables lack.
var flatCounts = [16]byte{7: 255, 8: 1}

func flatTable() (encTable, []byte) {
	vals := make([]byte, 256)
	for i := range vals {
		vals[i] = byte(i)
	}
	return makeEncTable(flatCounts[:], vals), vals
}

// encComp is one component's quantised coefficients, in zigzag order.
type encComp struct {
	id, h, v int
	bw, bh   int // blocks, in whole MCUs
	cw, ch   int // blocks holding samples of the image
	coef     [][64]int32
	table    int // 0 luma, 1 chroma
}

// encode encodes img at quality 90.
func encode(t testing.TB, img *image.RGBA, e encoding) []byte {
	tb := stdTables(t, 90)
	w, h := img.Rect.Dx(), img.Rect.Dy()
	hmax, vmax := max(e.h, 1), max(e.v, 1)
	if e.gray {
		hmax, vmax = 1, 1
	}
	mcux, mcuy := (w+8*hmax-1)/(8*hmax), (h+8*vmax-1)/(8*vmax)
	// Full-resolution planes.
	planes := [3][]float64{make([]float64, w*h), make([]float64, w*h), make([]float64, w*h)}
	for y := range h {
		for x := range w {
			p := img.Pix[y*img.Stride+4*x:]
			yy, cb, cr := color.RGBToYCbCr(p[0], p[1], p[2])
			if e.gray {
				yy = color.GrayModel.Convert(color.RGBA{p[0], p[1], p[2], 255}).(color.Gray).Y
			}
			planes[0][y*w+x], planes[1][y*w+x], planes[2][y*w+x] = float64(yy), float64(cb), float64(cr)
		}
	}
	ncomp := 3
	if e.gray {
		ncomp = 1
	}
	comps := make([]*encComp, ncomp)
	for i := range comps {
		c := &encComp{id: i + 1, h: 1, v: 1, table: min(i, 1)}
		if i == 0 {
			c.h, c.v = hmax, vmax
		}
		c.bw, c.bh = mcux*c.h, mcuy*c.v
		cwPx, chPx := (w*c.h+hmax-1)/hmax, (h*c.v+vmax-1)/vmax
		c.cw, c.ch = (cwPx+7)/8, (chPx+7)/8
		fx, fy := hmax/c.h, vmax/c.v
		// The component's samples: averages of fx×fy pixels, the edge
		// repeated to fill whole MCUs.
		sample := func(sx, sy int) float64 {
			sx, sy = min(sx, cwPx-1), min(sy, chPx-1)
			var sum float64
			n := 0
			for y := sy * fy; y < min(sy*fy+fy, h); y++ {
				for x := sx * fx; x < min(sx*fx+fx, w); x++ {
					sum += planes[i][y*w+x]
					n++
				}
			}
			return sum / float64(n)
		}
		c.coef = make([][64]int32, c.bw*c.bh)
		for by := range c.bh {
			for bx := range c.bw {
				var blk [64]float64
				for y := range 8 {
					for x := range 8 {
						blk[8*y+x] = sample(8*bx+x, 8*by+y) - 128
					}
				}
				c.coef[by*c.bw+bx] = quantise(fdct(&blk), &tb.quant[c.table])
			}
		}
		comps[i] = c
	}

	var out bytes.Buffer
	out.Write([]byte{0xFF, soi})
	segment := func(marker byte, body []byte) {
		out.Write([]byte{0xFF, marker, byte((len(body) + 2) >> 8), byte(len(body) + 2)})
		out.Write(body)
	}
	segment(app0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))
	out.Write(tb.dqt)
	sof := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(ncomp)}
	for _, c := range comps {
		sof = append(sof, byte(c.id), byte(c.h<<4|c.v), byte(c.table))
	}
	marker := byte(sof0)
	if e.progressive {
		marker = sof2
	}
	segment(marker, sof)
	var huff [2][2]encTable
	if e.progressive {
		// DC tables from image/jpeg, the flat table for AC.
		flat, vals := flatTable()
		segment(dht, append(append([]byte(nil), tb.spec[0][0]...), tb.spec[0][1]...))
		for _, id := range []byte{0x10, 0x11} {
			segment(dht, append(append([]byte{id}, flatCounts[:]...), vals...))
		}
		huff = [2][2]encTable{tb.huff[0], {flat, flat}}
	} else {
		for _, spec := range [][]byte{tb.spec[0][0], tb.spec[1][0], tb.spec[0][1], tb.spec[1][1]} {
			segment(dht, spec)
		}
		huff = tb.huff
	}
	if e.ri > 0 {
		segment(dri, []byte{byte(e.ri >> 8), byte(e.ri)})
	}
	sc := func(cs []*encComp, ss, se, ah, al int) {
		hdr := []byte{byte(len(cs))}
		for _, c := range cs {
			hdr = append(hdr, byte(c.id), byte(c.table<<4|c.table))
		}
		segment(sos, append(hdr, byte(ss), byte(se), byte(ah<<4|al)))
		w := &scanWriter{out: &out, huff: &huff, ri: e.ri}
		w.scan(cs, mcux, mcuy, ss, se, ah, al)
	}
	switch {
	case e.progressive && ncomp == 1:
		y := comps[0]
		sc(comps, 0, 0, 0, 1)
		sc([]*encComp{y}, 1, 5, 0, 2)
		sc([]*encComp{y}, 6, 63, 0, 2)
		sc([]*encComp{y}, 1, 63, 2, 1)
		sc(comps, 0, 0, 1, 0)
		sc([]*encComp{y}, 1, 63, 1, 0)
	case e.progressive:
		y, cb, cr := comps[0], comps[1], comps[2]
		sc(comps, 0, 0, 0, 1)
		sc([]*encComp{y}, 1, 5, 0, 2)
		sc([]*encComp{cr}, 1, 63, 0, 1)
		sc([]*encComp{cb}, 1, 63, 0, 1)
		sc([]*encComp{y}, 6, 63, 0, 2)
		sc([]*encComp{y}, 1, 63, 2, 1)
		sc(comps, 0, 0, 1, 0)
		sc([]*encComp{cr}, 1, 63, 1, 0)
		sc([]*encComp{cb}, 1, 63, 1, 0)
		sc([]*encComp{y}, 1, 63, 1, 0)
	case e.separate:
		for _, c := range comps {
			sc([]*encComp{c}, 0, 63, 0, 0)
		}
	default:
		sc(comps, 0, 63, 0, 0)
	}
	out.Write([]byte{0xFF, eoi})
	return out.Bytes()
}

// fdct is the forward DCT of ITU T.81, A.3.3, computed separably: rows,
// then columns.
func fdct(blk *[64]float64) [64]float64 {
	var cos [8][8]float64 // cos[u][x], with C(u)/2 folded in
	for u := range 8 {
		c := 0.5
		if u == 0 {
			c = math.Sqrt2 / 4
		}
		for x := range 8 {
			cos[u][x] = c * math.Cos(float64(2*x+1)*float64(u)*math.Pi/16)
		}
	}
	var rows, out [64]float64
	for y := range 8 {
		for u := range 8 {
			for x := range 8 {
				rows[8*y+u] += blk[8*y+x] * cos[u][x]
			}
		}
	}
	for v := range 8 {
		for u := range 8 {
			for y := range 8 {
				out[8*v+u] += rows[8*y+u] * cos[v][y]
			}
		}
	}
	return out
}

// quantise divides by the table (in zigzag order) and returns the
// coefficients in zigzag order.
func quantise(f [64]float64, q *[64]int32) [64]int32 {
	var out [64]int32
	for k := range 64 {
		out[k] = int32(math.Round(f[unzig[k]] / float64(q[k])))
	}
	return out
}

// scanWriter writes one scan's entropy-coded data.
type scanWriter struct {
	out  *bytes.Buffer
	huff *[2][2]encTable
	ri   int

	acc    uint32
	nacc   uint
	pred   [4]int32
	eobrun int
	held   []byte // correction bits waiting for the EOB run to be written
	ac     *encTable
}

func (w *scanWriter) bits(v uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.acc = w.acc<<1 | (v>>uint(i))&1
		w.nacc++
		if w.nacc == 8 {
			b := byte(w.acc)
			w.out.WriteByte(b)
			if b == 0xFF {
				w.out.WriteByte(0)
			}
			w.acc, w.nacc = 0, 0
		}
	}
}

// flush pads the last byte with ones (ITU T.81, F.1.2.3).
func (w *scanWriter) flush() {
	w.flushEOB()
	for w.nacc != 0 {
		w.bits(1, 1)
	}
}

func (w *scanWriter) symbol(t *encTable, s byte) { w.bits(uint32(t.code[s]), uint(t.size[s])) }

// value writes the size category's symbol, then the value's bits.
func (w *scanWriter) value(t *encTable, run int, v int32) {
	a := v
	if a < 0 {
		a = -a
		v--
	}
	size := uint(0)
	for a > 0 {
		size++
		a >>= 1
	}
	w.symbol(t, byte(run<<4)|byte(size))
	if size > 0 {
		w.bits(uint32(v)&(1<<size-1), size)
	}
}

func (w *scanWriter) flushEOB() {
	if w.eobrun == 0 {
		return
	}
	r := 0
	for w.eobrun>>(r+1) != 0 {
		r++
	}
	w.symbol(w.ac, byte(r<<4))
	if r > 0 {
		w.bits(uint32(w.eobrun)&(1<<r-1), uint(r))
	}
	for _, b := range w.held {
		w.bits(uint32(b), 1)
	}
	w.eobrun, w.held = 0, nil
}

func (w *scanWriter) scan(cs []*encComp, mcux, mcuy, ss, se, ah, al int) {
	type pos struct {
		c     *encComp
		ci    int
		block int
	}
	// The blocks in coding order, one MCU per entry.
	var mcus [][]pos
	if len(cs) > 1 {
		for my := range mcuy {
			for mx := range mcux {
				var m []pos
				for i, c := range cs {
					for j := range c.h * c.v {
						m = append(m, pos{c, i, (my*c.v+j/c.h)*c.bw + mx*c.h + j%c.h})
					}
				}
				mcus = append(mcus, m)
			}
		}
	} else {
		c := cs[0]
		for by := range c.ch {
			for bx := range c.cw {
				mcus = append(mcus, []pos{{c, 0, by*c.bw + bx}})
			}
		}
	}
	w.ac = &w.huff[1][cs[0].table]
	for m, blocks := range mcus {
		if w.ri > 0 && m > 0 && m%w.ri == 0 {
			w.flush()
			w.out.Write([]byte{0xFF, byte(rst0 + (m/w.ri-1)%8)})
			w.pred = [4]int32{}
		}
		for _, p := range blocks {
			coef := &p.c.coef[p.block]
			dcT, acT := &w.huff[0][p.c.table], &w.huff[1][p.c.table]
			switch {
			case ss == 0 && ah == 0:
				dc := coef[0] >> al
				w.value(dcT, 0, dc-w.pred[p.ci])
				w.pred[p.ci] = dc
				if se > 0 {
					w.sequentialAC(acT, coef)
				}
			case ss == 0:
				w.bits(uint32(coef[0]>>al)&1, 1)
			case ah == 0:
				w.acFirst(coef, ss, se, al)
			default:
				w.acRefine(coef, ss, se, al)
			}
		}
	}
	w.flush()
}

func (w *scanWriter) sequentialAC(t *encTable, coef *[64]int32) {
	run := 0
	for k := 1; k < 64; k++ {
		if coef[k] == 0 {
			run++
			continue
		}
		for ; run > 15; run -= 16 {
			w.symbol(t, 0xF0)
		}
		w.value(t, run, coef[k])
		run = 0
	}
	if run > 0 {
		w.symbol(t, 0x00)
	}
}

// magnitude is |v| >> al, the point transform of AC coefficients.
func magnitude(v int32, al int) int32 {
	if v < 0 {
		return -v >> al
	}
	return v >> al
}

func (w *scanWriter) acFirst(coef *[64]int32, ss, se, al int) {
	run := 0
	for k := ss; k <= se; k++ {
		m := magnitude(coef[k], al)
		if m == 0 {
			run++
			continue
		}
		w.flushEOB()
		for ; run > 15; run -= 16 {
			w.symbol(w.ac, 0xF0)
		}
		if coef[k] < 0 {
			m = -m
		}
		w.value(w.ac, run, m)
		run = 0
	}
	if run > 0 {
		w.eobrun++
		if w.eobrun == 0x7FFF {
			w.flushEOB()
		}
	}
}

// acRefine follows ITU T.81, G.1.2.3 (and libjpeg's encode_mcu_AC_refine).
func (w *scanWriter) acRefine(coef *[64]int32, ss, se, al int) {
	last := -1 // the last coefficient that becomes non-zero in this bit
	for k := ss; k <= se; k++ {
		if magnitude(coef[k], al) == 1 {
			last = k
		}
	}
	run := 0
	var pending []byte // correction bits since the last symbol
	for k := ss; k <= se; k++ {
		m := magnitude(coef[k], al)
		if m == 0 {
			run++
			continue
		}
		for run > 15 && k <= last {
			w.flushEOB()
			w.symbol(w.ac, 0xF0)
			run -= 16
			for _, b := range pending {
				w.bits(uint32(b), 1)
			}
			pending = nil
		}
		if m > 1 {
			pending = append(pending, byte(m&1))
			continue
		}
		w.flushEOB()
		w.symbol(w.ac, byte(run<<4|1))
		if coef[k] > 0 {
			w.bits(1, 1)
		} else {
			w.bits(0, 1)
		}
		for _, b := range pending {
			w.bits(uint32(b), 1)
		}
		pending, run = nil, 0
	}
	if run > 0 || len(pending) > 0 {
		w.eobrun++
		w.held = append(w.held, pending...)
		if w.eobrun == 0x7FFF || len(w.held) > 937 {
			w.flushEOB()
		}
	}
}
