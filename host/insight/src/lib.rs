//! Insight across the modules: the event log going out — to
//! `event-subscriber` plugins ([`subscribers`]) and to the live stream
//! ([`stream`]).

pub mod stream;
pub mod subscribers;

pub use subscribers::{FeedConfig, FeedStatus, Feeder, Feeds};
