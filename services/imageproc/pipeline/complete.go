package pipeline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// CheckComplete verifies, without decoding, that an image of the given
// format (as Probe reported it) ends where its format says it ends. It
// catches the common damage, a truncated upload, while reading only the
// file's tail, so accepting a 20 MB photo costs no 20 MB of pixels.
func CheckComplete(r io.ReaderAt, size int64, format string) error {
	tail := make([]byte, min(size, 16))
	if _, err := r.ReadAt(tail, size-int64(len(tail))); err != nil {
		return fmt.Errorf("%w: read tail: %w", ErrInvalid, err)
	}
	ok := false
	switch format {
	case "jpeg":
		// Cameras sometimes pad after EOI; accept EOI followed by zeros.
		ok = bytes.Contains(tail, []byte{0xFF, 0xD9}) && len(bytes.TrimRight(tail[bytes.LastIndex(tail, []byte{0xFF, 0xD9})+2:], "\x00")) == 0
	case "png":
		ok = bytes.HasSuffix(tail, []byte("IEND\xAE\x42\x60\x82"))
	case "gif":
		ok = tail[len(tail)-1] == 0x3B
	case "webp":
		var head [8]byte
		if _, err := r.ReadAt(head[:], 0); err == nil {
			ok = int64(binary.LittleEndian.Uint32(head[4:]))+8 <= size
		}
	}
	if !ok {
		return fmt.Errorf("%w: %s file is truncated or has trailing data", ErrInvalid, format)
	}
	return nil
}
