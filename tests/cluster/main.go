// Command mutu-cluster is the local Kubernetes control plane that mutu's tests
// and demo run against: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler compiled from their upstream Go modules into one multi-call
// binary. The first argument (or the name the binary is called by) picks the
// component; every remaining argument is that component's own flags.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	_ "time/tzdata" // CronJob time zones

	"github.com/spf13/cobra"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

const usage = `usage: mutu-cluster COMPONENT [FLAGS...]

Components:
  etcd                      the etcd key-value store
  kube-apiserver            the Kubernetes API server
  kube-controller-manager   the Kubernetes controllers (GC, namespaces, workloads...)
  kube-scheduler            the Kubernetes scheduler
`

func main() {
	component := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if !strings.HasPrefix(component, "etcd") && !strings.HasPrefix(component, "kube-") {
		if len(args) == 0 {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		component, args = args[0], args[1:]
	}
	switch component {
	case "etcd":
		etcdmain.Main(append([]string{"etcd"}, args...))
	case "kube-apiserver":
		os.Exit(run(apiserver.NewAPIServerCommand(), args))
	case "kube-controller-manager":
		os.Exit(run(controllermanager.NewControllerManagerCommand(), args))
	case "kube-scheduler":
		os.Exit(run(scheduler.NewSchedulerCommand(), args))
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "unknown component %q\n\n%s", component, usage)
		os.Exit(2)
	}
}

// run hands the component's own flags to its cobra command and runs it the way
// the upstream main packages do.
func run(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	return cli.Run(cmd)
}
