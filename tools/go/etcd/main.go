// Command etcd is upstream etcd's own entry point (go.etcd.io/etcd/v3's main.go calls
// etcdmain.Main the same way); the root module carries replace directives, the server module
// does not, so this wrapper builds the same binary from the server module at a published version.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
