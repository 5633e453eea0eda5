//! `deploy logs`: a service's logs, streamed from the main manager.

use std::future::Future;
use std::io::Write;

use super::cluster::{Cluster, OpsError};
use crate::template::shell_quote;

/// Where `docker service logs` starts and whether it goes on.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    /// A duration (`10m`) or a time (`2024-05-01T10:00:00`), as Docker takes it.
    pub since: Option<String>,
    pub tail: Option<u64>,
}

/// The command that prints a service's logs on the manager. Following, it also watches its
/// stdin: when we go away (Ctrl-C, a killed process, a lost connection) the channel closes,
/// `cat` sees EOF and stops `docker service logs` rather than leaving it to run on the manager.
fn logs_command(service: &str, o: &LogOptions) -> String {
    let mut cmd = String::from("docker service logs");
    if o.follow {
        cmd.push_str(" --follow");
    }
    if let Some(s) = &o.since {
        cmd.push_str(&format!(" --since {}", shell_quote(s)));
    }
    if let Some(n) = o.tail {
        cmd.push_str(&format!(" --tail {n}"));
    }
    cmd.push(' ');
    cmd.push_str(&shell_quote(service));
    if !o.follow {
        return cmd;
    }
    // A background job's stdin is /dev/null in a non-interactive shell: the watcher reads the
    // channel's stdin through fd 3.
    format!(
        "exec 3<&0; {cmd} & p=$!; {{ cat <&3 >/dev/null; kill $p; }} >/dev/null 2>&1 & w=$!; \
         wait $p; s=$?; kill $w 2>/dev/null; exit $s"
    )
}

/// Streams the logs of every task of `service` (`<stack>_<name>`) from the main manager to
/// `out`/`err` until they end or `stop` resolves (then the remote command is stopped and the
/// connection closed). Returns the remote exit status, `Some(0)` when stopped.
pub async fn logs(
    c: &Cluster,
    service: &str,
    o: &LogOptions,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    stop: impl Future<Output = ()>,
) -> Result<Option<u32>, OpsError> {
    let t = c.connect(&c.manager).await?;
    let command = logs_command(service, o);
    let result = tokio::select! {
        r = t.exec_streaming(&command, out, err) => r.map_err(|source| OpsError::Transport {
            host: c.manager.0.clone(),
            source: Box::new(source),
        }),
        () = stop => Ok(Some(0)),
    };
    t.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_commands() {
        let plain = logs_command(
            "st_web",
            &LogOptions {
                tail: Some(5),
                since: Some("10m".into()),
                ..LogOptions::default()
            },
        );
        assert_eq!(plain, "docker service logs --since 10m --tail 5 st_web");
        let follow = logs_command(
            "st_web",
            &LogOptions {
                follow: true,
                ..LogOptions::default()
            },
        );
        assert!(
            follow.contains("docker service logs --follow st_web &"),
            "{follow}"
        );
        assert!(follow.contains("cat <&3"), "{follow}");
    }
}
