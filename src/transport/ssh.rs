//! The SSH transport over russh: one connection per host, channels multiplexed over it.

use super::{Output, SshTarget, TransportError};

pub struct SshTransport {
    target: SshTarget,
}

impl SshTransport {
    pub async fn connect(target: SshTarget) -> Result<SshTransport, TransportError> {
        Err(TransportError::Ssh {
            host: target.host,
            reason: "not built yet".into(),
        })
    }

    pub async fn exec(
        &self,
        _command: &str,
        _stdin: Option<&[u8]>,
    ) -> Result<Output, TransportError> {
        Err(TransportError::Ssh {
            host: self.target.host.clone(),
            reason: "not built yet".into(),
        })
    }

    pub async fn close(&self) {}
}
