//! A reference to an actor that is swapped when the actor is restarted, so senders never
//! hold a stale `ActorRef` (a restarted actor has a new one).

use std::sync::{Arc, RwLock};

use ractor::{ActorRef, Message};

/// The current actor behind a name that outlives its restarts; `None` while there is none.
pub struct SwapRef<M: Message>(Arc<RwLock<Option<ActorRef<M>>>>);

impl<M: Message> Clone for SwapRef<M> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<M: Message> Default for SwapRef<M> {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(None)))
    }
}

impl<M: Message> SwapRef<M> {
    /// A handle on `actor`.
    pub fn new(actor: ActorRef<M>) -> Self {
        Self(Arc::new(RwLock::new(Some(actor))))
    }

    /// Sends `msg` to the current actor; false (and a warning) when there is none or it
    /// is stopping: its sender re-reads or re-sends what matters on its next round.
    pub fn send(&self, msg: M) -> bool {
        let sent = self.get().is_some_and(|a| a.cast(msg).is_ok());
        if !sent {
            tracing::warn!(
                actor = std::any::type_name::<M>(),
                "not running; message dropped"
            );
        }
        sent
    }

    /// The current actor.
    pub fn get(&self) -> Option<ActorRef<M>> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the actor (after a restart), or clears it.
    pub fn swap(&self, actor: Option<ActorRef<M>>) {
        match self.0.write() {
            Ok(mut guard) => *guard = actor,
            Err(poisoned) => *poisoned.into_inner() = actor,
        }
    }
}
