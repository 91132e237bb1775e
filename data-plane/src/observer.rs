//! Observer mode (DESIGN §1, §6, §9), decided here and only here: an execution started by
//! a `whatsapp_event` trigger may read the event, but its send steps go nowhere unless a
//! step names its own destination number. Every other trigger type may send.

use switchboard_proto::wire::TriggerType;

/// The flags an execution carries (`system.observer_mode`, `system.allow_outbound`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub observer_mode: bool,
    pub allow_outbound: bool,
}

/// The mode of an execution started by a trigger of `trigger_type` (test runs included:
/// an event test runs in observer mode like the live event).
pub const fn of(trigger_type: TriggerType) -> Mode {
    let observer_mode = matches!(trigger_type, TriggerType::WhatsappEvent);
    Mode {
        observer_mode,
        allow_outbound: !observer_mode,
    }
}

/// Whether a send step of an execution goes out: always, except in observer mode without
/// a destination of the step's own.
pub fn sends(observer_mode: bool, to_phone_number: Option<&str>) -> bool {
    !observer_mode || to_phone_number.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_event_triggers_observe() {
        for t in TriggerType::ALL {
            let mode = of(t);
            assert_eq!(mode.observer_mode, t == TriggerType::WhatsappEvent, "{t}");
            assert_eq!(mode.allow_outbound, !mode.observer_mode, "{t}");
        }
        assert!(sends(false, None));
        assert!(!sends(true, None));
        assert!(sends(true, Some("+15550000001")));
    }
}
