package jpegscale

// The inverse DCTs work in fixed point with 13 fractional bits. The 8×8
// one is the Loeffler–Ligtenberg–Moschytz factorisation libjpeg calls
// "islow": 12 multiplications per row or column, accurate to the IEEE 1180
// bounds, so it agrees with image/jpeg's to within one level. The reduced
// ones take the block's lowest bs×bs frequencies and evaluate them at the
// centres of bs×bs groups of pixels, which gives each output sample the
// average of its group up to the high frequencies left out, and costs a
// fraction of a full transform.

const (
	constBits = 13
	pass1Bits = 2 // kept between the column and the row pass, for precision

	fix0_298631336 = 2446
	fix0_390180644 = 3196
	fix0_541196100 = 4433
	fix0_765366865 = 6270
	fix0_899976223 = 7373
	fix1_175875602 = 9633
	fix1_501321110 = 12299
	fix1_847759065 = 15137
	fix1_961570560 = 16069
	fix2_053119869 = 16819
	fix2_562915447 = 20995
	fix3_072711026 = 25172

	fixCos4 = 5793 // cos(π/4)
	fixCos1 = 7568 // cos(π/8)
	fixCos3 = 3135 // cos(3π/8)
)

// transform writes d.block's samples at the decoding scale to dst, rows
// stride apart, and clears the block for the next one.
func (d *decoder) transform(dst []byte, stride int) {
	blk := &d.block
	switch d.bs {
	case 8:
		idct8(blk, dst, stride)
		clear(blk[:])
	case 4:
		idct4(blk, dst, stride)
		clear(blk[:])
	case 2:
		idct2(blk, dst, stride)
		blk[0], blk[1], blk[8], blk[9] = 0, 0, 0, 0
	default:
		// The DC term alone: 8 times the block's mean.
		dst[0] = clamp((int(blk[0])+4)>>3 + 128)
		blk[0] = 0
	}
}

func clamp(v int) byte {
	return byte(min(max(v, 0), 255))
}

// idct8 is the full 8×8 inverse DCT.
func idct8(blk *[64]int32, dst []byte, stride int) {
	var ws [64]int
	for u := range 8 { // columns
		col := blk[u:]
		if col[8] == 0 && col[16] == 0 && col[24] == 0 && col[32] == 0 &&
			col[40] == 0 && col[48] == 0 && col[56] == 0 {
			// Only the DC term: a flat column, common after quantisation.
			dc := int(col[0]) << pass1Bits
			for y := range 8 {
				ws[8*y+u] = dc
			}
			continue
		}
		o0, o1, o2, o3, o4, o5, o6, o7 := idct8x(int(col[0]), int(col[8]), int(col[16]), int(col[24]),
			int(col[32]), int(col[40]), int(col[48]), int(col[56]), constBits-pass1Bits)
		ws[u], ws[8+u], ws[16+u], ws[24+u], ws[32+u], ws[40+u], ws[48+u], ws[56+u] = o0, o1, o2, o3, o4, o5, o6, o7
	}
	for y := range 8 { // rows
		row := ws[8*y:][:8]
		d := dst[y*stride:][:8]
		if row[1] == 0 && row[2] == 0 && row[3] == 0 && row[4] == 0 && row[5] == 0 && row[6] == 0 && row[7] == 0 {
			v := clamp((row[0]+1<<(pass1Bits+2))>>(pass1Bits+3) + 128)
			d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = v, v, v, v, v, v, v, v
			continue
		}
		o0, o1, o2, o3, o4, o5, o6, o7 := idct8x(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], constBits+pass1Bits+3)
		d[0], d[1], d[2], d[3] = clamp(o0+128), clamp(o1+128), clamp(o2+128), clamp(o3+128)
		d[4], d[5], d[6], d[7] = clamp(o4+128), clamp(o5+128), clamp(o6+128), clamp(o7+128)
	}
}

// idct8x is the one-dimensional 8-point transform, its results shifted
// right by shift, rounded.
func idct8x(i0, i1, i2, i3, i4, i5, i6, i7 int, shift uint) (o0, o1, o2, o3, o4, o5, o6, o7 int) {
	// Even part: the rotation of inputs 2 and 6, then 0 and 4.
	z1 := (i2 + i6) * fix0_541196100
	t2 := z1 - i6*fix1_847759065
	t3 := z1 + i2*fix0_765366865
	t0 := (i0 + i4) << constBits
	t1 := (i0 - i4) << constBits
	t10, t13 := t0+t3, t0-t3
	t11, t12 := t1+t2, t1-t2

	// Odd part: inputs 7, 5, 3, 1.
	p0, p1, p2, p3 := i7, i5, i3, i1
	z1 = p0 + p3
	z2 := p1 + p2
	z3 := p0 + p2
	z4 := p1 + p3
	z5 := (z3 + z4) * fix1_175875602
	p0 *= fix0_298631336
	p1 *= fix2_053119869
	p2 *= fix3_072711026
	p3 *= fix1_501321110
	z1 *= -fix0_899976223
	z2 *= -fix2_562915447
	z3 = z3*-fix1_961570560 + z5
	z4 = z4*-fix0_390180644 + z5
	p0 += z1 + z3
	p1 += z2 + z4
	p2 += z2 + z3
	p3 += z1 + z4

	round := 1 << (shift - 1)
	return (t10 + p3 + round) >> shift, (t11 + p2 + round) >> shift,
		(t12 + p1 + round) >> shift, (t13 + p0 + round) >> shift,
		(t13 - p0 + round) >> shift, (t12 - p1 + round) >> shift,
		(t11 - p2 + round) >> shift, (t10 - p3 + round) >> shift
}

// idct4 is the 4×4 transform of the lowest 4×4 frequencies: samples at
// 1/2 scale. In one dimension, with a = cos(π/4), c1 = cos(π/8) and
// c3 = cos(3π/8), the four samples are (e0+o0, e1+o1, e1−o1, e0−o0)/2 where
// e0, e1 = a(F0 ± F2), o0 = c1·F1 + c3·F3 and o1 = c3·F1 − c1·F3.
func idct4(blk *[64]int32, dst []byte, stride int) {
	var ws [16]int
	for u := range 4 {
		var out [4]int
		idct4x(&out, int(blk[u]), int(blk[8+u]), int(blk[16+u]), int(blk[24+u]), constBits-pass1Bits)
		for y := range 4 {
			ws[4*y+u] = out[y]
		}
	}
	for y := range 4 {
		row := ws[4*y:][:4]
		var out [4]int
		// Each pass leaves its result doubled (the /2 above) and the
		// first keeps pass1Bits more: 2+2+pass1Bits bits to drop.
		idct4x(&out, row[0], row[1], row[2], row[3], constBits+pass1Bits+2)
		d := dst[y*stride:][:4]
		for x := range 4 {
			d[x] = clamp(out[x] + 128)
		}
	}
}

func idct4x(out *[4]int, f0, f1, f2, f3 int, shift uint) {
	e0 := (f0 + f2) * fixCos4
	e1 := (f0 - f2) * fixCos4
	o0 := f1*fixCos1 + f3*fixCos3
	o1 := f1*fixCos3 - f3*fixCos1
	round := 1 << (shift - 1)
	out[0] = (e0 + o0 + round) >> shift
	out[1] = (e1 + o1 + round) >> shift
	out[2] = (e1 - o1 + round) >> shift
	out[3] = (e0 - o0 + round) >> shift
}

// idct2 is the 2×2 transform of the lowest 2×2 frequencies: samples at
// 1/4 scale. Its cosines are all ±cos(π/4), whose squares make the /8 of
// a full transform's DC term: only additions are left.
func idct2(blk *[64]int32, dst []byte, stride int) {
	f00, f01, f10, f11 := int(blk[0]), int(blk[1]), int(blk[8]), int(blk[9])
	a, b := f00+f10, f00-f10 // the two rows' sums, before the column signs
	c, e := f01+f11, f01-f11
	dst[0] = clamp((a+c+4)>>3 + 128)
	dst[1] = clamp((a-c+4)>>3 + 128)
	dst[stride] = clamp((b+e+4)>>3 + 128)
	dst[stride+1] = clamp((b-e+4)>>3 + 128)
}
