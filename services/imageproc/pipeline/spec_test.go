package pipeline_test

import (
	"strings"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/pipeline"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in      string
		wantOps int
		wantErr string
	}{
		{in: "thumbnail(256)|format(jpeg,85)", wantOps: 1},
		{in: "resize(800,0,fit)|grayscale|blur(1.5)|format(png)", wantOps: 3},
		{in: "crop(0,0,10,10)|rotate(90)|flip(h)|sharpen(1,0.5)|format(jpeg,70)", wantOps: 4},
		{in: "thumbnail(256)", wantErr: "want operations then format"},
		{in: "thumbnail(0)|format(jpeg,85)", wantErr: "operations[0]: thumbnail size"},
		{in: "rotate(45)|format(jpeg,85)", wantErr: "rotate degrees"},
		{in: "resize(10,10,stretch)|format(png)", wantErr: "resize mode"},
		{in: "resize(0,0,fit)|format(png)", wantErr: "width or a height"},
		{in: "blur(0)|format(png)", wantErr: "blur sigma"},
		{in: "blur(1.50)|format(png)", wantErr: "not canonical"},
		{in: "thumbnail(256)|format(jpeg,101)", wantErr: "quality"},
		{in: "thumbnail(256)|format(gif)", wantErr: "format must be"},
		{in: "explode(1)|format(png)", wantErr: "unknown operation"},
		{in: "thumbnail(256|format(png)", wantErr: "missing )"},
		{in: "grayscale(1)|format(png)", wantErr: "no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := pipeline.ParseSpec(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Ops) != tt.wantOps || s.String() != tt.in {
				t.Fatalf("got %d ops, String %q", len(s.Ops), s.String())
			}
		})
	}
}

func TestNormalizeMakesEqualKeys(t *testing.T) {
	a := pipeline.Spec{Ops: []pipeline.Op{pipeline.Thumbnail{Size: 256}}}.Normalize()
	b := pipeline.Spec{Ops: []pipeline.Op{pipeline.Thumbnail{Size: 256}}, Format: pipeline.JPEG, Quality: 85}.Normalize()
	if a.String() != b.String() || a.String() != "thumbnail(256)|format(jpeg,85)" {
		t.Fatalf("%q vs %q", a, b)
	}
	p := pipeline.Spec{Ops: []pipeline.Op{pipeline.Grayscale{}}, Format: pipeline.PNG, Quality: 50}.Normalize()
	if p.String() != "grayscale|format(png)" {
		t.Fatalf("png quality should be dropped: %q", p)
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"thumbnail(256)|format(jpeg,85)", "resize(1,2,fill)|format(png)", "sharpen(1e-3,2)|format(png)", "||", "("} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := pipeline.ParseSpec(in)
		if err != nil {
			return
		}
		// Anything accepted is canonical and valid.
		if s.String() != in {
			t.Fatalf("accepted %q but prints %q", in, s.String())
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted invalid %q: %v", in, err)
		}
	})
}
