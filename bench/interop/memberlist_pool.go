// A pool of N hashicorp/memberlist instances in ONE process, for bench/gossip.bench.ts: the Go
// side of the gossip benchmark, driven over stdin/stdout with the same line protocol as the
// consul-ts pool the benchmark runs in a Node child process, so both are measured the same way.
//
// Built by the benchmark from Debian's golang-github-hashicorp-memberlist-dev in GOPATH mode
// (GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off CGO_ENABLED=0 go build), never committed
// as a binary.
//
// Usage: memberlist_pool -n 50 [-base 0] [-parallel 8]
// Every instance uses memberlist.DefaultLANConfig (Consul's LAN profile, delegate protocol 0 as a
// plain memberlist) on 127.0.0.1, ports base..base+n-1 (-base 0 picks a free range). Instance
// names are go-0 .. go-(n-1); instance n-1 is the victim of "kill".
//
// Commands (stdin, one per line) and answers (stdout, one JSON object per line):
//   (start)       {"event":"ready","n":N,"base":P}
//   join          instance i>0 joins instance 0, at most -parallel joins at a time; then
//                 {"event":"joined","ms":T,"failures":F} when every Join returned, and
//                 {"event":"converged","ms":T,"instanceMs":[...],"aliveMin":A} once every instance
//                 has had all N names reported by NotifyJoin (times from the first Join call)
//   window MS     {"event":"window","ms":T,"udpPackets":P,"udpBytes":B,"tcpBytes":C,"cpuMs":U,"falseDeaths":D}
//                 counted over the next MS milliseconds, summed over all instances
//   kill          Shutdown (no Leave) of instance n-1; then {"event":"detected","ms":T,"instanceMs":[...]}
//                 once every other instance has had NotifyLeave for it (times from the Shutdown call)
//   status        {"event":"status","seen":[...],"victimSeenDead":K}
//   quit          shuts every instance down and exits
//
// Counting: every instance's Transport is a NetTransport wrapped so that WriteTo/WriteToAddress
// count UDP datagrams and payload bytes (what memberlist hands to the socket: compressed,
// framed, without IP/UDP headers), and both dialled and accepted TCP connections count bytes
// written. CPU time is the process's getrusage user+system time.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// counters shared by every instance's transport.
var udpPackets, udpBytes, tcpBytes int64

type countingConn struct{ net.Conn }

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	atomic.AddInt64(&tcpBytes, int64(n))
	return n, err
}

// countingTransport is a NetTransport whose sends are counted.
type countingTransport struct {
	*memberlist.NetTransport
	streams chan net.Conn
}

func newCountingTransport(port int) (*countingTransport, error) {
	inner, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: port, Logger: log.New(ioutil.Discard, "", 0)})
	if err != nil {
		return nil, err
	}
	t := &countingTransport{NetTransport: inner, streams: make(chan net.Conn)}
	go func() {
		for conn := range inner.StreamCh() {
			t.streams <- countingConn{conn}
		}
	}()
	return t, nil
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	atomic.AddInt64(&udpPackets, 1)
	atomic.AddInt64(&udpBytes, int64(len(b)))
	return t.NetTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	atomic.AddInt64(&udpPackets, 1)
	atomic.AddInt64(&udpBytes, int64(len(b)))
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := t.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return countingConn{conn}, nil
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return countingConn{conn}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

// pool state, guarded by mu.
type pool struct {
	mu          sync.Mutex
	n           int
	lists       []*memberlist.Memberlist
	seen        []map[string]bool
	convergedAt []time.Time
	deadAt      []time.Time
	joinStart   time.Time
	killStart   time.Time
	victim      string
	falseDeaths int
	converged   chan struct{}
	detected    chan struct{}
}

type events struct {
	p *pool
	i int
}

func (e events) NotifyJoin(node *memberlist.Node) {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[e.i][node.Name] = true
	if len(p.seen[e.i]) == p.n && p.convergedAt[e.i].IsZero() {
		p.convergedAt[e.i] = time.Now()
		for _, at := range p.convergedAt {
			if at.IsZero() {
				return
			}
		}
		close(p.converged)
	}
}

func (e events) NotifyLeave(node *memberlist.Node) {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if node.Name != p.victim || p.killStart.IsZero() {
		p.falseDeaths++
		return
	}
	if !p.deadAt[e.i].IsZero() {
		return
	}
	p.deadAt[e.i] = time.Now()
	for i, at := range p.deadAt {
		if i != p.n-1 && at.IsZero() {
			return
		}
	}
	close(p.detected)
}

func (e events) NotifyUpdate(node *memberlist.Node) {}

var outMu sync.Mutex

func emit(v interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func cpuMs() float64 {
	var usage syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	return float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e6
}

// create starts n instances on base..base+n-1, or returns an error after shutting down those started.
func (p *pool) create(base int) error {
	for i := 0; i < p.n; i++ {
		transport, err := newCountingTransport(base + i)
		if err == nil {
			config := memberlist.DefaultLANConfig()
			config.Name = fmt.Sprintf("go-%d", i)
			config.BindAddr = "127.0.0.1"
			config.BindPort = base + i
			config.AdvertiseAddr = "127.0.0.1"
			config.AdvertisePort = base + i
			config.Transport = transport
			config.Events = events{p, i}
			config.LogOutput = ioutil.Discard
			var list *memberlist.Memberlist
			if list, err = memberlist.Create(config); err == nil {
				p.lists = append(p.lists, list)
				continue
			}
			transport.Shutdown()
		}
		for _, list := range p.lists {
			list.Shutdown()
		}
		p.lists = nil
		return err
	}
	return nil
}

func (p *pool) join(parallel int) {
	p.mu.Lock()
	p.joinStart = time.Now()
	p.mu.Unlock()
	seed := fmt.Sprintf("127.0.0.1:%d", p.lists[0].LocalNode().Port)
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var failures int64
	for i := 1; i < p.n; i++ {
		slots <- struct{}{}
		wg.Add(1)
		go func(list *memberlist.Memberlist) {
			defer wg.Done()
			if _, err := list.Join([]string{seed}); err != nil {
				atomic.AddInt64(&failures, 1)
			}
			<-slots
		}(p.lists[i])
	}
	wg.Wait()
	emit(map[string]interface{}{"event": "joined", "ms": ms(time.Since(p.joinStart)), "failures": failures})
	<-p.converged
	p.mu.Lock()
	instanceMs := make([]float64, p.n)
	last := 0.0
	for i, at := range p.convergedAt {
		instanceMs[i] = ms(at.Sub(p.joinStart))
		if instanceMs[i] > last {
			last = instanceMs[i]
		}
	}
	p.mu.Unlock()
	aliveMin := p.n
	for _, list := range p.lists {
		alive := 0
		for _, member := range list.Members() {
			if member.State == memberlist.StateAlive {
				alive++
			}
		}
		if alive < aliveMin {
			aliveMin = alive
		}
	}
	emit(map[string]interface{}{"event": "converged", "ms": last, "instanceMs": instanceMs, "aliveMin": aliveMin})
}

func (p *pool) window(durationMs int) {
	packets0, bytes0, tcp0, cpu0 := atomic.LoadInt64(&udpPackets), atomic.LoadInt64(&udpBytes), atomic.LoadInt64(&tcpBytes), cpuMs()
	start := time.Now()
	time.Sleep(time.Duration(durationMs) * time.Millisecond)
	p.mu.Lock()
	falseDeaths := p.falseDeaths
	p.mu.Unlock()
	emit(map[string]interface{}{
		"event": "window", "ms": ms(time.Since(start)),
		"udpPackets": atomic.LoadInt64(&udpPackets) - packets0, "udpBytes": atomic.LoadInt64(&udpBytes) - bytes0,
		"tcpBytes": atomic.LoadInt64(&tcpBytes) - tcp0, "cpuMs": cpuMs() - cpu0, "falseDeaths": falseDeaths,
	})
}

func (p *pool) kill() {
	p.mu.Lock()
	p.killStart = time.Now()
	p.mu.Unlock()
	p.lists[p.n-1].Shutdown()
	<-p.detected
	p.mu.Lock()
	instanceMs := []float64{}
	last := 0.0
	for i := 0; i < p.n-1; i++ {
		elapsed := ms(p.deadAt[i].Sub(p.killStart))
		instanceMs = append(instanceMs, elapsed)
		if elapsed > last {
			last = elapsed
		}
	}
	p.mu.Unlock()
	emit(map[string]interface{}{"event": "detected", "ms": last, "instanceMs": instanceMs})
}

func (p *pool) status() {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := make([]int, p.n)
	victimSeenDead := 0
	for i := range p.seen {
		seen[i] = len(p.seen[i])
		if !p.deadAt[i].IsZero() {
			victimSeenDead++
		}
	}
	emit(map[string]interface{}{"event": "status", "seen": seen, "victimSeenDead": victimSeenDead})
}

func main() {
	n := flag.Int("n", 10, "instances")
	base := flag.Int("base", 0, "first port (0: pick a free range)")
	parallel := flag.Int("parallel", 8, "joins in flight at most")
	flag.Parse()
	if *n < 2 || *parallel < 1 {
		log.Fatalf("need -n >= 2 and -parallel >= 1")
	}

	p := &pool{n: *n, victim: fmt.Sprintf("go-%d", *n-1), converged: make(chan struct{}), detected: make(chan struct{})}
	p.seen = make([]map[string]bool, *n)
	for i := range p.seen {
		p.seen[i] = map[string]bool{}
	}
	p.convergedAt = make([]time.Time, *n)
	p.deadAt = make([]time.Time, *n)
	chosen := *base
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if *base == 0 {
			chosen = 20000 + rand.New(rand.NewSource(time.Now().UnixNano())).Intn(30000)
		}
		if err = p.create(chosen); err == nil || *base != 0 {
			break
		}
		// Instances created before the failure fired NotifyJoin for themselves: forget it.
		for i := range p.seen {
			p.seen[i] = map[string]bool{}
		}
	}
	if err != nil {
		log.Fatalf("create: %v", err)
	}
	emit(map[string]interface{}{"event": "ready", "n": *n, "base": chosen})

	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "join":
			go p.join(*parallel)
		case "window":
			durationMs, _ := strconv.Atoi(fields[len(fields)-1])
			go p.window(durationMs)
		case "kill":
			go p.kill()
		case "status":
			p.status()
		case "quit":
			for _, list := range p.lists {
				list.Shutdown()
			}
			return
		}
	}
	for _, list := range p.lists {
		list.Shutdown()
	}
}
