//! What the cluster of real nodes runs besides the sites, as the objects
//! `mutu dev up --nodes real` applies: local-path-provisioner (the default
//! StorageClass), CoreDNS and Traefik.

use serde_json::{Value, json};

use super::{CLUSTER_DNS, INGRESS_CLASS, INGRESS_NAMESPACE, INGRESS_NODE_PORTS, Layout, NODES};

pub(super) const STORAGE_NAMESPACE: &str = "local-path-storage";

/// The StorageClass of volumes every node mounts at once (ReadWriteMany):
/// the members' backup volumes.
pub(super) const SHARED_CLASS: &str = "shared";

/// The default StorageClass `standard` of real nodes: local volumes (which,
/// unlike host paths, honour a pod's fsGroup), each in the state directory of
/// the node that first mounts it and bound to that node, made by
/// local-path-provisioner when a pod needs them. And the StorageClass
/// [`SHARED_CLASS`]: directories under the state directory that every node
/// sees (they all run on this machine), mounted as host paths, so a volume is
/// ReadWriteMany, as a member's backup volume must be.
pub(super) fn storage(layout: &Layout, image: &str, helper: &str) -> anyhow::Result<Vec<Value>> {
    let ns = STORAGE_NAMESPACE;
    let sa = "local-path-provisioner";
    let paths: Vec<Value> = NODES
        .iter()
        .map(|n| json!({"node": n.name, "paths": [n.dir(layout).join("volumes").display().to_string()]}))
        .collect();
    for node in &NODES {
        std::fs::create_dir_all(node.dir(layout).join("volumes"))?;
    }
    let shared = layout.state.join("nodes/shared-volumes");
    std::fs::create_dir_all(&shared)?;
    let config = json!({"storageClassConfigs": {
        "standard": {"nodePathMap": paths},
        SHARED_CLASS: {"sharedFileSystemPath": shared.display().to_string()},
    }})
    .to_string();
    let helper_pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: helper-pod\nspec:\n  containers:\n  - name: helper-pod\n    image: {helper}\n    imagePullPolicy: Never\n"
    );
    let labels = json!({"app": "local-path-provisioner"});
    Ok(vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": sa, "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": sa, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "mutu-dev:local-path-provisioner"},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
                {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "mutu-dev:local-path-provisioner"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mutu-dev:local-path-provisioner"},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        }),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "local-path-config", "namespace": ns},
            "data": {
                "config.json": config,
                "setup": "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n",
                "teardown": "#!/bin/sh\nset -eu\nrm -rf \"$VOL_DIR\"\n",
                "helperPod.yaml": helper_pod,
            },
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "local-path-provisioner", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": sa,
                        "containers": [{
                            "name": "local-path-provisioner", "image": image, "imagePullPolicy": "Never",
                            "command": ["/local-path-provisioner", "start", "--config", "/etc/config/config.json",
                                        "--provisioner-name", "rancher.io/local-path",
                                        "--helper-image", helper,
                                        "--service-account-name", sa],
                            "env": [
                                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                {"name": "CONFIG_MOUNT_PATH", "value": "/etc/config/"},
                            ],
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/config/"}],
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "local-path-config"}}],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {
                "name": "standard",
                "annotations": {
                    "storageclass.kubernetes.io/is-default-class": "true",
                    "defaultVolumeType": "local",
                },
            },
            "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        }),
        json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {
                "name": SHARED_CLASS,
                // A local volume must be bound to a node; a host path need not.
                "annotations": {"defaultVolumeType": "hostPath"},
            },
            "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "Immediate",
            "reclaimPolicy": "Delete",
        }),
    ])
}

pub(super) fn coredns(image: &str) -> Vec<Value> {
    let ns = "kube-system";
    let labels = json!({"k8s-app": "kube-dns"});
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": ns}}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "mutu-dev:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "mutu-dev:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mutu-dev:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}],
        }),
        // Cluster names only: no `forward`, so no query ever leaves the nodes.
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": ns},
            "data": {"Corefile": ".:53 {\n    errors\n    health :8080\n    ready :8181\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }\n    cache 30\n}\n"},
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "containers": [{
                            "name": "coredns", "image": image, "imagePullPolicy": "Never",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [
                                {"containerPort": 53, "protocol": "UDP", "name": "dns"},
                                {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"},
                            ],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                            "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                            "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}},
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
            "spec": {
                "clusterIP": CLUSTER_DNS,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        }),
    ]
}

pub(super) fn traefik(image: &str) -> Vec<Value> {
    let ns = INGRESS_NAMESPACE;
    let labels = json!({"app.kubernetes.io/name": "traefik"});
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "traefik", "namespace": ns}}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "mutu-dev:traefik"},
            "rules": [
                {"apiGroups": [""], "resources": ["services", "endpoints", "secrets", "nodes"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "mutu-dev:traefik"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mutu-dev:traefik"},
            "subjects": [{"kind": "ServiceAccount", "name": "traefik", "namespace": ns}],
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": INGRESS_CLASS},
            "spec": {"controller": "traefik.io/ingress-controller"},
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "traefik", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "traefik",
                        "nodeSelector": {mutu_api::POOL_LABEL: mutu_api::POOL_FRONTEND},
                        "containers": [{
                            "name": "traefik", "image": image, "imagePullPolicy": "Never",
                            "args": [
                                "--entryPoints.web.address=:8000",
                                "--entryPoints.websecure.address=:8443",
                                "--entryPoints.websecure.http.tls=true",
                                "--ping=true",
                                "--ping.entryPoint=traefik",
                                "--entryPoints.traefik.address=:9000",
                                "--providers.kubernetesingress=true",
                                "--providers.providersThrottleDuration=500ms",
                                format!("--providers.kubernetesingress.ingressclass={INGRESS_CLASS}"),
                                "--providers.kubernetesingress.allowexternalnameservices=true",
                                "--providers.kubernetesingress.allowemptyservices=true",
                                "--log.level=INFO",
                                "--accesslog=true",
                                "--global.checknewversion=false",
                                "--global.sendanonymoususage=false",
                            ],
                            "ports": [
                                {"containerPort": 8000, "name": "web"},
                                {"containerPort": 8443, "name": "websecure"},
                                {"containerPort": 9000, "name": "traefik"},
                            ],
                            "readinessProbe": {"httpGet": {"path": "/ping", "port": 9000}, "periodSeconds": 2},
                        }],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "traefik", "namespace": ns},
            "spec": {
                "type": "NodePort",
                "selector": labels,
                "ports": [
                    {"name": "web", "port": 80, "targetPort": 8000, "nodePort": INGRESS_NODE_PORTS.0},
                    {"name": "websecure", "port": 443, "targetPort": 8443, "nodePort": INGRESS_NODE_PORTS.1},
                ],
            },
        }),
    ]
}
