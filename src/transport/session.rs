//! [`Session`]: an open session channel on a connection, holding one of
//! the connection's `MaxSessions` slots, and how a helper command's exec
//! request and output are read on it.

use russh::{Channel, ChannelMsg, client};
use tokio::sync::OwnedSemaphorePermit;

/// An open session channel, holding one of the connection's slots.
pub(crate) struct Session {
    /// The channel.
    pub channel: Channel<client::Msg>,
    /// Released when the session is dropped.
    pub(crate) slot: OwnedSemaphorePermit,
}

/// Where a helper command's output goes, piece by piece (`true`: stderr).
pub(crate) type Output<'a> = dyn FnMut(bool, &[u8]) + Send + 'a;

impl Session {
    /// Asks the server to run `command` and waits for its answer: `true`
    /// once the command runs, `false` when the server refused it (an
    /// SFTP-only server does). Output that comes before the answer (usually
    /// none) goes to `output`. Use it before sending the command input: a
    /// server may drop the whole connection for data on a channel whose exec
    /// it refused (ProFTPD's mod_sftp does).
    pub(crate) async fn exec_confirmed(
        &mut self,
        command: &str,
        output: &mut Output<'_>,
    ) -> Result<bool, russh::Error> {
        self.channel.exec(true, command).await?;
        loop {
            match self.channel.wait().await {
                Some(ChannelMsg::Success) => return Ok(true),
                Some(ChannelMsg::Failure | ChannelMsg::Close) | None => return Ok(false),
                Some(ChannelMsg::Data { data }) => output(false, &data),
                Some(ChannelMsg::ExtendedData { data, .. }) => output(true, &data),
                Some(_) => {}
            }
        }
    }

    /// Ends the command's input, then hands its output to `output` until
    /// the channel closes: the exit status, if the server sent one. A
    /// refused exec (the only request of a helper that wants a reply) ends
    /// it at once, without a status: nothing will run, and the server need
    /// not close the channel.
    pub(crate) async fn finish(
        &mut self,
        output: &mut Output<'_>,
    ) -> Result<Option<u32>, russh::Error> {
        self.channel.eof().await?;
        let mut status = None;
        while let Some(msg) = self.channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => output(false, &data),
                ChannelMsg::ExtendedData { data, .. } => output(true, &data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close | ChannelMsg::Failure => break,
                _ => {}
            }
        }
        Ok(status)
    }
}
