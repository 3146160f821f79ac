//! The adapters Pigeon knows, by name and by RaspiSMS class name.

/// One configuration field an adapter reads from a phone's `adapter_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataField {
    pub name: &'static str,
    pub description: &'static str,
    pub required: bool,
}

/// What an adapter can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub flash: bool,
    pub mms_sending: bool,
    pub mms_reception: bool,
    pub reception: bool,
    pub delivery_reports: bool,
    pub inbound_calls: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adapter {
    /// Pigeon's name, stored on the phone.
    pub name: &'static str,
    /// The RaspiSMS PHP class name, accepted as an alias.
    pub class: &'static str,
    pub fields: &'static [DataField],
    pub capabilities: Capabilities,
}

/// RaspiSMS's TestAdapter: always succeeds, keeps what it sent, receives by injection.
const TEST: Adapter = Adapter {
    name: "test",
    class: "adapters\\TestAdapter",
    fields: &[],
    capabilities: Capabilities {
        flash: true,
        mms_sending: true,
        mms_reception: true,
        reception: true,
        delivery_reports: true,
        inbound_calls: true,
    },
};

const ADAPTERS: &[Adapter] = &[TEST];

/// Finds an adapter by Pigeon name or RaspiSMS class name (with or without the leading `\`).
pub fn find(name_or_class: &str) -> Option<&'static Adapter> {
    let wanted = name_or_class.trim().trim_start_matches('\\');
    ADAPTERS
        .iter()
        .find(|a| a.name == wanted || a.class.eq_ignore_ascii_case(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_name_and_class() {
        assert_eq!(find("test").map(|a| a.name), Some("test"));
        assert_eq!(find("adapters\\TestAdapter").map(|a| a.name), Some("test"));
        assert_eq!(
            find("\\adapters\\TestAdapter").map(|a| a.name),
            Some("test")
        );
        assert!(find("adapters\\OctopushShortcodeAdapter").is_none());
        assert!(find("").is_none());
    }
}
