//! The wire format: channel names for topics and versioned JSON envelopes for events.

use serde::{Deserialize, Serialize};
use stpt_core::{LiveEvent, MachineId, Topic};

/// The envelope version this build writes and reads.
const VERSION: u32 = 1;

#[derive(Serialize)]
struct Outgoing<'a> {
    v: u32,
    event: &'a LiveEvent,
}

#[derive(Deserialize)]
struct Incoming {
    v: u32,
    event: serde_json::Value,
}

/// The channel of a topic under `prefix`.
pub(crate) fn channel(prefix: &str, topic: Topic) -> String {
    match topic {
        Topic::Machines => format!("{prefix}:machines"),
        Topic::Machine(id) => format!("{prefix}:machine:{id}"),
    }
}

/// The pattern matching every channel under `prefix`.
pub(crate) fn pattern(prefix: &str) -> String {
    format!("{prefix}:*")
}

/// The topic of a channel under `prefix`, if it is one of ours.
pub(crate) fn topic(prefix: &str, channel: &str) -> Option<Topic> {
    let rest = channel.strip_prefix(prefix)?.strip_prefix(':')?;
    if rest == "machines" {
        return Some(Topic::Machines);
    }
    let id = rest.strip_prefix("machine:")?.parse::<i64>().ok()?;
    Some(Topic::Machine(MachineId(id)))
}

pub(crate) fn encode(event: &LiveEvent) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Outgoing { v: VERSION, event })
}

/// Why an incoming message was not delivered.
#[derive(Debug)]
pub(crate) enum Skip {
    /// Written by a server with another envelope version.
    Version(u32),
    /// Not an envelope, or an event kind this build does not know.
    Unreadable(serde_json::Error),
}

pub(crate) fn decode(payload: &[u8]) -> Result<LiveEvent, Skip> {
    let incoming: Incoming = serde_json::from_slice(payload).map_err(Skip::Unreadable)?;
    if incoming.v != VERSION {
        return Err(Skip::Version(incoming.v));
    }
    serde_json::from_value(incoming.event).map_err(Skip::Unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stpt_core::{MachineStatus, Status};

    #[test]
    fn channels_round_trip() {
        for topic in [Topic::Machines, Topic::Machine(MachineId(42))] {
            assert_eq!(topic_of("stpt", &channel("stpt", topic)), Some(topic));
        }
        assert_eq!(topic_of("stpt", "other:machines"), None);
        assert_eq!(topic_of("stpt", "stpt:machine:x"), None);
        assert_eq!(topic_of("stpt", "stptx:machines"), None);
    }

    fn topic_of(prefix: &str, channel: &str) -> Option<Topic> {
        topic(prefix, channel)
    }

    #[test]
    fn envelopes_round_trip_and_skip_unknown_versions_and_kinds() {
        let event = LiveEvent::MachineStatus {
            machine_id: MachineId(1),
            machine_name: "rig".into(),
            status: MachineStatus::Run(Status::Running),
        };
        let payload = encode(&event).unwrap();
        assert_eq!(decode(&payload).unwrap(), event);
        assert!(matches!(
            decode(br#"{"v":2,"event":{}}"#),
            Err(Skip::Version(2))
        ));
        assert!(matches!(
            decode(br#"{"v":1,"event":{"type":"from_the_future"}}"#),
            Err(Skip::Unreadable(_))
        ));
        assert!(matches!(decode(b"garbage"), Err(Skip::Unreadable(_))));
    }
}
