package pod

import (
	"reflect"
	"testing"
)

func TestParseLabels(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Label
	}{
		{"empty", "", nil},
		{"kubelet format, sorted", "app.kubernetes.io/name=\"frontend\"\npod-template-hash=\"7d9f\"\napp.kubernetes.io/component=\"web\"\n",
			[]Label{{"app.kubernetes.io/component", "web"}, {"app.kubernetes.io/name", "frontend"}, {"pod-template-hash", "7d9f"}}},
		{"escaped value", `note="a \"quoted\" word"`, []Label{{"note", `a "quoted" word`}}},
		{"junk skipped", "no-equals\n=\"x\"\nk=unquoted\nok=\"1\"", []Label{{"ok", "1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseLabels(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseLabels(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestCountStartSurvivesRestarts(t *testing.T) {
	dir := t.TempDir()
	for want := 1; want <= 3; want++ {
		got, err := CountStart(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("start %d counted as %d", want, got)
		}
	}
	if n, err := CountStart(""); err != nil || n != 1 {
		t.Fatalf("without a state dir: %d, %v; want 1", n, err)
	}
}
