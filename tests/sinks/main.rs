//! The message sinks — webhook, Slack, Teams, Discord, Google Chat — against a real HTTP receiver
//! on 127.0.0.1: the exact request each sends for a firing alert, its resolution and a digest;
//! and delivery as a user sees it: `429 Retry-After` waited for, a 500 retried, a 401 reported
//! once with the channel's name, a stalled channel not delaying another. One module per sink.

mod delivery;
mod discord;
mod evidence;
#[path = "../support/explained.rs"]
mod explained;
mod fixtures;
mod googlechat;
#[path = "../support/receiver.rs"]
mod receiver;
mod slack;
mod teams;
mod webhook;
