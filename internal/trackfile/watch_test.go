package trackfile

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// await reads the file at path each time w says it may have changed,
// until it holds want. The timeout only ends a hang; nothing ticks: the
// Watcher is not polling, so every wake-up is an inotify event.
func await(t *testing.T, w *Watcher, path string, want int64, what string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if v, _ := Read(path); v == want {
			return
		}
		select {
		case <-w.C():
		case <-timeout:
			v, _ := Read(path)
			t.Fatalf("%s: the file reads %d, want %d, and no event came", what, v, want)
		}
	}
}

// TestWatchSeesEveryChange: a track file written, replaced by a rename,
// removed and created again is seen each time, from inotify alone.
func TestWatchSeesEveryChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	other := filepath.Join(dir, "other")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := Watch(ctx, []string{path, other}, slog.New(slog.DiscardHandler))
	if w.Polling() {
		t.Fatal("the Watcher polls in a directory that exists")
	}

	steps := []struct {
		what string
		do   func() error
		want int64
	}{
		{"created", func() error { return os.WriteFile(path, []byte("3\n"), 0o644) }, 3},
		{"rewritten", func() error { return os.WriteFile(path, []byte("4\n"), 0o644) }, 4},
		{"replaced by a rename", func() error {
			tmp := filepath.Join(dir, "state.tmp")
			if err := os.WriteFile(tmp, []byte("5\n"), 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, path)
		}, 5},
		{"removed (reads as 0)", func() error { return os.Remove(path) }, 0},
		{"created again", func() error { return os.WriteFile(path, []byte("0x10"), 0o644) }, 16},
		{"moved away", func() error { return os.Rename(path, filepath.Join(dir, "gone")) }, 0},
	}
	for _, s := range steps {
		// drain a wake-up left from the step before
		select {
		case <-w.C():
		default:
		}
		if err := s.do(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.C():
		case <-time.After(10 * time.Second): // a hang, not a timing bound
			t.Fatalf("%s: no event", s.what)
		}
		await(t, w, path, s.want, s.what)
	}
	if w.Polling() {
		t.Error("the Watcher fell back to polling")
	}
}

// TestWatchFallsBackToPolling: a file whose directory does not exist yet
// is read every FallbackPoll, so that it is seen once it is made.
func TestWatchFallsBackToPolling(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	path := filepath.Join(dir, "state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := Watch(ctx, []string{path}, slog.New(slog.DiscardHandler))
	if !w.Polling() {
		t.Fatal("watching a file in a missing directory: not polling")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("7"), 0o644); err != nil {
		t.Fatal(err)
	}
	// a file created in a directory made later: only a poll sees it
	for timeout := time.After(10 * time.Second); ; {
		select {
		case <-w.C():
		case <-timeout:
			t.Fatal("a polling Watcher never woke its owner")
		}
		if v, _ := Read(path); v == 7 {
			break
		}
	}
	watchesAgain(t, w, path)
}

// watchesAgain waits for w to stop polling, then checks that a change of
// the file at path comes as an event.
func watchesAgain(t *testing.T, w *Watcher, path string) {
	t.Helper()
	for timeout := time.After(10 * time.Second); w.Polling(); {
		select {
		case <-w.C():
		case <-timeout:
			t.Fatal("the directory exists and the Watcher still polls")
		}
	}
	shared.mu.Lock()
	watched := shared.subs[filepath.Dir(path)][w]
	shared.mu.Unlock()
	if !watched {
		t.Fatal("not polling, and the directory is not watched")
	}
	select { // drain the wake-up that ended the polling
	case <-w.C():
	default:
	}
	if err := os.WriteFile(path, []byte("9"), 0o644); err != nil {
		t.Fatal(err)
	}
	select { // no poll wakes it now: this is the event
	case <-w.C():
	case <-time.After(10 * time.Second): // a hang, not a timing bound
		t.Fatal("written once watched again: no event")
	}
	if v, _ := Read(path); v != 9 || w.Polling() {
		t.Fatalf("after the event: the file reads %d (want 9), polling %v", v, w.Polling())
	}
}

// TestWatchDirectoryRemoved: a directory removed under the Watcher makes
// it poll, and says so, until the directory is made again.
func TestWatchDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := Watch(ctx, []string{path}, slog.New(slog.DiscardHandler))
	if err := os.WriteFile(path, []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	await(t, w, path, 2, "written")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	await(t, w, path, 0, "directory removed")
	for timeout := time.After(10 * time.Second); !w.Polling(); {
		select {
		case <-w.C():
		case <-timeout:
			t.Fatal("the directory went away and the Watcher does not poll")
		}
	}
	// made again: watched again
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	watchesAgain(t, w, path)
}

// TestWatchersShareOneInstance: more Watchers than the kernel's default
// 128 inotify instances per user all watch, none polls, and each hears
// of its own file.
func TestWatchersShareOneInstance(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ws []*Watcher
	for i := range 200 {
		w := Watch(ctx, []string{filepath.Join(dir, "f"+strconv.Itoa(i))}, slog.New(slog.DiscardHandler))
		if w.Polling() {
			t.Fatalf("watcher %d polls", i)
		}
		ws = append(ws, w)
	}
	for _, i := range []int{0, 127, 128, 199} {
		path := filepath.Join(dir, "f"+strconv.Itoa(i))
		if err := os.WriteFile(path, []byte(strconv.Itoa(i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ws[i].C():
		case <-time.After(10 * time.Second): // a hang, not a timing bound
			t.Fatalf("file %d written: its watcher heard nothing", i)
		}
	}
}
