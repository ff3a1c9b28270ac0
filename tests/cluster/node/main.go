// Command mutu-node is the node side of mutu's local cluster with real nodes:
// kubelet and kube-proxy of the control plane's own Kubernetes release, built
// from the upstream Go modules into one multi-call binary. The first argument
// picks the component; every remaining argument is that component's own flags.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

const usage = `usage: mutu-node COMPONENT [FLAGS...]

Components:
  kubelet      the node agent, talking to a CRI runtime (containerd)
  kube-proxy   Services on the node (iptables)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	component, args := os.Args[1], os.Args[2:]
	var cmd *cobra.Command
	switch component {
	case "kubelet":
		cmd = kubelet.NewKubeletCommand(context.Background())
	case "kube-proxy":
		cmd = proxy.NewProxyCommand()
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown component %q\n\n%s", component, usage)
		os.Exit(2)
	}
	cmd.SetArgs(args)
	os.Exit(cli.Run(cmd))
}
