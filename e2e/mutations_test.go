package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMutationPatchesStillApply keeps e2e/mutations honest between mutation runs: each
// patch must apply to the current tree the way run.sh applies it, and the broken tree must
// build, or a later run would report a patch as caught when it never ran.
func TestMutationPatchesStillApply(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("patch(1) is not installed")
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	patches, err := filepath.Glob(filepath.Join(root, "e2e", "mutations", "*.patch"))
	require.NoError(t, err)
	require.NotEmpty(t, patches)
	files, err := exec.Command("git", "-C", root, "ls-files", "-co", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	for _, p := range patches {
		t.Run(strings.TrimSuffix(filepath.Base(p), ".patch"), func(t *testing.T) {
			dir := t.TempDir()
			copyFiles(t, root, strings.Fields(string(files)), dir)
			out, err := exec.Command("patch", "-s", "-p1", "-F0", "-d", dir, "-i", p).CombinedOutput()
			require.NoError(t, err, "patch does not apply exactly: %s", out)
			build := exec.Command("go", "build", "-o", os.DevNull, "./cmd/wxhub")
			build.Dir = dir
			out, err = build.CombinedOutput()
			require.NoError(t, err, "the patched tree does not build: %s", out)
			if pkg := headerTestPackage(t, p); pkg != "" {
				vet := exec.Command("go", "vet", pkg)
				vet.Dir = dir
				out, err = vet.CombinedOutput()
				require.NoError(t, err, "the tests the patch names do not build on the patched tree: %s", out)
			}
		})
	}
}

// headerTestPackage is the package of the test a patch names on its "wxhub-test:" line
// (run.sh runs that test instead of the campaign), or "".
func headerTestPackage(t *testing.T, patch string) string {
	t.Helper()
	data, err := os.ReadFile(patch)
	require.NoError(t, err)
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, "--- ") {
			break
		}
		if args, ok := strings.CutPrefix(line, "wxhub-test: "); ok {
			return strings.Fields(args)[0]
		}
	}
	return ""
}

// copyFiles copies the named files of root into dir, keeping their paths.
func copyFiles(t *testing.T, root string, files []string, dir string) {
	t.Helper()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the working tree, not yet in git
		}
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
}
