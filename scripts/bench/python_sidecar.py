#!/usr/bin/env python3
"""The sidecar a user would otherwise write (the benchmark's "what people run" baseline).

Watches tailscaled's IPN bus over its unix socket (http.client does the chunked decoding),
json.loads each line, keeps the node identity (and, with --track-peers, a dict of peers), and
PATCHes the Secret over HTTPS (urllib, verifying the server with --ca-file) when the identity
changes. Deliberately plain: this is the baseline, not something to optimise.

  python_sidecar.py --socket /tmp/ts.sock --server https://127.0.0.1:6443 --ca-file ca.crt \
      --token-file token --namespace default --secret tailscale [--track-peers]
"""
import argparse, base64, http.client, json, socket, ssl, sys, urllib.request


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("local-tailscaled.sock")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def patch_secret(args, ctx, identity):
    data = {k: base64.b64encode(v.encode()).decode() for k, v in identity.items()}
    body = json.dumps({"data": data}).encode()
    url = (f"{args.server}/api/v1/namespaces/{args.namespace}/secrets/{args.secret}"
           "?fieldManager=python-sidecar")
    req = urllib.request.Request(url, data=body, method="PATCH", headers={
        "Authorization": "Bearer " + open(args.token_file).read().strip(),
        "Content-Type": "application/strategic-merge-patch+json"})
    urllib.request.urlopen(req, context=ctx).read()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--socket", "--server", "--ca-file", "--token-file", "--namespace", "--secret"):
        p.add_argument(flag, required=True)
    p.add_argument("--track-peers", action="store_true")
    args = p.parse_args()
    ctx = ssl.create_default_context(cafile=args.ca_file)
    mask = 16384 | (4096 | 32768 if args.track_peers else 0)
    conn = UnixHTTPConnection(args.socket)
    conn.request("GET", f"/localapi/v0/watch-ipn-bus?mask={mask}")
    resp = conn.getresponse()
    if resp.status != 200:
        sys.exit(f"watch-ipn-bus: HTTP {resp.status}: {resp.read().decode(errors='replace')}")
    identity, peers, state = None, {}, None
    for line in resp:
        n = json.loads(line)
        new = identity
        if n.get("InitialStatus"):
            st = n["InitialStatus"]
            state = st.get("BackendState")
            s = st.get("Self") or {}
            new = {"device_id": s.get("ID", ""), "device_fqdn": s.get("DNSName", ""),
                   "device_ips": json.dumps(s.get("TailscaleIPs") or [], separators=(",", ":"))}
            if args.track_peers:
                peers = {ps.get("NodeID"): ps.get("Online", False)
                         for ps in (st.get("Peer") or {}).values()}
        if n.get("SelfChange"):
            s = n["SelfChange"]
            ips = [a.split("/")[0] for a in s.get("Addresses") or []]
            new = {"device_id": s.get("StableID", ""), "device_fqdn": s.get("Name", ""),
                   "device_ips": json.dumps(ips, separators=(",", ":"))}
        if n.get("State") is not None:
            state = n["State"]
        if args.track_peers:
            for node in n.get("PeersChanged") or []:
                peers[node["ID"]] = node.get("Online", False)
            for node_id in n.get("PeersRemoved") or []:
                peers.pop(node_id, None)
            for patch in n.get("PeerChangedPatch") or []:
                if patch.get("NodeID") in peers and patch.get("Online") is not None:
                    peers[patch["NodeID"]] = patch["Online"]
        if n.get("ErrMessage"):
            sys.exit("tailscaled: " + n["ErrMessage"])
        if new != identity:
            identity = new
            patch_secret(args, ctx, identity)
    sys.exit("watch-ipn-bus stream ended")


if __name__ == "__main__":
    main()
