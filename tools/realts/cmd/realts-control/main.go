// Command realts-control is the control server of ts-kube-agent's real-tailscaled test suite
// (tests/integration/real_tailscaled). It wraps tailscale's own test control server
// (tailscale.com/tstest/integration/testcontrol, which approves nodes itself) with an in-process
// DERP and STUN server, all on 127.0.0.1, and adds a small admin HTTP API on a second loopback
// port so tests can change what control tells the nodes:
//
//	GET  /nodes                              every node control knows (registered and fake)
//	POST /rename    {"node":ID,"name":"x"}   new MagicDNS name x.<domain>.
//	POST /addresses {"node":ID,"addresses":["100.64.9.9/32",...]}
//	POST /expire    {"node":ID,"expired":true}  node key expiry in the past (false: none)
//	POST /peers/add {"count":N}              N fake peers; answers their IDs
//	POST /peers/remove {"ids":[...],"mode":"full"|"delta"}
//	                                         hide nodes from every netmap: "full" sends a full
//	                                         netmap without them, "delta" a PeersRemoved
//	POST /peers/online {"ids":[...],"online":true}  PeerChangedPatch Online (delta)
//	POST /raw       {"node":ID,"response":{...}}  one MapResponse, as given, to that node
//	POST /resend                             a full netmap to every streaming node
//
// ID is a node's StableID (Self.ID in `tailscale status --json`). Every change is pushed at once
// to the nodes' streaming map polls. Unlike testcontrol's own streaming, the map stream here is
// driven by this program (testcontrol.Server.AltMapStream) from testcontrol's MapResponse, so that
// addresses can be changed and nodes removed, which testcontrol alone does not offer.
//
// It prints one KEY=VALUE line per URL on stdout and, with --env-file, writes them to that file
// (renamed into place, so its presence means ready). SIGTERM/SIGINT stop it.
package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"tailscale.com/derp/derpserver"
	"tailscale.com/net/stun"
	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
)

const magicDNSDomain = "tail-realts.ts.net"

type override struct {
	addresses []netip.Prefix // nil: testcontrol's
	name      string         // "": testcontrol's
	expired   *bool
}

type control struct {
	tc *testcontrol.Server

	mu        sync.Mutex
	overrides map[tailcfg.StableNodeID]*override
	hidden    map[tailcfg.StableNodeID]bool
	fakes     []*tailcfg.Node // fake peers, in creation order
	nextFake  int
	streams   map[*stream]bool
	mapPolls  int
}

type stream struct {
	stable tailcfg.StableNodeID
	wake   chan struct{} // one-slot: "compute and send a new full netmap"
	raw    chan *tailcfg.MapResponse
}

func (s *stream) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (c *control) pokeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.streams {
		s.poke()
	}
}

// netmap is testcontrol's MapResponse for req with this program's overrides, fake peers and
// hidden nodes applied.
func (c *control) netmap(req *tailcfg.MapRequest) (*tailcfg.MapResponse, error) {
	res, err := c.tc.MapResponse(req)
	if err != nil || res == nil {
		return res, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apply(res.Node)
	peers := res.Peers[:0]
	for _, p := range res.Peers {
		if c.hidden[p.StableID] {
			continue
		}
		c.apply(p)
		peers = append(peers, p)
	}
	for _, f := range c.fakes {
		if c.hidden[f.StableID] {
			continue
		}
		peers = append(peers, f.Clone())
	}
	slices.SortFunc(peers, func(a, b *tailcfg.Node) int { return int(a.ID - b.ID) })
	res.Peers = peers
	return res, nil
}

func (c *control) apply(n *tailcfg.Node) {
	o := c.overrides[n.StableID]
	if o == nil {
		return
	}
	if o.addresses != nil {
		n.Addresses = slices.Clone(o.addresses)
		n.AllowedIPs = slices.Clone(o.addresses)
	}
	if o.name != "" {
		n.Name = o.name
	}
	if o.expired != nil {
		if *o.expired {
			n.KeyExpiry = time.Now().Add(-time.Minute)
		} else {
			n.KeyExpiry = time.Time{}
		}
	}
}

// serveMapStream is testcontrol's AltMapStream: a full netmap first, then a new full netmap
// whenever something changed (unchanged ones are not sent again), raw responses as queued, and a
// keep-alive every 50 s.
func (c *control) serveMapStream(ctx context.Context, w testcontrol.MapStreamWriter, req *tailcfg.MapRequest) {
	node := c.tc.Node(req.NodeKey)
	if node == nil {
		return
	}
	c.mu.Lock()
	c.mapPolls++
	c.mu.Unlock()
	// A node that (re)connects or updates its endpoints may change every other node's netmap.
	defer c.pokeAll()
	if !req.Stream || req.ReadOnly {
		if res, err := c.netmap(req); err == nil && res != nil {
			w.SendMapMessage(res)
		}
		return
	}
	s := &stream{stable: node.StableID, wake: make(chan struct{}, 1), raw: make(chan *tailcfg.MapResponse, 1024)}
	c.mu.Lock()
	c.streams[s] = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.streams, s)
		c.mu.Unlock()
	}()
	c.pokeAll()

	var last []byte
	keepAlive := time.NewTicker(50 * time.Second)
	defer keepAlive.Stop()
	s.poke()
	for {
		select {
		case <-ctx.Done():
			return
		case mr := <-s.raw:
			if err := w.SendMapMessage(mr); err != nil {
				return
			}
			last = nil // the node's view may now differ from the last full netmap
		case <-s.wake:
			res, err := c.netmap(req)
			if err != nil || res == nil {
				return
			}
			b, _ := json.Marshal(res)
			if string(b) == string(last) {
				continue
			}
			if err := w.SendMapMessage(res); err != nil {
				return
			}
			last = b
		case <-keepAlive.C:
			if err := w.SendMapMessage(&tailcfg.MapResponse{KeepAlive: true}); err != nil {
				return
			}
		}
	}
}

// sendRaw queues mr to every stream of the node with StableID id (all streams when id is "").
func (c *control) sendRaw(id tailcfg.StableNodeID, mr *tailcfg.MapResponse) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for s := range c.streams {
		if id != "" && s.stable != id {
			continue
		}
		select {
		case s.raw <- mr:
			n++
		default:
		}
	}
	return n
}

func (c *control) findNode(id tailcfg.StableNodeID) *tailcfg.Node {
	for _, n := range c.tc.AllNodes() {
		if n.StableID == id {
			return n
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.fakes {
		if f.StableID == id {
			return f.Clone()
		}
	}
	return nil
}

func (c *control) ov(id tailcfg.StableNodeID) *override {
	o := c.overrides[id]
	if o == nil {
		o = &override{}
		c.overrides[id] = o
	}
	return o
}

func (c *control) newFake() *tailcfg.Node {
	c.nextFake++
	i := c.nextFake
	nk := key.NewNode().Public()
	v4 := netip.AddrFrom4([4]byte{100, 100 + byte(i>>16), byte(i >> 8), byte(i)})
	var v6b [16]byte
	copy(v6b[:], []byte{0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0xab, 0x12})
	binary.BigEndian.PutUint32(v6b[12:], uint32(i))
	v6 := netip.AddrFrom16(v6b)
	addrs := []netip.Prefix{netip.PrefixFrom(v4, 32), netip.PrefixFrom(v6, 128)}
	id := tailcfg.NodeID(1_000_000 + i)
	online := false
	return &tailcfg.Node{
		ID:                id,
		StableID:          tailcfg.StableNodeID(fmt.Sprintf("FAKEPEER%08d", i)),
		Name:              fmt.Sprintf("fake-%d.%s.", i, magicDNSDomain),
		User:              tailcfg.UserID(id),
		Key:               nk,
		Machine:           key.NewMachine().Public(),
		DiscoKey:          key.NewDisco().Public(),
		MachineAuthorized: true,
		Addresses:         addrs,
		AllowedIPs:        addrs,
		Online:            &online,
		// tailscaled v1.102.5 dereferences a peer's Hostinfo when it builds its status (taildrop's
		// setPeerStatus): real control always sends one.
		Hostinfo: (&tailcfg.Hostinfo{Hostname: fmt.Sprintf("fake-%d", i), OS: "linux"}).View(),
	}
}

func (c *control) admin() http.Handler {
	mux := http.NewServeMux()
	type nodeJSON struct {
		ID        tailcfg.StableNodeID `json:"id"`
		NodeID    tailcfg.NodeID       `json:"node_id"`
		Name      string               `json:"name"`
		Addresses []netip.Prefix       `json:"addresses"`
		Fake      bool                 `json:"fake"`
		Hidden    bool                 `json:"hidden"`
	}
	mux.HandleFunc("GET /nodes", func(w http.ResponseWriter, r *http.Request) {
		var out []nodeJSON
		for _, n := range c.tc.AllNodes() {
			c.mu.Lock()
			c.apply(n)
			hidden := c.hidden[n.StableID]
			c.mu.Unlock()
			out = append(out, nodeJSON{n.StableID, n.ID, n.Name, n.Addresses, false, hidden})
		}
		c.mu.Lock()
		for _, f := range c.fakes {
			out = append(out, nodeJSON{f.StableID, f.ID, f.Name, f.Addresses, true, c.hidden[f.StableID]})
		}
		c.mu.Unlock()
		writeJSON(w, map[string]any{"nodes": out, "map_polls": c.polls()})
	})
	mux.HandleFunc("POST /rename", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Node tailcfg.StableNodeID `json:"node"`
			Name string               `json:"name"`
		}
		if !readJSON(w, r, &in) || !c.known(w, in.Node) {
			return
		}
		if in.Name == "" {
			http.Error(w, "name is empty", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.ov(in.Node).name = in.Name + "." + magicDNSDomain + "."
		c.mu.Unlock()
		c.pokeAll()
		writeJSON(w, map[string]any{"name": in.Name + "." + magicDNSDomain + "."})
	})
	mux.HandleFunc("POST /addresses", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Node      tailcfg.StableNodeID `json:"node"`
			Addresses []netip.Prefix       `json:"addresses"`
		}
		if !readJSON(w, r, &in) || !c.known(w, in.Node) {
			return
		}
		if len(in.Addresses) == 0 {
			http.Error(w, "addresses is empty", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.ov(in.Node).addresses = in.Addresses
		c.mu.Unlock()
		c.pokeAll()
		writeJSON(w, map[string]any{"addresses": in.Addresses})
	})
	mux.HandleFunc("POST /expire", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Node    tailcfg.StableNodeID `json:"node"`
			Expired bool                 `json:"expired"`
		}
		if !readJSON(w, r, &in) || !c.known(w, in.Node) {
			return
		}
		c.mu.Lock()
		c.ov(in.Node).expired = &in.Expired
		c.mu.Unlock()
		c.pokeAll()
		writeJSON(w, map[string]any{"expired": in.Expired})
	})
	mux.HandleFunc("POST /peers/add", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Count int `json:"count"`
		}
		if !readJSON(w, r, &in) {
			return
		}
		if in.Count < 1 || in.Count > 1_000_000 {
			http.Error(w, "count must be 1..1000000", http.StatusBadRequest)
			return
		}
		ids := make([]tailcfg.StableNodeID, 0, in.Count)
		nodeIDs := make([]tailcfg.NodeID, 0, in.Count)
		c.mu.Lock()
		for range in.Count {
			f := c.newFake()
			c.fakes = append(c.fakes, f)
			ids = append(ids, f.StableID)
			nodeIDs = append(nodeIDs, f.ID)
		}
		c.mu.Unlock()
		c.pokeAll()
		writeJSON(w, map[string]any{"ids": ids, "node_ids": nodeIDs})
	})
	mux.HandleFunc("POST /peers/remove", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			IDs  []tailcfg.StableNodeID `json:"ids"`
			Mode string                 `json:"mode"`
		}
		if !readJSON(w, r, &in) {
			return
		}
		if in.Mode != "full" && in.Mode != "delta" {
			http.Error(w, `mode must be "full" or "delta"`, http.StatusBadRequest)
			return
		}
		var removed []tailcfg.NodeID
		for _, id := range in.IDs {
			n := c.findNode(id)
			if n == nil {
				http.Error(w, fmt.Sprintf("no node %q", id), http.StatusNotFound)
				return
			}
			removed = append(removed, n.ID)
		}
		c.mu.Lock()
		for _, id := range in.IDs {
			c.hidden[id] = true
		}
		c.mu.Unlock()
		if in.Mode == "delta" {
			c.sendRaw("", &tailcfg.MapResponse{PeersRemoved: removed})
		} else {
			c.pokeAll()
		}
		writeJSON(w, map[string]any{"removed": removed})
	})
	mux.HandleFunc("POST /peers/online", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			IDs    []tailcfg.StableNodeID `json:"ids"`
			Online bool                   `json:"online"`
		}
		if !readJSON(w, r, &in) {
			return
		}
		var patches []*tailcfg.PeerChange
		c.mu.Lock()
		for _, f := range c.fakes {
			if slices.Contains(in.IDs, f.StableID) {
				f.Online = &in.Online
				patches = append(patches, &tailcfg.PeerChange{NodeID: f.ID, Online: &in.Online})
			}
		}
		c.mu.Unlock()
		if len(patches) != len(in.IDs) {
			http.Error(w, "only fake peers can be patched", http.StatusBadRequest)
			return
		}
		c.sendRaw("", &tailcfg.MapResponse{PeersChangedPatch: patches})
		writeJSON(w, map[string]any{"patched": len(patches)})
	})
	mux.HandleFunc("POST /raw", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Node     tailcfg.StableNodeID `json:"node"`
			Response *tailcfg.MapResponse `json:"response"`
		}
		if !readJSON(w, r, &in) || !c.known(w, in.Node) {
			return
		}
		if in.Response == nil {
			http.Error(w, "response is missing", http.StatusBadRequest)
			return
		}
		n := c.sendRaw(in.Node, in.Response)
		if n == 0 {
			http.Error(w, "the node has no streaming map poll", http.StatusConflict)
			return
		}
		writeJSON(w, map[string]any{"streams": n})
	})
	mux.HandleFunc("POST /resend", func(w http.ResponseWriter, r *http.Request) {
		c.pokeAll()
		writeJSON(w, map[string]any{})
	})
	return mux
}

func (c *control) polls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mapPolls
}

func (c *control) known(w http.ResponseWriter, id tailcfg.StableNodeID) bool {
	if c.findNode(id) == nil {
		http.Error(w, fmt.Sprintf("no node %q (GET /nodes lists them)", id), http.StatusNotFound)
		return false
	}
	return true
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		http.Error(w, "bad JSON body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// serveSTUN answers STUN binding requests on pc until it is closed.
func serveSTUN(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, src, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pkt := buf[:n]
		if !stun.Is(pkt) {
			continue
		}
		txid, err := stun.ParseBindingRequest(pkt)
		if err != nil {
			continue
		}
		ua, ok := src.(*net.UDPAddr)
		if !ok {
			continue
		}
		pc.WriteTo(stun.Response(txid, ua.AddrPort()), src)
	}
}

func listen(addr string) net.Listener {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("listen %s: %v", addr, err)
	}
	return ln
}

func main() {
	host := flag.String("host", "127.0.0.1", "loopback address every server listens on")
	envFile := flag.String("env-file", "", "also write the KEY=VALUE lines to this file (atomically, last)")
	verbose := flag.Bool("verbose", false, "log testcontrol's requests")
	flag.Parse()
	if ip, err := netip.ParseAddr(*host); err != nil || !ip.IsLoopback() {
		log.Fatalf("--host %q: must be a loopback address", *host)
	}
	logf := log.Printf

	// DERP over TLS (self-signed; the DERP map marks it InsecureForTests) and STUN over UDP.
	derp := derpserver.New(key.NewNode(), logf)
	derpSrv := httptest.NewUnstartedServer(derpserver.Handler(derp))
	derpSrv.Listener.Close()
	derpSrv.Listener = listen(net.JoinHostPort(*host, "0"))
	derpSrv.Config.TLSNextProto = make(map[string]func(*http.Server, *tls.Conn, http.Handler))
	derpSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	derpSrv.StartTLS()
	stunConn, err := net.ListenPacket("udp4", net.JoinHostPort(*host, "0"))
	if err != nil {
		log.Fatalf("STUN listen: %v", err)
	}
	go serveSTUN(stunConn)
	derpMap := &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{1: {
		RegionID: 1, RegionCode: "realts", RegionName: "realts loopback",
		Nodes: []*tailcfg.DERPNode{{
			Name: "1a", RegionID: 1, HostName: *host, IPv4: *host, IPv6: "none",
			STUNPort:         stunConn.LocalAddr().(*net.UDPAddr).Port,
			DERPPort:         derpSrv.Listener.Addr().(*net.TCPAddr).Port,
			InsecureForTests: true, STUNTestIP: *host,
		}},
	}}}

	c := &control{
		overrides: map[tailcfg.StableNodeID]*override{},
		hidden:    map[tailcfg.StableNodeID]bool{},
		streams:   map[*stream]bool{},
	}
	c.tc = &testcontrol.Server{
		DERPMap:        derpMap,
		MagicDNSDomain: magicDNSDomain,
		Verbose:        *verbose,
		Logf:           logf,
	}
	c.tc.AltMapStream = c.serveMapStream
	controlLn := listen(net.JoinHostPort(*host, "0"))
	c.tc.ExplicitBaseURL = "http://" + controlLn.Addr().String()
	go func() { log.Fatal(http.Serve(controlLn, c.tc)) }()
	adminLn := listen(net.JoinHostPort(*host, "0"))
	go func() { log.Fatal(http.Serve(adminLn, c.admin())) }()

	env := fmt.Sprintf("REALTS_CONTROL_URL=%s\nREALTS_ADMIN_URL=http://%s\nREALTS_DERP_ADDR=%s\nREALTS_STUN_ADDR=%s\nREALTS_CONTROL_PID=%d\n",
		c.tc.BaseURL(), adminLn.Addr(), derpSrv.Listener.Addr(), stunConn.LocalAddr(), os.Getpid())
	os.Stdout.WriteString(env)
	if *envFile != "" {
		tmp := *envFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(env), 0o644); err != nil {
			log.Fatalf("writing %s: %v", tmp, err)
		}
		if err := os.Rename(tmp, *envFile); err != nil {
			log.Fatalf("renaming %s: %v", tmp, err)
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	if *envFile != "" {
		os.Remove(*envFile)
	}
	derp.Close()
	stunConn.Close()
}
