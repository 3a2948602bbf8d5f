//! The gate decides who a connection is (and, later, whether it may connect and act at
//! this rate). Today every connection is anonymous and its identity is its client id;
//! token verification and rate limits plug in here.

use crate::chat::{ConnId, Sender};

/// Admits connections and names their identity.
#[derive(Debug, Clone, Default)]
pub struct Gate;

impl Gate {
    /// The identity of a newly admitted connection.
    pub fn identify(&self, conn: &ConnId) -> Sender {
        Sender {
            conn: conn.clone(),
            user: conn.to_string(),
        }
    }
}
