package backend

import (
	"strings"
	"testing"
	"time"
)

func TestDialChecksTheTargetFitsTheBalancing(t *testing.T) {
	tests := []struct {
		target, balancing, wantErr string
	}{
		{"dns:///imageproc-headless:50051", RoundRobin, ""},
		{"ipv4:127.0.0.1:1,127.0.0.1:2", RoundRobin, ""},
		{"imageproc:50051", PickFirst, ""},
		{"imageproc:50051", RoundRobin, "IMAGEPROC_ADDR"},
		{"dns:///imageproc:50051", "random", "IMAGEPROC_BALANCING"},
	}
	for _, tt := range tests {
		c, err := Dial(Options{Target: tt.target, Balancing: tt.balancing, Timeout: time.Second, StreamTimeout: time.Second})
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Dial(%q, %s): %v", tt.target, tt.balancing, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Dial(%q, %s) = %v, want an error naming %s", tt.target, tt.balancing, err, tt.wantErr)
		}
		if c != nil {
			_ = c.Close()
		}
	}
}
