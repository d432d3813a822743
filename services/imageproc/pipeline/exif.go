package pipeline

import (
	"encoding/binary"
	"image"
)

// jpegOrientation finds the EXIF orientation tag (0x0112) in the APP1
// segment of a JPEG header. Cameras store photos as the sensor saw them and
// record how to turn them upright here; ignoring it shows portraits
// sideways. Anything unexpected means "no orientation" (1): a damaged EXIF
// block must never fail an otherwise good photo.
func jpegOrientation(b []byte) int {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return 1
	}
	i := 2
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return 1
		}
		marker := b[i+1]
		if marker == 0xDA || marker == 0xD9 { // start of scan or end: no more metadata
			return 1
		}
		size := int(binary.BigEndian.Uint16(b[i+2:]))
		if size < 2 || i+2+size > len(b) {
			return 1
		}
		seg := b[i+4 : i+2+size]
		if marker == 0xE1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + size
	}
	return 1
}

func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	ifd := int(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > len(t) {
		return 1
	}
	n := int(bo.Uint16(t[ifd:]))
	for k := range n {
		e := ifd + 2 + 12*k
		if e+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[e:]) == 0x0112 {
			if v := int(bo.Uint16(t[e+8:])); v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}

// orient turns img upright for EXIF orientation o.
func orient(img image.Image, o int) image.Image {
	switch o {
	case 2:
		return flip(toRGBA(img), true)
	case 3:
		return rotate(toRGBA(img), 180)
	case 4:
		return flip(toRGBA(img), false)
	case 5: // transpose
		return flip(rotate(toRGBA(img), 90), true)
	case 6:
		return rotate(toRGBA(img), 90)
	case 7: // transverse
		return flip(rotate(toRGBA(img), 270), true)
	case 8:
		return rotate(toRGBA(img), 270)
	}
	return img
}
