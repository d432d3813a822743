package live

import (
	"slices"
	"strings"
	"testing"

	"github.com/kubelab/kubelab/services/platform/config"
)

func TestParse(t *testing.T) {
	const capBytes = 50 << 20
	tests := []struct {
		name     string
		files    map[string]string
		check    func(Settings) bool
		problems int
	}{
		{"defaults", nil, func(s Settings) bool {
			return s.Title == "kubelab photo lab" && s.UploadLimit == capBytes && len(s.Features) == 3
		}, 0},
		{"values applied", map[string]string{KeyTitle: " Night lab \n", KeyBanner: "maintenance at 6", KeyAccent: "#AA00ff", KeyUploadLimit: "2MiB", KeyFeatures: "upload, batch"},
			func(s Settings) bool {
				return s.Title == "Night lab" && s.Banner == "maintenance at 6" && s.Accent == "#aa00ff" &&
					s.UploadLimit == 2<<20 && s.Enabled(FeatureBatch) && !s.Enabled(FeatureTransforms)
			}, 0},
		{"empty features file turns all off", map[string]string{KeyFeatures: ""}, func(s Settings) bool { return len(s.Features) == 0 }, 0},
		{"bad colour keeps default", map[string]string{KeyAccent: "red"}, func(s Settings) bool { return s.Accent == "" }, 1},
		{"limit above cap keeps cap", map[string]string{KeyUploadLimit: "1GiB"}, func(s Settings) bool { return s.UploadLimit == capBytes }, 1},
		{"bad limit keeps cap", map[string]string{KeyUploadLimit: "lots"}, func(s Settings) bool { return s.UploadLimit == capBytes }, 1},
		{"unknown feature reported, known kept", map[string]string{KeyFeatures: "upload,teleport"},
			func(s Settings) bool { return slices.Equal(s.Features, []string{FeatureUpload}) }, 1},
		{"long title rejected", map[string]string{KeyTitle: strings.Repeat("x", 81)}, func(s Settings) bool { return s.Title == "kubelab photo lab" }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Parse(config.Snapshot{Files: tt.files}, capBytes)
			if !tt.check(s) {
				t.Errorf("unexpected settings %+v", s)
			}
			if len(s.Problems) != tt.problems {
				t.Errorf("problems = %q, want %d", s.Problems, tt.problems)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{"1": 1, "1048576": 1 << 20, "20MiB": 20 << 20, "3 KiB": 3 << 10, "1GiB": 1 << 30}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-5", "1.5MiB", "MiB", "5TB", "99999999999999999999"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}
