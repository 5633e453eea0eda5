//! One command's channel: its output received, its slot under the per-host limit, and a
//! channel abandoned mid-command closed cleanly.

use std::io::Write;

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::sync::OwnedSemaphorePermit;

use crate::transport::Output;

use super::ABANDONED_TERM_WAIT;

/// One chunk of output passed on whole, at once.
pub(super) fn put(sink: &mut (dyn Write + Send), data: &[u8]) -> std::io::Result<()> {
    sink.write_all(data)?;
    sink.flush()
}

pub(super) enum Received {
    /// The server closed the channel; the output is complete.
    Closed(Output),
    /// The server would not run the command (its channel stays open until we close it).
    Refused,
    /// The connection ended before the channel closed.
    Lost,
}

pub(super) async fn receive(read: &mut ChannelReadHalf) -> Received {
    let mut output = Output::default();
    loop {
        match read.wait().await {
            Some(ChannelMsg::Data { data }) => output.stdout.extend_from_slice(&data),
            // 1 is SSH_EXTENDED_DATA_STDERR, the only extended stream defined.
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                output.stderr.extend_from_slice(&data)
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => output.code = Some(exit_status),
            Some(ChannelMsg::Failure) => return Received::Refused,
            Some(ChannelMsg::Close) => return Received::Closed(output),
            None => return Received::Lost,
            Some(_) => {}
        }
    }
}

/// An open channel and the concurrency slot it occupies. Unless [`ChannelSlot::finished`] says the
/// server already closed it, dropping it (error, or the `exec` future dropped by a timeout or
/// cancellation) ends the channel in the background before the slot is handed back.
///
/// OpenSSH keeps a session (and its `MaxSessions` slot) until its command exits, even after the
/// client closed the channel. So an abandoned command first gets SIGTERM (a `signal` request;
/// OpenSSH honours it since 7.9, but not for root logins) and EOF on stdin, and a short while to
/// exit, which the server confirms by closing the channel. Only then is the channel closed from
/// our side, which also closes the command's pipes.
pub(super) struct ChannelSlot {
    pub(super) parts: Option<(ChannelReadHalf, ChannelWriteHalf<Msg>)>,
    pub(super) permit: Option<OwnedSemaphorePermit>,
    /// The server accepted a command on this channel that may still be running.
    pub(super) started: bool,
    /// Stdin was closed already (sending EOF twice is a protocol error).
    pub(super) eof_sent: bool,
}

impl ChannelSlot {
    /// The server has closed the channel and russh has answered its close: nothing left to do.
    pub(super) fn finished(&mut self) {
        self.parts = None;
    }
}

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        let Some((mut read, write)) = self.parts.take() else {
            return;
        };
        let permit = self.permit.take();
        let (started, eof_sent) = (self.started, self.eof_sent);
        // Drop cannot wait; without a runtime (process exit) the connection dies with it anyway.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                abandon(&mut read, &write, started, eof_sent).await;
                drop(permit);
            });
        }
    }
}

/// Ends an abandoned channel. Reading all the while keeps an unread channel from stalling the
/// connection.
async fn abandon(
    read: &mut ChannelReadHalf,
    write: &ChannelWriteHalf<Msg>,
    started: bool,
    eof_sent: bool,
) {
    if started {
        if write.signal(Sig::TERM).await.is_err() || (!eof_sent && write.eof().await.is_err()) {
            // The connection is gone, and the channel with it.
            return;
        }
        let drained = async { while read.wait().await.is_some() {} };
        if tokio::time::timeout(ABANDONED_TERM_WAIT, drained)
            .await
            .is_ok()
        {
            return;
        }
    }
    // russh forgets a channel as soon as it has sent our close, so the server's confirmation
    // never reaches us: the slot is handed back now. A server still holding the session for a
    // command that outlives this refuses the next channel, and `open_channel` retries.
    let _ = write.close().await;
}
