// Command etcd is the etcd server the pinned Kubernetes release resolves to (minimal version
// selection picks go.etcd.io/etcd/server/v3 from k8s.io/kubernetes' own requirements).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
