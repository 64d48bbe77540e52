package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The bench shares two cores with whatever else runs on the machine. To
// tell a clean measurement from a disturbed one, it compares the CPU time
// the whole machine spent (/proc/stat) with the CPU time of the tool and
// its children (/proc/<pid>/stat) over the same window: the difference is
// what other processes used.

// userHZ is the unit of /proc CPU times; it is 100 on every Linux the Go
// runtime supports.
const userHZ = 100

type cpuSnap struct {
	at         time.Time
	busy, ours int64 // in 1/userHZ seconds
	ok         bool
	// others is the CPU time of every other process by pid, to name the
	// disturbers. Processes that start and end between two snapshots are
	// not seen here, only in busy.
	others map[int]procTime
}

type procTime struct {
	name string
	t    int64
}

func snapCPU() cpuSnap {
	s := cpuSnap{at: time.Now(), ok: true}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSnap{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 4 || f[0] != "cpu" {
		return cpuSnap{}
	}
	// user, nice, system: interrupt time is left out, as it is not
	// charged to any process, ours included.
	for _, v := range f[1:4] {
		n, _ := strconv.ParseInt(v, 10, 64)
		s.busy += n
	}
	// The tool itself, with the children it has already waited for, and
	// the children still running.
	self, ok := procCPU(os.Getpid(), true)
	if !ok {
		return cpuSnap{}
	}
	s.ours = self
	mine := map[int]bool{os.Getpid(): true}
	procs.Lock()
	for _, c := range procs.list {
		if !c.exited() {
			mine[c.pid()] = true
			n, _ := procCPU(c.pid(), false)
			s.ours += n
		}
	}
	procs.Unlock()
	s.others = make(map[int]procTime)
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || mine[pid] || isDescendant(pid, mine) {
				continue
			}
			// Their own time only: a child's time moves into its parent's
			// when it is waited for, and would be counted twice.
			if t, ok := procCPU(pid, false); ok && t > 0 {
				s.others[pid] = procTime{procName(pid), t}
			}
		}
	}
	return s
}

// isDescendant reports whether pid's parent is one of mine (go test's test
// binary, the gateway build's compilers).
func isDescendant(pid int, mine map[int]bool) bool {
	for range 4 {
		ppid := procPPID(pid)
		if ppid <= 1 {
			return false
		}
		if mine[ppid] {
			return true
		}
		pid = ppid
	}
	return false
}

func procPPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func procName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// disturbers names the other processes that used the most CPU between a
// and b, with the cores each used on average.
func disturbers(a, b cpuSnap) string {
	secs := b.at.Sub(a.at).Seconds()
	if !a.ok || !b.ok || secs <= 0 {
		return ""
	}
	type use struct {
		name  string
		cores float64
	}
	byName := map[string]float64{}
	for pid, pb := range b.others {
		// A kernel worker's name changes with its current work: the pid
		// identifies it.
		if d := pb.t - a.others[pid].t; d > 0 {
			byName[pb.name] += float64(d) / userHZ / secs
		}
	}
	var uses []use
	for n, c := range byName {
		if c >= 0.02 {
			uses = append(uses, use{n, c})
		}
	}
	sort.Slice(uses, func(i, j int) bool { return uses[i].cores > uses[j].cores })
	var parts []string
	for i, u := range uses {
		if i == 4 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", u.name, u.cores))
	}
	return strings.Join(parts, ", ")
}

// procCPU reads utime+stime (and cutime+cstime when waited is set) of pid.
func procCPU(pid int, waited bool) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may contain spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b)[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
	if len(f) < 15 {
		return 0, false
	}
	n := 0
	fields := []int{11, 12}
	if waited {
		fields = append(fields, 13, 14)
	}
	var sum int64
	for _, k := range fields {
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return 0, false
		}
		sum += v
		n++
	}
	return sum, n > 0
}

// othersCores is the average number of cores that processes other than the
// bench's used between a and b.
func othersCores(a, b cpuSnap) float64 {
	if !a.ok || !b.ok {
		return -1
	}
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return -1
	}
	return max(0, float64((b.busy-a.busy)-(b.ours-a.ours))/userHZ/secs)
}
