//! End-to-end tests against the real local control plane (`make test` starts it
//! and sets KUBECONFIG). Each test works in a namespace of its own.

mod acme_faults;
mod acme_server;
mod api;
mod backup;
mod certificate;
mod control_plane;
mod plugin;
mod portal;
mod provisioning;
mod reindex;
mod rollout;
mod site;
mod solr;
mod solr_index;
mod tenant;
mod wave;
