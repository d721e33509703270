package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one wxhub process of the campaign: started from the real binary, its output
// appended to a log file, restartable with the same arguments.
type Proc struct {
	Name    string
	bin     string
	args    []string
	env     []string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// NewProc describes a process; Start runs it.
func NewProc(name, bin, logPath string, env []string, args ...string) *Proc {
	return &Proc{Name: name, bin: bin, args: args, env: env, logPath: logPath}
}

// Start runs the process. Pdeathsig kills it if the test process dies first; it is tied to
// the forking thread, so the fork happens on a thread that stays locked until the process
// exits.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited != nil {
		select {
		case <-p.exited:
		default:
			return fmt.Errorf("%s is already running", p.Name)
		}
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	fmt.Fprintf(logFile, "--- %s started at %s\n", p.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer logFile.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.exited = cmd, exited
	return nil
}

// Signal sends sig to the running process.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s was never started", p.Name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil && !p.hasExited() {
		return err
	}
	return p.wait(10 * time.Second)
}

// Stop asks the process to shut down (SIGTERM, after a SIGCONT in case it is stopped) and
// waits for it, killing it after the grace period.
func (p *Proc) Stop(grace time.Duration) error {
	if p.hasExited() {
		return nil
	}
	_ = p.Signal(syscall.SIGCONT)
	_ = p.Signal(syscall.SIGTERM)
	if err := p.wait(grace); err != nil {
		return errors.Join(err, p.Kill())
	}
	return nil
}

// hasExited reports whether the process is not running (or was never started).
func (p *Proc) hasExited() bool { return p.wait(0) == nil }

// wait waits up to timeout for the process to exit.
func (p *Proc) wait(timeout time.Duration) error {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	select {
	case <-exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s still running %s after the signal", p.Name, timeout)
	}
}

// LogTail returns the last lines of the process's log, for failure messages.
func (p *Proc) LogTail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}
