// A plain hashicorp/memberlist peer for consul-ts's gossip interoperability tests.
//
// Built by the test from Debian's golang-github-hashicorp-memberlist-dev in GOPATH mode
// (GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off go build), never committed as a binary.
//
// Usage: memberlist_peer -name n -bind 127.0.0.1 -port 7946 [-join host:port] [-key base64]
// It prints one JSON line per event on stdout ({"event":"ready"|"join"|"leave"|"update","node":...})
// and answers stdin commands: "members" (a JSON line listing every member with its state),
// "leave" (graceful leave, then "left"), "quit".
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

type printer struct{ mu sync.Mutex }

func (p *printer) line(v interface{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

type events struct{ out *printer }

func (e events) NotifyJoin(n *memberlist.Node)   { e.out.line(map[string]string{"event": "join", "node": n.Name}) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.out.line(map[string]string{"event": "leave", "node": n.Name}) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.out.line(map[string]string{"event": "update", "node": n.Name}) }

func main() {
	name := flag.String("name", "go-peer", "node name")
	bind := flag.String("bind", "127.0.0.1", "bind address")
	port := flag.Int("port", 7946, "bind port")
	join := flag.String("join", "", "address to join")
	key := flag.String("key", "", "base64 gossip key")
	flag.Parse()

	out := &printer{}
	config := memberlist.DefaultLANConfig()
	config.Name = *name
	config.BindAddr = *bind
	config.BindPort = *port
	config.AdvertiseAddr = *bind
	config.AdvertisePort = *port
	config.Events = events{out}
	config.LogOutput = ioutil.Discard
	if os.Getenv("PEER_DEBUG") != "" {
		config.LogOutput = os.Stderr
	}
	if *key != "" {
		raw, err := base64.StdEncoding.DecodeString(*key)
		if err != nil {
			log.Fatalf("bad key: %v", err)
		}
		config.SecretKey = raw
	}
	list, err := memberlist.Create(config)
	if err != nil {
		log.Fatalf("create: %v", err)
	}
	out.line(map[string]interface{}{"event": "ready", "node": *name, "port": list.LocalNode().Port})
	if *join != "" {
		if _, err := list.Join([]string{*join}); err != nil {
			out.line(map[string]string{"event": "join-failed", "error": err.Error()})
		}
	}
	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		switch strings.TrimSpace(scanner.Text()) {
		case "members":
			members := []map[string]interface{}{}
			for _, m := range list.Members() {
				members = append(members, map[string]interface{}{"name": m.Name, "addr": m.Addr.String(), "port": m.Port, "state": int(m.State)})
			}
			out.line(map[string]interface{}{"event": "members", "members": members})
		case "leave":
			err := list.Leave(5 * time.Second)
			out.line(map[string]interface{}{"event": "left", "error": fmt.Sprint(err)})
		case "quit":
			list.Shutdown()
			return
		}
	}
	list.Shutdown()
}
