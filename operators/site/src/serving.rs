//! Which release a site's ready instances really serve. A release change
//! rolls the instances over; until a pod of the new release is Ready (its
//! health check answered kubelet's probe), the previous release serves, and
//! the site's status must say so rather than name a release that does not
//! answer.

use k8s_openapi::api::core::v1::Pod;

/// The container of an instance pod that runs the product's image.
const INSTANCE_CONTAINER: &str = "instance";

/// What the ready instance pods run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Serving {
    /// Ready pods running the wanted image.
    pub on_wanted: i32,
    /// The releases (image tags) of the ready pods that run another image,
    /// sorted, without repeats.
    pub others: Vec<String>,
}

/// What the ready pods among `pods` serve, given the `wanted` image (`name:release`).
pub fn serving<'a>(pods: impl IntoIterator<Item = &'a Pod>, wanted: &str) -> Serving {
    let mut out = Serving::default();
    for pod in pods.into_iter().filter(|p| ready(p)) {
        let image = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == INSTANCE_CONTAINER))
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        if image == wanted {
            out.on_wanted += 1;
        } else {
            let release = image.rsplit_once(':').map(|(_, t)| t).unwrap_or(&image);
            out.others.push(release.to_string());
        }
    }
    out.others.sort();
    out.others.dedup();
    out
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(image: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "instance", "image": image}]},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_unready_new_release_leaves_the_previous_one_serving() {
        let pods = [
            pod("r/generic:1.0", true),
            pod("r/generic:9.9-unhealthy", false),
        ];
        assert_eq!(
            serving(&pods, "r/generic:9.9-unhealthy"),
            Serving {
                on_wanted: 0,
                others: vec!["1.0".into()]
            }
        );
    }

    #[test]
    fn a_finished_rollout_serves_only_the_wanted_release() {
        let pods = [pod("r/generic:1.1", true), pod("r/generic:1.1", true)];
        assert_eq!(
            serving(&pods, "r/generic:1.1"),
            Serving {
                on_wanted: 2,
                others: vec![]
            }
        );
    }

    #[test]
    fn halfway_both_releases_serve() {
        let pods = [
            pod("r/p:6.1.5", true),
            pod("r/p:6.2.2", true),
            pod("r/p:6.1.5", true),
        ];
        assert_eq!(
            serving(&pods, "r/p:6.2.2"),
            Serving {
                on_wanted: 1,
                others: vec!["6.1.5".into()]
            }
        );
    }
}
