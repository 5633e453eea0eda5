//! Why a task failed, typed: what the engine saw, carried in the task's report to whoever
//! turns it into words (progress for the terminal, the JSON recap, the layers above). The texts
//! inside are redacted before they leave the engine, which is what holds the secrets.

use serde::Serialize;

/// The cause of a task's failure on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskError {
    /// A command exited non-zero, or `failed_when` said it failed; the tail of its output.
    #[error("exit {code}: {output}")]
    Exit { code: i64, output: String },
    /// The plan said so: `fail`, or an `assert` whose condition was false.
    #[error("{message}")]
    Plan { message: String },
    /// The task's arguments, variables or conditions did not render.
    #[error("{message}")]
    Render { message: String },
    /// The module could not be built, or failed on the host (its error chain).
    #[error("{message}")]
    Module { message: String },
    /// The batched probe ended before this task's answer.
    #[error("the host gave no answer to this task's probe")]
    NoAnswer,
    /// The task failed under `no_log`: its output is not shown.
    #[error("output hidden (no_log)")]
    Hidden,
    /// A bug in minipaas: the host's task panicked or was cancelled.
    #[error("internal error in minipaas (a bug; please report it): {why}")]
    Internal { why: String },
}

impl TaskError {
    /// The same cause with every text in it passed through `f` (redaction).
    pub(crate) fn map_text(self, f: impl Fn(&str) -> String) -> TaskError {
        match self {
            TaskError::Exit { code, output } => TaskError::Exit {
                code,
                output: f(&output),
            },
            TaskError::Plan { message } => TaskError::Plan {
                message: f(&message),
            },
            TaskError::Render { message } => TaskError::Render {
                message: f(&message),
            },
            TaskError::Module { message } => TaskError::Module {
                message: f(&message),
            },
            TaskError::Internal { why } => TaskError::Internal { why: f(&why) },
            other @ (TaskError::NoAnswer | TaskError::Hidden) => other,
        }
    }
}

/// A failed task with where it failed: the host, the task and its place in the plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host `{host}`: task `{task}` ({at}) failed")]
pub struct TaskFailed {
    pub host: String,
    pub task: String,
    /// `file line N` of the task in its plan.
    pub at: String,
    #[source]
    pub source: TaskError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_as_its_cause_after_its_context() {
        let f = TaskFailed {
            host: "node1".into(),
            task: "stack file".into(),
            at: "rollout.yaml line 9".into(),
            source: TaskError::Exit {
                code: 3,
                output: "token s3cr3t".into(),
            }
            .map_text(|t| t.replace("s3cr3t", "********")),
        };
        assert_eq!(
            crate::error::chain(&f),
            "host `node1`: task `stack file` (rollout.yaml line 9) failed: exit 3: token ********"
        );
        let json = serde_json::to_value(&f.source).unwrap();
        assert_eq!(json["kind"], "exit");
        assert_eq!(json["code"], 3);
    }

    #[test]
    fn a_failed_report_in_json_has_its_text_and_its_kind() {
        let report = crate::engine::TaskReport {
            host: "node1".into(),
            play: "p".into(),
            task: "t".into(),
            status: crate::engine::Status::Failed,
            changes: Vec::new(),
            diff: None,
            message: None,
            error: Some(TaskError::Plan {
                message: "no".into(),
            }),
            at: "plan.yaml line 3".into(),
            handler: false,
            ignored: false,
            duration_ms: 1,
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["message"], "no");
        assert_eq!(json["error"]["kind"], "plan");
        assert_eq!(json["status"], "failed");
        assert!(json.get("ignored").is_none() && json.get("diff").is_none());
        assert_eq!(report.failure().unwrap().at, "plan.yaml line 3");
    }
}
