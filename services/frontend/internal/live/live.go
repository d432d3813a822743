// Package live holds the settings a running frontend takes from its
// ConfigMap volume. kubelet rewrites the volume when the ConfigMap changes
// (within its sync period, about a minute by default); the frontend applies
// the new values at once, with no restart, which is the lesson: a
// ConfigMap mounted as files is live, one used as environment is not.
package live

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/kubelab/kubelab/services/platform/config"
)

// File names in the ConfigMap (its keys).
const (
	KeyTitle       = "title"
	KeyBanner      = "banner"
	KeyAccent      = "accent-color"
	KeyUploadLimit = "upload-limit"
	KeyFeatures    = "features"
)

// Feature flags, listed comma-separated in the features file. With no
// features file every feature is on.
const (
	FeatureUpload     = "upload"
	FeatureTransforms = "transforms"
	FeatureBatch      = "batch"
)

var allFeatures = []string{FeatureUpload, FeatureTransforms, FeatureBatch}

// Settings are the values in force.
type Settings struct {
	Title  string
	Banner string
	// Accent is a CSS colour "#rrggbb"; empty means the version's colour.
	Accent      string
	UploadLimit int64
	Features    []string
	// Fingerprint identifies the ConfigMap content these came from.
	Fingerprint string
	// Problems lists values that were rejected (the default was kept).
	Problems []string
}

// Enabled reports whether feature is on.
func (s Settings) Enabled(feature string) bool { return slices.Contains(s.Features, feature) }

var hexColour = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// Parse turns a snapshot of the ConfigMap directory into Settings. A bad
// value never stops the pod: it is reported in Problems (shown on the
// cluster panel and logged) and its default is used, so a typo in a live
// edit cannot take the site down. maxUpload is the hard cap from the
// environment; the live limit can only lower it.
func Parse(snap config.Snapshot, maxUpload int64) Settings {
	s := Settings{
		Title:       "kubelab photo lab",
		UploadLimit: maxUpload,
		Features:    slices.Clone(allFeatures),
		Fingerprint: snap.Fingerprint(),
	}
	bad := func(key, format string, args ...any) {
		s.Problems = append(s.Problems, key+": "+fmt.Sprintf(format, args...))
	}
	if v := snap.Get(KeyTitle, ""); v != "" {
		if len(v) > 80 {
			bad(KeyTitle, "longer than 80 characters")
		} else {
			s.Title = v
		}
	}
	if v := snap.Get(KeyBanner, ""); len(v) > 300 {
		bad(KeyBanner, "longer than 300 characters")
	} else {
		s.Banner = v
	}
	if v := snap.Get(KeyAccent, ""); v != "" {
		if hexColour.MatchString(v) {
			s.Accent = strings.ToLower(v)
		} else {
			bad(KeyAccent, "%q is not a #rrggbb colour", v)
		}
	}
	if v := snap.Get(KeyUploadLimit, ""); v != "" {
		switch n, err := ParseSize(v); {
		case err != nil:
			bad(KeyUploadLimit, "%v", err)
		case n > maxUpload:
			bad(KeyUploadLimit, "%s is above MAX_UPLOAD_BYTES=%d; using %d", v, maxUpload, maxUpload)
		default:
			s.UploadLimit = n
		}
	}
	if v, ok := snap.Files[KeyFeatures]; ok {
		s.Features = nil
		for f := range strings.SplitSeq(v, ",") {
			switch f = strings.TrimSpace(f); {
			case f == "":
			case slices.Contains(allFeatures, f):
				if !slices.Contains(s.Features, f) {
					s.Features = append(s.Features, f)
				}
			default:
				bad(KeyFeatures, "unknown feature %q (known: %s)", f, strings.Join(allFeatures, ", "))
			}
		}
	}
	return s
}

// ParseSize reads a byte count: a plain number or one with a KiB, MiB or
// GiB suffix, as people write in a ConfigMap.
func ParseSize(v string) (int64, error) {
	num, mult := v, int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			num, mult = strings.TrimSpace(n), m
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a positive size like 1048576 or 20MiB", v)
	}
	return n * mult, nil
}
