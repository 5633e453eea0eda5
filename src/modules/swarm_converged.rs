//! `swarm_converged`: waits on a manager until every service of a stack has converged, by the
//! same health rules as `deploy status` ([`crate::swarm`]), reading the whole stack in one
//! command per poll. It changes nothing, so it runs in check mode too. On failure it names the
//! service, why, its last tasks and the tail of its logs.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::swarm::converge::{self, Goal, Verdict};
use crate::template::shell_quote;

use super::context::Context;
use super::{Applied, Change, ModuleError, Probe, Seen};

/// Between two reads of the stack.
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct SwarmConverged {
    pub stack: String,
    timeout: Duration,
    goal: Goal,
    /// When the deploy began (UTC RFC 3339, two seconds early for the clock's whole seconds):
    /// update states older than that are an earlier deploy's.
    began: Option<String>,
}

impl SwarmConverged {
    pub fn new(a: &Value) -> Result<SwarmConverged, ModuleError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct A {
            stack: String,
            timeout: u64,
            since: Option<i64>,
            #[serde(default)]
            restore: bool,
        }
        let r: A = super::args("swarm_converged", a)?;
        let began = match r.since {
            None | Some(0) => None,
            Some(s) => Some(crate::swarm::rfc3339(s.saturating_sub(2)).ok_or_else(|| {
                ModuleError::Args {
                    message: format!("`swarm_converged`: `since: {s}` is not a time"),
                }
            })?),
        };
        Ok(SwarmConverged {
            stack: r.stack,
            timeout: Duration::from_secs(r.timeout),
            goal: if r.restore {
                Goal::Restore
            } else {
                Goal::Update
            },
            began,
        })
    }

    /// Nothing to ask before: the wait is the work.
    pub fn probe(&self) -> Probe {
        Probe::Shell("true".into())
    }

    pub fn check(&self, _seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        Ok(vec![Change::Wait(format!("stack {}", self.stack))])
    }

    pub async fn apply(&self, ctx: &Context<'_>) -> Result<Applied, ModuleError> {
        let deadline = Instant::now() + self.timeout;
        let script = crate::swarm::gather_script(&self.stack);
        loop {
            let out = ctx.run_ok("reading the stack", &script, None).await?;
            let g = crate::swarm::parse(&out.stdout_str()).map_err(|e| ModuleError::Probe {
                message: format!("the state of stack `{}`: {e}", self.stack),
            })?;
            let waiting = match converge::verdict(&g, self.goal, self.began.as_deref()) {
                Verdict::Converged(lines) => {
                    let mut out = out;
                    out.stdout = (lines.join("\n") + "\n").into_bytes();
                    return Ok(Applied { output: Some(out) });
                }
                Verdict::Missing => {
                    return Err(ModuleError::NotConverged {
                        report: format!("stack `{}` has no services", self.stack),
                    })
                }
                Verdict::Failed { service, why } => {
                    return Err(self.failure(ctx, &[(service, why)]).await)
                }
                Verdict::Waiting(services) => services,
            };
            if Instant::now() >= deadline {
                let why = format!("has not converged after {}s", self.timeout.as_secs());
                let all: Vec<(String, String)> =
                    waiting.into_iter().map(|s| (s, why.clone())).collect();
                return Err(self.failure(ctx, &all).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// What the user needs to see for each failed service: why, its last tasks, the tail of
    /// its logs (where the reason usually is).
    async fn failure(&self, ctx: &Context<'_>, failed: &[(String, String)]) -> ModuleError {
        let mut report = String::new();
        for (service, why) in failed {
            let svc = shell_quote(service);
            let script = format!(
                "docker service ps {svc} --no-trunc --format '  task {{{{.Name}}}} on {{{{.Node}}}}: {{{{.CurrentState}}}} {{{{.Error}}}}' 2>&1 | head -n 3; \
                 echo '  last log lines:'; \
                 docker service logs --raw --tail 8 {svc} 2>&1 | tail -n 8 | sed 's/^/    /'"
            );
            let details = match ctx.run(&script, None).await {
                Ok(out) => out.stdout_str(),
                Err(e) => format!("  (its tasks and logs could not be read: {e})\n"),
            };
            report.push_str(&format!("service `{service}` {why}\n{details}"));
        }
        ModuleError::NotConverged {
            report: report.trim_end().to_string(),
        }
    }
}
