//go:build linux

package deploy

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The official postgres image's entrypoint (docker-library/postgres,
// 15/bookworm), kept unmodified beside the repository and never copied in.
var officialPostgres = filepath.Join(root, "../shared/upstream/postgres-official")

// pgBin holds the machine's PostgreSQL 15 programs (Debian: postgresql-15).
const pgBin = "/usr/lib/postgresql/15/bin"

// What postgres:15's Dockerfile sets around its entrypoint, as far as a
// container started from it sees. PATH puts PostgreSQL's programs first:
// the image finds psql in /usr/bin, where Debian's pg_wrapper picks this
// same binary. LANG: the image's en_US.utf8 is not on every machine;
// C.UTF-8 gives the same UTF8 encoding.
var (
	officialEntrypoint = []string{"docker-entrypoint.sh"}
	officialCmd        = []string{"postgres"}
	officialEnv        = []string{
		"PATH=" + pgBin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"PG_MAJOR=15",
		"LANG=C.UTF-8",
		"PGDATA=/var/lib/postgresql/data",
	}
)

// podIP is the container's address on the pod network. Clients connect to
// it rather than to 127.0.0.1, which the pg_hba.conf of initdb trusts
// without a password: imageproc, in another pod, is asked for one.
var podIP = net.IPv4(10, 244, 0, 10)

// TestPostgresStartsWithTheOfficialEntrypoint runs the official postgres
// image's entrypoint with the PostgreSQL StatefulSet's exact arguments,
// environment, user and volumes, as a container runtime would: in its own
// mount, PID, IPC and network namespaces, on a read-only root holding the
// image's /etc/passwd and directories, as UID 999 with no capabilities. The
// first start must initialise, create POSTGRES_DB and pass the readiness
// probe; imageproc's DATABASE_URL must then log in over TCP (a wrong
// password must not). SIGINT, the image's STOPSIGNAL, must stop it
// cleanly, and a second start must skip initialisation and serve the same
// data. Every build whose PostgreSQL container differs runs once.
func TestPostgresStartsWithTheOfficialEntrypoint(t *testing.T) {
	requirePostgresHarness(t)
	pods := map[string][]string{} // the JSON of a pgPod: the builds it comes from
	specs := map[string]pgPod{}
	var keys []string
	for _, b := range builds(t) {
		objs := load(t, b)
		sts, ok := find[*appsv1.StatefulSet](objs, "postgres")
		if !ok {
			continue // external-db: no PostgreSQL of ours
		}
		p, err := newPGPod(objs, sts)
		if err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		key, _ := json.Marshal(p)
		if _, seen := pods[string(key)]; !seen {
			keys = append(keys, string(key))
			specs[string(key)] = p
		}
		pods[string(key)] = append(pods[string(key)], b.name)
	}
	if len(keys) == 0 {
		t.Fatal("no build has the postgres StatefulSet")
	}
	for _, k := range keys {
		t.Run(pods[k][0], func(t *testing.T) {
			t.Logf("the PostgreSQL container of: %s", strings.Join(pods[k], ", "))
			specs[k].check(t)
		})
	}
}

// requirePostgresHarness skips the test where the machine cannot run it,
// and fails it under CI=true, where nothing may be skipped.
func requirePostgresHarness(t *testing.T) {
	t.Helper()
	missing := func(msg string) { t.Helper(); harnessMissing(t, msg) }
	for _, f := range []string{"docker-entrypoint.sh", "docker-ensure-initdb.sh"} {
		if _, err := os.Stat(filepath.Join(officialPostgres, f)); err != nil {
			missing(fmt.Sprintf("the official postgres image's entrypoint is missing (%v): it is expected, unmodified, in ../shared/upstream/postgres-official", err))
		}
	}
	for _, p := range []string{"initdb", "pg_ctl", "postgres", "psql", "pg_isready"} {
		if _, err := os.Stat(filepath.Join(pgBin, p)); err != nil {
			missing(fmt.Sprintf("%s/%s not found; install PostgreSQL 15 (Debian: postgresql-15)", pgBin, p))
		}
	}
	for _, p := range []string{"mount", "chroot", "setpriv", "nsenter"} {
		if _, err := exec.LookPath(p); err != nil {
			missing(fmt.Sprintf("%s not found; install util-linux, mount and coreutils", p))
		}
	}
	if os.Geteuid() != 0 {
		missing("running a container's namespaces and mounts needs root")
	}
}

func harnessMissing(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " — required under CI=true")
	}
	t.Skip(msg)
}

// pgPod is what a container runtime needs to run the PostgreSQL container
// of one build: everything the test derives from the manifests.
type pgPod struct {
	Argv                   []string
	Env                    []string
	UID, GID               int64
	Groups                 []int64
	FSGroup                *int64
	NoNewPrivs, DropAll    bool
	ReadOnlyRoot           bool
	Mounts                 []pgMount
	Probe                  []string // the readiness probe's command
	URLs                   []string // imageproc's DATABASE_URLs, aimed at this container
	User, Password, DBName string   // POSTGRES_USER, _PASSWORD, _DB as the entrypoint sees them
}

type pgMount struct {
	Volume, Path, SubPath string
	ReadOnly              bool
}

// newPGPod reads the postgres container of sts as the kubelet would hand
// it to the runtime, resolving its environment from the build's Secrets
// and ConfigMaps.
func newPGPod(objs []Object, sts *appsv1.StatefulSet) (pgPod, error) {
	spec := &sts.Spec.Template.Spec
	i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == "postgres" })
	if i < 0 {
		return pgPod{}, fmt.Errorf("StatefulSet/postgres has no container named postgres")
	}
	c := spec.Containers[i]
	if ref, _ := strings.CutPrefix(c.Image, "localhost/kubelab-"); !strings.HasPrefix(ref, "postgres:15") {
		return pgPod{}, fmt.Errorf("image %s: this test runs PostgreSQL 15 and the official image's 15/bookworm entrypoint", c.Image)
	}
	var p pgPod

	// The kubelet's rules: command replaces the ENTRYPOINT (and drops the
	// CMD), args replace the CMD.
	switch {
	case len(c.Command) > 0:
		p.Argv = append(slices.Clone(c.Command), c.Args...)
	case len(c.Args) > 0:
		p.Argv = append(slices.Clone(officialEntrypoint), c.Args...)
	default:
		p.Argv = append(slices.Clone(officialEntrypoint), officialCmd...)
	}

	env, err := containerEnv(objs, c)
	if err != nil {
		return pgPod{}, err
	}
	p.Env = mergeEnv(officialEnv, env)
	p.User, p.Password, p.DBName = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
	if p.User == "" {
		p.User = "postgres"
	}
	if p.DBName == "" {
		p.DBName = p.User
	}

	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	uid, gid := cmp.Or(sc.RunAsUser, psc.RunAsUser), cmp.Or(sc.RunAsGroup, psc.RunAsGroup)
	if uid == nil || gid == nil {
		return pgPod{}, fmt.Errorf("postgres: runAsUser and runAsGroup must be set (the test does not model the image's root start)")
	}
	p.UID, p.GID, p.FSGroup = *uid, *gid, psc.FSGroup
	if p.FSGroup != nil {
		p.Groups = append(p.Groups, *p.FSGroup)
	}
	p.Groups = append(p.Groups, psc.SupplementalGroups...)
	p.NoNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	p.DropAll = sc.Capabilities != nil && slices.Contains(sc.Capabilities.Drop, "ALL")
	p.ReadOnlyRoot = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem

	claims := map[string]bool{}
	for _, pvc := range sts.Spec.VolumeClaimTemplates {
		claims[pvc.Name] = true
	}
	for _, m := range c.VolumeMounts {
		j := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		switch {
		case claims[m.Name]:
		case j >= 0 && (spec.Volumes[j].EmptyDir != nil || spec.Volumes[j].PersistentVolumeClaim != nil):
		default:
			return pgPod{}, fmt.Errorf("volume %s: only emptyDir and PersistentVolumeClaim volumes are modelled", m.Name)
		}
		p.Mounts = append(p.Mounts, pgMount{Volume: m.Name, Path: m.MountPath, SubPath: m.SubPath, ReadOnly: m.ReadOnly})
	}

	if c.ReadinessProbe == nil || c.ReadinessProbe.Exec == nil {
		return pgPod{}, fmt.Errorf("postgres: the test runs an exec readiness probe, and there is none")
	}
	p.Probe = c.ReadinessProbe.Exec.Command

	p.URLs, err = databaseURLs(objs, c)
	return p, err
}

// containerEnv resolves a container's environment from the build.
func containerEnv(objs []Object, c corev1.Container) (map[string]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("%s: envFrom is not modelled", c.Name)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		v, err := envValue(objs, e, env)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", c.Name, e.Name, err)
		}
		env[e.Name] = v
	}
	return env, nil
}

// envValue is the value the kubelet gives one variable.
// earlier holds the variables defined before it, which $(VAR) may name.
func envValue(objs []Object, e corev1.EnvVar, earlier map[string]string) (string, error) {
	switch {
	case e.ValueFrom == nil:
		return expandEnv(e.Value, earlier), nil
	case e.ValueFrom.SecretKeyRef != nil:
		ref := e.ValueFrom.SecretKeyRef
		if s, ok := find[*corev1.Secret](objs, ref.Name); ok {
			if v, ok := s.StringData[ref.Key]; ok {
				return v, nil
			}
			if v, ok := s.Data[ref.Key]; ok {
				return string(v), nil
			}
		}
		return "", fmt.Errorf("no key %s in Secret %s", ref.Key, ref.Name)
	case e.ValueFrom.ConfigMapKeyRef != nil:
		ref := e.ValueFrom.ConfigMapKeyRef
		if cm, ok := find[*corev1.ConfigMap](objs, ref.Name); ok {
			if v, ok := cm.Data[ref.Key]; ok {
				return v, nil
			}
		}
		return "", fmt.Errorf("no key %s in ConfigMap %s", ref.Key, ref.Name)
	}
	return "", fmt.Errorf("only values, Secret and ConfigMap keys are modelled")
}

// expandEnv does to a value what the kubelet does: $(VAR) of a variable
// defined earlier becomes its value, $$ a single $, and any other
// reference stays as written.
func expandEnv(s string, earlier map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "$$"):
			b.WriteByte('$')
			i++
		case strings.HasPrefix(rest, "$("):
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				b.WriteString(rest)
				return b.String()
			}
			if v, ok := earlier[rest[2:end]]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(rest[:end+1])
			}
			i += end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// mergeEnv lays a container's environment over the image's, as the
// runtime does, in a stable order.
func mergeEnv(image []string, container map[string]string) []string {
	var out []string
	for _, kv := range image {
		if k, _, _ := strings.Cut(kv, "="); !hasKey(container, k) {
			out = append(out, kv)
		}
	}
	keys := make([]string, 0, len(container))
	for k := range container {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, k+"="+container[k])
	}
	return out
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// databaseURLs returns every DATABASE_URL of imageproc's containers (its
// migrate initContainer's first), aimed at the test's pod and at the port
// of the postgres container they reach: the URL's own port through a
// headless Service, its targetPort through a ClusterIP one.
func databaseURLs(objs []Object, pg corev1.Container) ([]string, error) {
	d, ok := find[*appsv1.Deployment](objs, "imageproc")
	if !ok {
		return nil, fmt.Errorf("no Deployment imageproc: nothing connects to PostgreSQL")
	}
	var urls []string
	for _, c := range containers(&d.Spec.Template.Spec) {
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "DATABASE_URL" })
		if i < 0 {
			continue
		}
		raw, err := envValue(objs, c.Env[i], nil)
		if err == nil && strings.Contains(raw, "$(") {
			err = fmt.Errorf("$(VAR) references in it are not modelled")
		}
		if err != nil {
			return nil, fmt.Errorf("imageproc %s: DATABASE_URL: %w", c.Name, err)
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("imageproc %s: DATABASE_URL: %w", c.Name, err)
		}
		svc, ok := find[*corev1.Service](objs, u.Hostname())
		if !ok {
			return nil, fmt.Errorf("imageproc %s: DATABASE_URL names host %s, which is no Service of this build", c.Name, u.Hostname())
		}
		target, _ := strconv.Atoi(cmp.Or(u.Port(), "5432"))
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			i := slices.IndexFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return int(sp.Port) == target })
			if i < 0 {
				return nil, fmt.Errorf("imageproc %s: DATABASE_URL's port %d is no port of Service %s", c.Name, target, svc.Name)
			}
			tp := svc.Spec.Ports[i].TargetPort
			target = tp.IntValue()
			if j := slices.IndexFunc(pg.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == tp.StrVal }); tp.StrVal != "" && j >= 0 {
				target = int(pg.Ports[j].ContainerPort)
			}
		}
		if !slices.ContainsFunc(pg.Ports, func(cp corev1.ContainerPort) bool { return int(cp.ContainerPort) == target }) {
			return nil, fmt.Errorf("imageproc %s: DATABASE_URL reaches port %d of the postgres container, which it does not declare", c.Name, target)
		}
		u.Host = net.JoinHostPort(podIP.String(), strconv.Itoa(target))
		if !slices.Contains(urls, u.String()) {
			urls = append(urls, u.String())
		}
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("imageproc sets no DATABASE_URL")
	}
	return urls, nil
}

// check starts the container twice on the same volumes.
func (p pgPod) check(t *testing.T) {
	// A deadline against a hang, not a measure of speed.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	rootfs := p.rootfs(t, dir)
	mounts := p.mountArgs(t, dir)

	first := p.start(t, rootfs, mounts)
	first.waitReady(ctx, t)
	for _, u := range p.URLs {
		got := first.psql(ctx, t, u, "SELECT current_user || ' ' || current_database()")
		if want := p.User + " " + p.DBName; got != want {
			t.Fatalf("imageproc's DATABASE_URL logged in as %q, want %q (POSTGRES_USER, POSTGRES_DB)", got, want)
		}
		wrong, _ := url.Parse(u)
		wrong.User = url.UserPassword(wrong.User.Username(), "not-"+p.Password)
		if out, err := first.psqlErr(ctx, wrong.String(), "SELECT 1"); err == nil || !strings.Contains(out, "password authentication failed") {
			t.Fatalf("a wrong password was not refused (%v): %s", err, out)
		}
	}
	first.psql(ctx, t, p.URLs[0], "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('from the first start')")
	first.stop(ctx, t)

	second := p.start(t, rootfs, mounts)
	second.waitReady(ctx, t)
	// The probe runs every few seconds for the pod's life: it must not
	// fill the server's log (as it does asking for a role that is not
	// there).
	if out, err := second.exec(ctx, p.Probe); err != nil {
		t.Fatalf("the readiness probe failed on a ready server: %v\n%s", err, out)
	}
	if log := second.logs.String(); strings.Contains(log, "FATAL") {
		t.Errorf("the readiness probe makes the server log errors:\n%s", log)
	}
	if got := second.psql(ctx, t, p.URLs[0], "SELECT note FROM kept"); got != "from the first start" {
		t.Fatalf("after a restart the database holds %q, want the first start's row", got)
	}
	second.stop(ctx, t)
}

// rootfs builds the image's root filesystem in dir/rootfs: the machine's
// /usr (bound read-only at start), the directories and users the official
// Dockerfile creates, and a mount point for every volume.
func (p pgPod) rootfs(t *testing.T, dir string) string {
	t.Helper()
	fs := filepath.Join(dir, "rootfs")
	mkdir := func(path string, mode os.FileMode, uid int) {
		t.Helper()
		full := filepath.Join(fs, path)
		if err := os.MkdirAll(full, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(full, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"/", "/usr", "/etc", "/dev", "/proc", "/var/run", "/var/lib", "/docker-entrypoint-initdb.d"} {
		mkdir(d, 0o755, 0)
	}
	mkdir("/tmp", 0o777|os.ModeSticky, 0)
	mkdir("/var/lib/postgresql", 0o777|os.ModeSticky, 999)
	mkdir("/var/lib/postgresql/data", 0o777|os.ModeSticky, 999)
	mkdir("/var/run/postgresql", 0o777|os.ModeSetgid|os.ModeSticky, 999)
	for _, m := range p.Mounts {
		if _, err := os.Stat(filepath.Join(fs, m.Path)); os.IsNotExist(err) {
			mkdir(m.Path, 0o755, 0)
		}
	}
	// Debian's merged /usr, or the machine's own /bin and /lib.
	for _, d := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		fi, err := os.Lstat("/" + d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink("/" + d)
			if err := os.Symlink(target, filepath.Join(fs, d)); err != nil {
				t.Fatal(err)
			}
		default:
			mkdir("/"+d, 0o755, 0)
		}
	}
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(fs, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\npostgres:x:999:999::/var/lib/postgresql:/bin/bash\n")
	write("/etc/group", "root:x:0:\npostgres:x:999:\n")
	write("/etc/nsswitch.conf", "passwd: files\ngroup: files\n")
	if cache, err := os.ReadFile("/etc/ld.so.cache"); err == nil {
		write("/etc/ld.so.cache", string(cache))
	}
	return fs
}

// mountArgs lists what the container's init mounts before it enters root:
// the machine's /usr, the entrypoint where the image installs it, the
// image's sample configuration, /dev, /proc and the volumes.
func (p pgPod) mountArgs(t *testing.T, dir string) []string {
	t.Helper()
	bin := filepath.Join(dir, "usr-local-bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"docker-entrypoint.sh", "docker-ensure-initdb.sh"} {
		script, err := os.ReadFile(filepath.Join(officialPostgres, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, f), script, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The official Dockerfile's one change to the sample configuration,
	// which initdb copies: listen on every address.
	const sampleAt = "/usr/share/postgresql/15/postgresql.conf.sample"
	sample, err := os.ReadFile(sampleAt)
	if err != nil {
		t.Fatal(err)
	}
	listen := regexp.MustCompile(`(?m)^#?(listen_addresses)\s*=\s*\S+.*$`)
	if !listen.Match(sample) {
		t.Fatalf("%s has no listen_addresses line for the official image's edit", sampleAt)
	}
	samplePath := filepath.Join(dir, "postgresql.conf.sample")
	if err := os.WriteFile(samplePath, listen.ReplaceAll(sample, []byte("$1 = '*'")), 0o644); err != nil {
		t.Fatal(err)
	}

	args := []string{"ro", "/usr", "/usr", "ro", bin, "/usr/local/bin", "ro", samplePath, sampleAt}
	for _, d := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		if fi, err := os.Lstat("/" + d); err == nil && fi.IsDir() {
			args = append(args, "ro", "/"+d, "/"+d)
		}
	}
	args = append(args, "bind", "/dev", "/dev", "tmpfs", "-", "/dev/shm", "proc", "-", "/proc")

	// Volumes as the kubelet and the usual provisioners leave them: root's
	// and open to all, and with an fsGroup, that group's (setgid).
	vols := map[string]string{}
	for _, m := range p.Mounts {
		src, ok := vols[m.Volume]
		if !ok {
			src = filepath.Join(dir, "volumes", m.Volume)
			if err := os.MkdirAll(src, 0o755); err != nil {
				t.Fatal(err)
			}
			mode, gid := os.FileMode(0o777), 0
			if p.FSGroup != nil {
				mode, gid = mode|os.ModeSetgid, int(*p.FSGroup)
			}
			if err := os.Chown(src, 0, gid); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(src, mode); err != nil {
				t.Fatal(err)
			}
			vols[m.Volume] = src
		}
		if m.SubPath != "" {
			src = filepath.Join(src, m.SubPath)
			if err := os.MkdirAll(src, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		kind := "bind"
		if m.ReadOnly {
			kind = "ro"
		}
		args = append(args, kind, src, m.Path)
	}
	return args
}

// containerInit runs as PID 1 of the container's namespaces: it makes its
// mounts private, mounts each "KIND SOURCE TARGET" triple under the root
// (ro: bound read-only), makes the root read-only if asked, and enters it.
const containerInit = `set -eu
root=$1 rootmode=$2
shift 2
mount --make-rprivate /
mount --bind "$root" "$root"
while [ "$1" != -- ]; do
	case $1 in
	bind) mount --rbind "$2" "$root$3" ;;
	ro) mount --rbind -o ro "$2" "$root$3" ;;
	tmpfs) mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root$3" ;;
	proc) mount -t proc proc "$root$3" ;;
	*) echo "containerInit: unknown mount $1" >&2; exit 1 ;;
	esac
	shift 3
done
shift
if [ "$rootmode" = ro ]; then mount -o remount,bind,ro "$root"; fi
exec chroot "$root" "$@"
`

// credentials is setpriv's switch to the container's user: its UID, GID
// and supplementary groups, no new privileges, no capabilities.
func (p pgPod) credentials() []string {
	args := []string{"setpriv", fmt.Sprintf("--reuid=%d", p.UID), fmt.Sprintf("--regid=%d", p.GID)}
	if len(p.Groups) == 0 {
		args = append(args, "--clear-groups")
	} else {
		var gs []string
		for _, g := range p.Groups {
			gs = append(gs, strconv.FormatInt(g, 10))
		}
		args = append(args, "--groups="+strings.Join(gs, ","))
	}
	if p.NoNewPrivs {
		args = append(args, "--no-new-privs")
	}
	if p.DropAll {
		args = append(args, "--inh-caps=-all", "--bounding-set=-all")
	}
	return append(args, "--")
}

// container is one start of the PostgreSQL container.
type container struct {
	pod  pgPod
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit, once done
}

func (p pgPod) start(t *testing.T, rootfs string, mounts []string) *container {
	t.Helper()
	rootMode := "rw"
	if p.ReadOnlyRoot {
		rootMode = "ro"
	}
	args := append([]string{"-c", containerInit, "containerInit", rootfs, rootMode}, mounts...)
	args = append(append(append(args, "--"), p.credentials()...), p.Argv...)
	c := &container{pod: p, logs: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command("/bin/sh", args...)
	c.cmd.Env = p.Env
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	c.cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := c.cmd.Start(); errors.Is(err, syscall.EPERM) {
		harnessMissing(t, fmt.Sprintf("new namespaces are not permitted here (%v): run as root with CAP_SYS_ADMIN", err))
	} else if err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	// PID 1 ending takes every other process of its namespace with it (the
	// entrypoint's temporary server too).
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			t.Logf("container log:\n%s", c.logs)
		}
	})
	if err := podNetwork(c.cmd.Process.Pid); err != nil {
		t.Fatalf("the pod network: %v", err)
	}
	return c
}

// podNetwork does what the CNI plugin does for a pod: brings up the
// loopback of pid's network namespace and gives it podIP.
func podNetwork(pid int) error {
	errc := make(chan error, 1)
	go func() {
		// This thread enters the container's network namespace and goes
		// back before other goroutines may run on it; should it fail to go
		// back, it stays locked and ends with this goroutine.
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer own.Close()
		err = inNetns(pid, configurePodNetwork)
		if back := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); back != nil {
			errc <- fmt.Errorf("back to the test's network namespace: %w", back)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// inNetns runs f with the calling thread in pid's network namespace.
func inNetns(pid int, f func() error) error {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns: %w", err)
	}
	return f()
}

func configurePodNetwork() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	lo, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, lo); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	lo.SetUint16(lo.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	for _, set := range []struct {
		req  uint
		addr net.IP
	}{{unix.SIOCSIFADDR, podIP}, {unix.SIOCSIFNETMASK, net.IPv4bcast}} {
		alias, err := unix.NewIfreq("lo:pod")
		if err != nil {
			return err
		}
		if err := alias.SetInet4Addr(set.addr.To4()); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, set.req, alias); err != nil {
			return fmt.Errorf("%s on lo: %w", set.addr, err)
		}
	}
	return nil
}

// exec runs argv inside the container as the kubelet runs an exec probe:
// its namespaces, root, user and environment.
func (c *container) exec(ctx context.Context, argv []string) ([]byte, error) {
	args := []string{"--target", strconv.Itoa(c.cmd.Process.Pid), "--mount", "--pid", "--ipc", "--net", "--root", "--wd", "--"}
	cmd := exec.CommandContext(ctx, "nsenter", append(append(args, c.pod.credentials()...), argv...)...)
	cmd.Env = c.pod.Env
	return cmd.CombinedOutput()
}

// waitReady runs the readiness probe until it passes.
func (c *container) waitReady(ctx context.Context, t *testing.T) {
	t.Helper()
	for {
		select {
		case <-c.done:
			t.Fatalf("the container exited before its readiness probe passed: %v", c.err)
		default:
		}
		out, err := c.exec(ctx, c.pod.Probe)
		if err == nil {
			return
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			t.Fatalf("the readiness probe %q never passed: %v\n%s", c.pod.Probe, err, out)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// psql runs one statement as imageproc would connect: over TCP to the
// pod's address, from within its network.
func (c *container) psql(ctx context.Context, t *testing.T, dbURL, sql string) string {
	t.Helper()
	out, err := c.psqlErr(ctx, dbURL, sql)
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return out
}

func (c *container) psqlErr(ctx context.Context, dbURL, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, "nsenter", "--target", strconv.Itoa(c.cmd.Process.Pid), "--net", "--",
		filepath.Join(pgBin, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dbURL, "-c", sql)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGCONNECT_TIMEOUT=10"} // none of the test's own PG* variables
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// stop sends the image's STOPSIGNAL, as the kubelet does, and expects a
// clean exit.
func (c *container) stop(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("after SIGINT the container exited with %v, want 0", c.err)
		}
	case <-ctx.Done():
		t.Fatal("the container did not stop on SIGINT")
	}
}

// syncBuffer collects output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestExpandEnv(t *testing.T) {
	earlier := map[string]string{"USER": "kubelab", "DB": "photos"}
	for in, want := range map[string]string{
		"$(USER)":          "kubelab",
		"$(USER)@$(DB)":    "kubelab@photos",
		"$(MISSING)":       "$(MISSING)",
		"$$(USER)":         "$(USER)",
		"cost: $5":         "cost: $5",
		"$(USER":           "$(USER",
		"a$$b":             "a$b",
		"plain":            "plain",
		"$(DB)/$(MISSING)": "photos/$(MISSING)",
	} {
		if got := expandEnv(in, earlier); got != want {
			t.Errorf("expandEnv(%q) = %q, want %q", in, got, want)
		}
	}
}
