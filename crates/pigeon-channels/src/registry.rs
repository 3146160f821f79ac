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
    /// Inbound SMS arrive (by callback, event or polling).
    pub reception: bool,
    pub delivery_reports: bool,
    pub inbound_calls: bool,
    /// Sends in flight at once on one phone (a modem: 1; an HTTP provider: many).
    pub concurrency: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adapter {
    /// Pigeon's name, stored on the phone.
    pub name: &'static str,
    /// The RaspiSMS PHP class name, accepted as an alias.
    pub class: &'static str,
    /// RaspiSMS's `meta_uid`, used in callback URLs; accepted there beside `name`.
    pub uid: &'static str,
    pub fields: &'static [DataField],
    pub capabilities: Capabilities,
}

/// RaspiSMS's TestAdapter: always succeeds, keeps what it sent, receives by injection.
pub const TEST: Adapter = Adapter {
    name: "test",
    class: "adapters\\TestAdapter",
    uid: "test_adapter",
    fields: &[],
    capabilities: Capabilities {
        flash: true,
        mms_sending: true,
        mms_reception: true,
        reception: true,
        delivery_reports: true,
        inbound_calls: true,
        concurrency: 4,
    },
};

/// A configurable phone for tests, demos and benchmarks (see [`crate::simulator`]).
pub const SIMULATOR: Adapter = Adapter {
    name: "simulator",
    class: "adapters\\SimulatorAdapter",
    uid: "simulator_adapter",
    fields: &[],
    capabilities: Capabilities {
        flash: true,
        mms_sending: false,
        mms_reception: false,
        reception: true,
        delivery_reports: true,
        inbound_calls: false,
        concurrency: 64,
    },
};

/// A Kannel `sendsms` interface, as RaspiSMS's KannelAdapter uses it.
pub const KANNEL: Adapter = Adapter {
    name: "kannel",
    class: "adapters\\KannelAdapter",
    uid: "kannel_adapter",
    fields: &[
        DataField {
            name: "kannel_sendsms_url",
            description: "URL of Kannel's sendsms interface",
            required: true,
        },
        DataField {
            name: "username",
            description: "sendsms-user username",
            required: true,
        },
        DataField {
            name: "password",
            description: "sendsms-user password",
            required: true,
        },
        DataField {
            name: "from",
            description: "sender number or name",
            required: true,
        },
        DataField {
            name: "dlr_url",
            description: "delivery report URL (default: Pigeon's)",
            required: false,
        },
        DataField {
            name: "smsc",
            description: "preferred SMSC id",
            required: false,
        },
    ],
    capabilities: Capabilities {
        flash: false,
        mms_sending: false,
        mms_reception: false,
        reception: true,
        delivery_reports: true,
        inbound_calls: false,
        concurrency: 16,
    },
};

/// A Reach by TalkyLabs account's messaging API (see [`crate::reach`]).
pub const REACH: Adapter = Adapter {
    name: "reach",
    class: "adapters\\ReachAdapter",
    uid: "reach_adapter",
    fields: &[
        DataField {
            name: "api_user",
            description: "API user of the Reach applet (the ApiUser header)",
            required: true,
        },
        DataField {
            name: "api_key",
            description: "API key of the Reach applet (live or test)",
            required: true,
        },
        DataField {
            name: "src",
            description: "sender: an E.164 number or the alphanumeric sender of the applet",
            required: true,
        },
        DataField {
            name: "base_url",
            description: "API base URL (default: https://api.reach.talkylabs.com)",
            required: false,
        },
    ],
    capabilities: Capabilities {
        flash: false,
        mms_sending: false,
        mms_reception: false,
        reception: false,
        delivery_reports: true,
        inbound_calls: false,
        concurrency: 16,
    },
};

/// The fields both OVH adapters share.
macro_rules! ovh_fields {
    ($($line:expr),* $(,)?) => {
        &[
            DataField {
                name: "service_name",
                description: "the OVH SMS account (sms-xx11111-1)",
                required: true,
            },
            $($line,)*
            DataField {
                name: "app_key",
                description: "OVH application key",
                required: true,
            },
            DataField {
                name: "app_secret",
                description: "OVH application secret",
                required: true,
            },
            DataField {
                name: "consumer_key",
                description: "OVH consumer key",
                required: true,
            },
            DataField {
                name: "endpoint",
                description: "API endpoint (default: https://eu.api.ovh.com/1.0)",
                required: false,
            },
            DataField {
                name: "delete_incoming",
                description: "1 to delete incoming SMS at OVH once read (as RaspiSMS does)",
                required: false,
            },
        ]
    };
}

/// What both OVH adapters can do: receive by polling, with reports by OVH's account callback.
const OVH_CAPABILITIES: Capabilities = Capabilities {
    flash: false,
    mms_sending: false,
    mms_reception: false,
    reception: true,
    delivery_reports: true,
    inbound_calls: false,
    concurrency: 8,
};

/// An OVH SMS account's virtual number (see [`crate::ovh`]).
pub const OVH_VIRTUAL_NUMBER: Adapter = Adapter {
    name: "ovh_virtual_number",
    class: "adapters\\OvhSmsVirtualNumberAdapter",
    uid: "ovh_sms_virtual_number_adapter",
    fields: ovh_fields![DataField {
        name: "number",
        description: "the virtual number, E.164 (+33612345678)",
        required: true,
    }],
    capabilities: OVH_CAPABILITIES,
};

/// An OVH SMS account's jobs, from OVH's short code or a named sender (see [`crate::ovh`]).
pub const OVH_SHORTCODE: Adapter = Adapter {
    name: "ovh_shortcode",
    class: "adapters\\OvhSmsShortcodeAdapter",
    uid: "ovh_sms_shortcode_adapter",
    fields: ovh_fields![
        DataField {
            name: "sender",
            description: "sender name, 3 to 11 characters (default: OVH's short code, which takes replies)",
            required: false,
        },
        DataField {
            name: "no_stop_clause",
            description: "1 for no STOP mention (non-commercial SMS only)",
            required: false,
        },
    ],
    capabilities: OVH_CAPABILITIES,
};

/// A paired device agent (an Android phone or a Linux box running `pigeon agent`), created
/// through the Astandes API's devices.
pub const AGENT: Adapter = Adapter {
    name: "agent",
    class: "adapters\\PigeonAgentAdapter",
    uid: "agent_adapter",
    fields: &[],
    capabilities: Capabilities {
        flash: false,
        mms_sending: false,
        mms_reception: false,
        reception: true,
        delivery_reports: true,
        inbound_calls: false,
        concurrency: 1,
    },
};

const ADAPTERS: &[Adapter] = &[
    TEST,
    SIMULATOR,
    KANNEL,
    REACH,
    OVH_VIRTUAL_NUMBER,
    OVH_SHORTCODE,
    AGENT,
];

/// Finds an adapter by Pigeon name, RaspiSMS class name (with or without the leading `\`) or
/// RaspiSMS uid.
pub fn find(name: &str) -> Option<&'static Adapter> {
    let wanted = name.trim().trim_start_matches('\\');
    ADAPTERS.iter().find(|a| {
        a.name == wanted
            || a.uid.eq_ignore_ascii_case(wanted)
            || a.class.eq_ignore_ascii_case(wanted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_name_class_and_uid() {
        assert_eq!(find("test").map(|a| a.name), Some("test"));
        assert_eq!(find("adapters\\TestAdapter").map(|a| a.name), Some("test"));
        assert_eq!(
            find("\\adapters\\TestAdapter").map(|a| a.name),
            Some("test")
        );
        assert_eq!(find("kannel_adapter").map(|a| a.name), Some("kannel"));
        assert_eq!(
            find("adapters\\KannelAdapter").map(|a| a.name),
            Some("kannel")
        );
        assert_eq!(find("simulator").map(|a| a.name), Some("simulator"));
        assert_eq!(
            find("adapters\\ReachAdapter").map(|a| a.name),
            Some("reach")
        );
        assert_eq!(find("reach_adapter").map(|a| a.name), Some("reach"));
        assert_eq!(
            find("adapters\\OvhSmsVirtualNumberAdapter").map(|a| a.name),
            Some("ovh_virtual_number")
        );
        assert_eq!(
            find("ovh_sms_shortcode_adapter").map(|a| a.name),
            Some("ovh_shortcode")
        );
        assert!(find("adapters\\OctopushShortcodeAdapter").is_none());
        assert!(find("").is_none());
    }
}
