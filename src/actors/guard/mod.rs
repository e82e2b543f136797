//! The risk guards' own loop: one actor per guarded account, fed with every snapshot the
//! account's sync fetches. See [`actor`] for the path a snapshot takes.

mod act;
pub mod actor;
mod alerting;
mod blind;
pub mod closed;
mod enforce;
mod fenced;
mod intents;
mod memory;
pub mod round;
mod sampling;

pub use actor::{GuardActor, GuardArgs, GuardHandle, GuardMsg};
pub use closed::ServiceCloses;
pub use round::RoundOutcome;
