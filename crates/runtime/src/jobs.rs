//! How far a Kubernetes Job got, from its conditions: what every operator
//! that runs Jobs (site creation and upgrades, reindexes, backups) reads.

use k8s_openapi::api::batch::v1::Job;

/// How far a Job got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    /// Failed, with Kubernetes' message (or reason).
    Failed(String),
}

/// The state of `job` from its `Complete` and `Failed` conditions.
pub fn state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let holds = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if holds("Complete").is_some() {
        JobState::Succeeded
    } else if let Some(failed) = holds("Failed") {
        JobState::Failed(
            failed
                .message
                .clone()
                .or_else(|| failed.reason.clone())
                .unwrap_or_else(|| "the Job failed".to_string()),
        )
    } else {
        JobState::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_state_follows_the_conditions() {
        let job = |conds: serde_json::Value| -> Job {
            serde_json::from_value(
                json!({"metadata": {"name": "j"}, "status": {"conditions": conds}}),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(state(&job(json!([]))), JobState::Running);
        assert_eq!(
            state(&job(json!([{"type": "Complete", "status": "True"}]))),
            JobState::Succeeded
        );
        assert_eq!(
            state(&job(
                json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}])
            )),
            JobState::Failed("Job has reached the specified backoff limit".into())
        );
        assert_eq!(
            state(&job(
                json!([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}])
            )),
            JobState::Failed("DeadlineExceeded".into())
        );
    }
}
