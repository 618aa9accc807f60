//! Status and keepalive timing: when to send a standby status update, when to ask a silent
//! server for a reply, when to give up on it, and when to check the publication again.

use std::time::{Duration, Instant};

use crate::capture::{GROUP_WAIT, PUBLICATION_CHECK, REPLY_WAIT_INTERVALS};

/// What a quiet spell (no frame within the wait) calls for.
pub(super) enum Quiet {
    /// Nothing yet.
    Wait,
    /// Ask the server for a reply (a status update with `reply_requested`).
    Ask,
    /// The server was asked and stayed silent past the reply wait: the connection is lost.
    GiveUp { silent: Duration },
}

/// The clocks of one streaming connection.
pub(super) struct Liveness {
    pub(super) status_interval: Duration,
    /// How long an asked server may stay silent.
    pub(super) reply_wait: Duration,
    last_status: Instant,
    last_publication_check: Instant,
    /// When the server was last heard from, and when it was asked for a sign of life since.
    last_heard: Instant,
    asked: Option<Instant>,
}

impl Liveness {
    pub(super) fn new(status_interval: Duration) -> Liveness {
        let now = Instant::now();
        Liveness {
            status_interval,
            reply_wait: status_interval * REPLY_WAIT_INTERVALS,
            last_status: now,
            last_publication_check: now,
            last_heard: now,
            asked: None,
        }
    }

    /// How long to wait for the next frame: a short pause while records wait to be appended,
    /// else until it is time to ask a silent server for a reply, or to give up on it.
    pub(super) fn wait(&self, nothing_pending: bool) -> Duration {
        if !nothing_pending {
            return GROUP_WAIT;
        }
        let due = match self.asked {
            None => self.last_heard + self.status_interval,
            Some(at) => at + self.reply_wait,
        };
        self.status_interval
            .min(due.saturating_duration_since(Instant::now()))
    }

    /// A frame arrived.
    pub(super) fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.asked = None;
    }

    /// What a quiet spell calls for now.
    pub(super) fn quiet(&self) -> Quiet {
        match self.asked {
            Some(at) if at.elapsed() >= self.reply_wait => Quiet::GiveUp {
                silent: self.last_heard.elapsed(),
            },
            None if self.last_heard.elapsed() >= self.status_interval => Quiet::Ask,
            _ => Quiet::Wait,
        }
    }

    /// A status update was sent; `asked`: with `reply_requested`.
    pub(super) fn status_sent(&mut self, asked: bool) {
        self.last_status = Instant::now();
        if asked {
            self.asked = Some(self.last_status);
        }
    }

    /// Whether a status update is due whatever the position.
    pub(super) fn status_due(&self) -> bool {
        self.last_status.elapsed() >= self.status_interval
    }

    /// Whether the publication is to be checked now (then not again for a while).
    pub(super) fn publication_check_due(&mut self) -> bool {
        if self.last_publication_check.elapsed() < PUBLICATION_CHECK {
            return false;
        }
        self.last_publication_check = Instant::now();
        true
    }
}
