//! What the default gated scenario (policies/tiny-model.toml) must show, by guest: serial lines,
//! audit records, and how many calls each guest makes. Only the entries of the guests booted apply.

/// Serial lines expected with the default policy, by guest.
pub const EXPECTED_LINES: &[(&str, &str)] = &[
    ("benign", "[guest benign] benign: wrote /project/SUMMARY.md"),
    (
        "benign",
        "probevisor: summary guest benign: finished: exited with code 0",
    ),
    ("mmio", "[guest mmio] mmio: id ok=true version=1 list_dir via doorbell: Ok("),
    (
        "mmio",
        "probevisor: summary guest mmio: stopped: bad tool device access: write to read-only register Status",
    ),
    ("test-misbehave", "probevisor: summary guest test-misbehave: stopped"),
    // Booted by `bochs-gate` only: the read succeeds (status digit 0) although the guest unmasked
    // every SSE exception before the gated call.
    ("test-mxcsr-unmask", "[guest test-mxcsr-unmask] 0"),
];

/// Audit records expected with the default policy: (guest, what, needles all in one record).
pub const EXPECTED_RECORDS: &[(&str, &str, &[&str])] = &[
    (
        "test-mxcsr-unmask",
        "the read of the guest with every SSE exception unmasked, judged by the model",
        &[
            r#""agent":"test-mxcsr-unmask""#,
            r#""tool":"read_file""#,
            r#""layer":"probe","status":"pass""#,
        ],
    ),
    (
        "benign",
        "benign allowed with the gate's probability",
        &[
            r#""agent":"benign""#,
            r#""tool":"write_file""#,
            r#""layer":"probe","status":"pass""#,
            r#""verdict":"allow""#,
        ],
    ),
    (
        "destructive",
        "destructive delete denied by a rule",
        &[
            r#""agent":"destructive""#,
            r#""tool":"delete_file""#,
            r#""layer":"rules""#,
            "deleting outside /project is refused",
        ],
    ),
    (
        "destructive",
        "destructive list_dir denied by its tier",
        &[
            r#""agent":"destructive""#,
            r#""tool":"list_dir""#,
            r#""verdict":"deny","layer":"tier""#,
        ],
    ),
    (
        "destructive",
        "second delete denied by the rate limit",
        &[
            r#""agent":"destructive""#,
            r#""tool":"delete_file""#,
            r#""verdict":"deny","layer":"rate_limit""#,
        ],
    ),
    (
        "destructive",
        "destructive run_command denied by the schema",
        &[
            r#""agent":"destructive""#,
            r#""tool":"run_command""#,
            r#""verdict":"deny","layer":"schema""#,
        ],
    ),
    (
        "mmio",
        "mmio doorbell list_dir through every layer, allowed with the gate's probability",
        &[
            r#""agent":"mmio""#,
            r#""tool":"list_dir""#,
            r#""layer":"schema","status":"pass""#,
            r#""layer":"probe","status":"pass""#,
            r#""verdict":"allow""#,
        ],
    ),
    (
        "mmio",
        "mmio write to the read-only STATUS register refused",
        &[
            r#""agent":"mmio""#,
            r#""tool":"tool_device""#,
            "write to read-only register Status",
        ],
    ),
    (
        "test-misbehave",
        "misbehave write_file denied by its tier",
        &[
            r#""agent":"test-misbehave""#,
            r#""tool":"write_file""#,
            r#""verdict":"deny","layer":"tier""#,
        ],
    ),
    (
        "test-misbehave",
        "misbehave bad pointer refused",
        &[
            r#""agent":"test-misbehave""#,
            r#""tool":"hypercall""#,
            "bad pointer",
        ],
    ),
    (
        "test-misbehave",
        "misbehave write outside memory",
        &[
            r#""agent":"test-misbehave""#,
            r#""tool":"memory_violation""#,
            "0x70000000",
        ],
    ),
];

/// Tool calls (decided, refused as malformed) each guest makes in the default scenario, counted from
/// the guests' code: the hypervisor's own counters must not be the only witness.
pub const EXPECTED_CALLS: &[(&str, u64, u64)] = &[
    ("benign", 3, 0),
    ("destructive", 4, 0),
    ("mmio", 1, 0),
    ("test-misbehave", 1, 1),
    ("test-mxcsr-unmask", 1, 0),
];
