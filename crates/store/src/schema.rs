//! The schema, as an ordered list of versioned migration steps.
//!
//! Invariants:
//! - A step's SQL never changes once released: a schema change is a new step with a higher
//!   version. `liftguard_schema_migrations` records every applied step and the backend
//!   flavour chosen when the schema was first created (a database created as plain
//!   PostgreSQL stays plain when TimescaleDB appears later; converting is a deliberate
//!   operation, not a side effect of starting a service).
//! - One logical schema on every backend: the same tables, columns and natural keys.
//!   PostgreSQL stores times as TIMESTAMPTZ (`*_time`/`*_at`, µs precision, so exactly the
//!   µs integers of the wire); SQLite as INTEGER µs (`*_us`). Text ids use the "C"
//!   collation on PostgreSQL (byte order), which is SQLite's BINARY order, so sorted
//!   results agree across backends.
//! - Natural keys include the time column, as TimescaleDB requires of unique indexes on
//!   hypertables: reps `(athlete_id, start_time)`, kinematics `(athlete_id, time)`.
//! - Record tables have no foreign keys to the registry: they are facts produced by the
//!   pipeline (which resolved the athlete at ingest) and are written at high rate.

use crate::Backend;

/// One migration step.
pub(crate) struct Step {
    pub version: i64,
    pub name: &'static str,
    /// The PostgreSQL statements for a flavour (Timescale or plain Postgres).
    pub pg: fn(Backend) -> &'static [&'static str],
    pub sqlite: &'static [&'static str],
}

pub(crate) const STEPS: &[Step] = &[
    Step {
        version: 1,
        name: "registry",
        pg: |_| PG_REGISTRY,
        sqlite: SQLITE_REGISTRY,
    },
    Step {
        version: 2,
        name: "records",
        pg: |b| match b {
            Backend::Timescale => PG_RECORDS_TIMESCALE,
            _ => PG_RECORDS_PARTITIONED,
        },
        sqlite: SQLITE_RECORDS,
    },
    Step {
        version: 3,
        name: "processor_state",
        pg: |_| PG_PROCESSOR_STATE,
        sqlite: SQLITE_PROCESSOR_STATE,
    },
    // Alerts, risk, flare-up reports, webhooks and their outbox; the SQL lives with the
    // code that uses it (`alerts.rs`).
    Step {
        version: 4,
        name: "alerts",
        pg: |b| match b {
            Backend::Timescale => crate::alerts::PG_ALERTS_TIMESCALE,
            _ => crate::alerts::PG_ALERTS_PLAIN,
        },
        sqlite: crate::alerts::SQLITE_ALERTS,
    },
    Step {
        version: 5,
        name: "access",
        pg: |_| crate::access::PG_ACCESS,
        sqlite: crate::access::SQLITE_ACCESS,
    },
    // Rollups (continuous aggregates on TimescaleDB, incrementally refreshed tables on the
    // fallbacks) and the extensor_events view; the SQL lives in `rollups.rs`.
    Step {
        version: 6,
        name: "timescale_ops",
        pg: crate::rollups::v6_pg,
        sqlite: crate::rollups::V6_SQLITE,
    },
    // Per athlete-week-exercise score distributions for population trends (a continuous
    // aggregate on TimescaleDB, a refreshed table on the fallbacks): `distributions.rs`.
    Step {
        version: 7,
        name: "score_distributions",
        pg: crate::distributions::v7_pg,
        sqlite: crate::distributions::V7_SQLITE,
    },
];

/// Processor checkpoints: one row per athlete, the serialised per-athlete state with the
/// input offsets it reflects (inside the blob) and `steps`, the number of input records
/// it has applied, which fences out a stale writer (see `checkpoint.rs`). A plain table on
/// every flavour: small (one row per athlete), updated in place, never queried by time.
const PG_PROCESSOR_STATE: &[&str] = &[r#"CREATE TABLE processor_state (
    athlete_id TEXT COLLATE "C" PRIMARY KEY,
    gym_id TEXT COLLATE "C" NOT NULL,
    steps BIGINT NOT NULL CHECK (steps >= 0),
    state BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"#];

const SQLITE_PROCESSOR_STATE: &[&str] = &["CREATE TABLE processor_state (
    athlete_id TEXT PRIMARY KEY,
    gym_id TEXT NOT NULL,
    steps INTEGER NOT NULL CHECK (steps >= 0),
    state BLOB NOT NULL,
    updated_us INTEGER NOT NULL
) STRICT"];

/// The migration versions this build knows, ascending (what a fully migrated database
/// records in `liftguard_schema_migrations`).
pub fn known_versions() -> Vec<i64> {
    let mut v: Vec<i64> = STEPS.iter().map(|s| s.version).collect();
    v.sort_unstable();
    v
}

pub(crate) const PG_MIGRATIONS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS liftguard_schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    backend TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

pub(crate) const SQLITE_MIGRATIONS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS liftguard_schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    backend TEXT NOT NULL,
    applied_us INTEGER NOT NULL
) STRICT";

const PG_REGISTRY: &[&str] = &[
    r#"CREATE TABLE gyms (
    gym_id TEXT COLLATE "C" PRIMARY KEY,
    slug TEXT COLLATE "C" NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
)"#,
    r#"CREATE TABLE athletes (
    athlete_id TEXT COLLATE "C" PRIMARY KEY,
    gym_id TEXT COLLATE "C" NOT NULL REFERENCES gyms (gym_id),
    external_ref TEXT COLLATE "C" NOT NULL,
    display_name TEXT NOT NULL,
    height_m REAL NOT NULL,
    mass_kg REAL NOT NULL,
    capacity_deadlift_kg REAL NOT NULL,
    capacity_squat_kg REAL NOT NULL,
    capacity_swing_kg REAL NOT NULL,
    birth_year INTEGER NOT NULL,
    sex TEXT NOT NULL,
    training_age_years INTEGER NOT NULL,
    sport TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (gym_id, external_ref),
    UNIQUE (gym_id, athlete_id)
)"#,
    r#"CREATE TABLE sensors (
    sensor_id TEXT COLLATE "C" PRIMARY KEY,
    gym_id TEXT COLLATE "C" NOT NULL REFERENCES gyms (gym_id),
    athlete_id TEXT COLLATE "C" NOT NULL,
    placement TEXT NOT NULL CHECK (placement IN ('thoracolumbar', 'sacrum')),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (gym_id, athlete_id) REFERENCES athletes (gym_id, athlete_id)
)"#,
    "CREATE INDEX sensors_gym_idx ON sensors (gym_id, sensor_id)",
    "CREATE INDEX sensors_athlete_idx ON sensors (athlete_id)",
    r#"CREATE TABLE api_keys (
    key_id TEXT COLLATE "C" PRIMARY KEY,
    gym_id TEXT COLLATE "C" NOT NULL REFERENCES gyms (gym_id),
    label TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
)"#,
    "CREATE INDEX api_keys_gym_idx ON api_keys (gym_id)",
];

const SQLITE_REGISTRY: &[&str] = &[
    "CREATE TABLE gyms (
    gym_id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_us INTEGER NOT NULL
) STRICT",
    "CREATE TABLE athletes (
    athlete_id TEXT PRIMARY KEY,
    gym_id TEXT NOT NULL REFERENCES gyms (gym_id),
    external_ref TEXT NOT NULL,
    display_name TEXT NOT NULL,
    height_m REAL NOT NULL,
    mass_kg REAL NOT NULL,
    capacity_deadlift_kg REAL NOT NULL,
    capacity_squat_kg REAL NOT NULL,
    capacity_swing_kg REAL NOT NULL,
    birth_year INTEGER NOT NULL,
    sex TEXT NOT NULL,
    training_age_years INTEGER NOT NULL,
    sport TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    UNIQUE (gym_id, external_ref),
    UNIQUE (gym_id, athlete_id)
) STRICT",
    "CREATE TABLE sensors (
    sensor_id TEXT PRIMARY KEY,
    gym_id TEXT NOT NULL REFERENCES gyms (gym_id),
    athlete_id TEXT NOT NULL,
    placement TEXT NOT NULL CHECK (placement IN ('thoracolumbar', 'sacrum')),
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    FOREIGN KEY (gym_id, athlete_id) REFERENCES athletes (gym_id, athlete_id)
) STRICT",
    "CREATE INDEX sensors_gym_idx ON sensors (gym_id, sensor_id)",
    "CREATE INDEX sensors_athlete_idx ON sensors (athlete_id)",
    "CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    gym_id TEXT NOT NULL REFERENCES gyms (gym_id),
    label TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE CHECK (length(secret_sha256) = 64),
    created_us INTEGER NOT NULL,
    revoked_us INTEGER
) STRICT",
    "CREATE INDEX api_keys_gym_idx ON api_keys (gym_id)",
];

/// Columns of `reps` on PostgreSQL (both flavours). Every `RepRecord` field is a column;
/// `ev_*` are the `ExtensorEvidence` fields, all NULL when a rep has no evidence.
/// `stored_at` is when the current version of the row was written.
macro_rules! pg_reps_columns {
    () => {
        r#"
    rep_id TEXT NOT NULL,
    gym_id TEXT COLLATE "C" NOT NULL,
    athlete_id TEXT COLLATE "C" NOT NULL,
    set_id TEXT NOT NULL,
    rep_index BIGINT NOT NULL,
    exercise INTEGER NOT NULL,
    exercise_inferred BOOLEAN NOT NULL,
    load_kg REAL NOT NULL,
    start_time TIMESTAMPTZ NOT NULL,
    end_time TIMESTAMPTZ NOT NULL,
    bottom_time TIMESTAMPTZ NOT NULL,
    concentric_start_time TIMESTAMPTZ NOT NULL,
    eccentric_s REAL NOT NULL,
    concentric_s REAL NOT NULL,
    peak_lumbar_flexion_deg REAL NOT NULL,
    peak_trunk_inclination_deg REAL NOT NULL,
    ldi REAL NOT NULL,
    peak_load_moment_nm REAL NOT NULL,
    extensor_event BOOLEAN NOT NULL,
    ev_peak_lumbar_ext_velocity_dps REAL,
    ev_lumbar_share_duration_ms REAL,
    ev_max_lumbar_share REAL,
    ev_ldi REAL,
    ev_onset_lag_ms REAL,
    ev_bottom_lumbar_flexion_deg REAL,
    ev_peak_load_moment_nm REAL,
    ev_top_hyperextension_deg REAL,
    fatigue_score REAL NOT NULL,
    fatigue_dose REAL NOT NULL,
    fatigue_observed REAL NOT NULL,
    stability_deficit REAL NOT NULL,
    damage DOUBLE PRECISION NOT NULL,
    cumulative_damage DOUBLE PRECISION NOT NULL,
    session_id TEXT NOT NULL,
    clock_skew_flagged BOOLEAN NOT NULL,
    model_version BIGINT NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (athlete_id, start_time)"#
    };
}

/// Columns of `kinematics` on PostgreSQL. Trunk and pelvis are NULL when the chunk did
/// not carry them.
macro_rules! pg_kinematics_columns {
    () => {
        r#"
    gym_id TEXT COLLATE "C" NOT NULL,
    athlete_id TEXT COLLATE "C" NOT NULL,
    time TIMESTAMPTZ NOT NULL,
    lumbar_flexion_deg REAL NOT NULL,
    trunk_inclination_deg REAL,
    pelvis_inclination_deg REAL,
    PRIMARY KEY (athlete_id, time)"#
    };
}

const PG_RECORDS_TIMESCALE: &[&str] = &[
    concat!("CREATE TABLE reps (", pg_reps_columns!(), "\n)"),
    // Reps are sparse (a few hundred per athlete and day): 7-day chunks keep the chunk
    // count low while a week of a gym's reps still fits in memory for the weekly trends.
    // The primary key already indexes (athlete_id, start_time): no default time index.
    "SELECT create_hypertable('reps', by_range('start_time', INTERVAL '7 days'), create_default_indexes => false)",
    "CREATE INDEX reps_gym_time_idx ON reps (gym_id, start_time, athlete_id)",
    concat!("CREATE TABLE kinematics (", pg_kinematics_columns!(), "\n)"),
    // Kinematics are dense (25 Hz per athlete while training, millions of rows per gym
    // and day): 1-day chunks keep the hot chunk and its index small, and make retention
    // and compression work in day-sized pieces.
    "SELECT create_hypertable('kinematics', by_range('time', INTERVAL '1 day'), create_default_indexes => false)",
];

const PG_RECORDS_PARTITIONED: &[&str] = &[
    // Monthly RANGE partitions (`reps_pYYYYMM`) are created by the store before it
    // writes into a month; the DEFAULT partition catches anything else so no write is
    // ever rejected for want of a partition.
    concat!(
        "CREATE TABLE reps (",
        pg_reps_columns!(),
        "\n) PARTITION BY RANGE (start_time)"
    ),
    "CREATE TABLE reps_default PARTITION OF reps DEFAULT",
    "CREATE INDEX reps_gym_time_idx ON reps (gym_id, start_time, athlete_id)",
    concat!(
        "CREATE TABLE kinematics (",
        pg_kinematics_columns!(),
        "\n) PARTITION BY RANGE (time)"
    ),
    "CREATE TABLE kinematics_default PARTITION OF kinematics DEFAULT",
];

const SQLITE_RECORDS: &[&str] = &[
    "CREATE TABLE reps (
    rep_id TEXT NOT NULL,
    gym_id TEXT NOT NULL,
    athlete_id TEXT NOT NULL,
    set_id TEXT NOT NULL,
    rep_index INTEGER NOT NULL,
    exercise INTEGER NOT NULL,
    exercise_inferred INTEGER NOT NULL,
    load_kg REAL NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    bottom_us INTEGER NOT NULL,
    concentric_start_us INTEGER NOT NULL,
    eccentric_s REAL NOT NULL,
    concentric_s REAL NOT NULL,
    peak_lumbar_flexion_deg REAL NOT NULL,
    peak_trunk_inclination_deg REAL NOT NULL,
    ldi REAL NOT NULL,
    peak_load_moment_nm REAL NOT NULL,
    extensor_event INTEGER NOT NULL,
    ev_peak_lumbar_ext_velocity_dps REAL,
    ev_lumbar_share_duration_ms REAL,
    ev_max_lumbar_share REAL,
    ev_ldi REAL,
    ev_onset_lag_ms REAL,
    ev_bottom_lumbar_flexion_deg REAL,
    ev_peak_load_moment_nm REAL,
    ev_top_hyperextension_deg REAL,
    fatigue_score REAL NOT NULL,
    fatigue_dose REAL NOT NULL,
    fatigue_observed REAL NOT NULL,
    stability_deficit REAL NOT NULL,
    damage REAL NOT NULL,
    cumulative_damage REAL NOT NULL,
    session_id TEXT NOT NULL,
    clock_skew_flagged INTEGER NOT NULL,
    model_version INTEGER NOT NULL,
    stored_us INTEGER NOT NULL,
    PRIMARY KEY (athlete_id, start_us)
) STRICT",
    "CREATE INDEX reps_gym_time_idx ON reps (gym_id, start_us, athlete_id)",
    "CREATE TABLE kinematics (
    gym_id TEXT NOT NULL,
    athlete_id TEXT NOT NULL,
    t_us INTEGER NOT NULL,
    lumbar_flexion_deg REAL NOT NULL,
    trunk_inclination_deg REAL,
    pelvis_inclination_deg REAL,
    PRIMARY KEY (athlete_id, t_us)
) STRICT, WITHOUT ROWID",
];

/// The reps columns in insert/select order, as (PostgreSQL name, PostgreSQL array type
/// for UNNEST, SQLite name). `stored_at` is excluded (written separately, never read).
pub(crate) const REP_COLUMNS: &[(&str, &str, &str)] = &[
    ("rep_id", "text", "rep_id"),
    ("gym_id", "text", "gym_id"),
    ("athlete_id", "text", "athlete_id"),
    ("set_id", "text", "set_id"),
    ("rep_index", "bigint", "rep_index"),
    ("exercise", "integer", "exercise"),
    ("exercise_inferred", "boolean", "exercise_inferred"),
    ("load_kg", "real", "load_kg"),
    ("start_time", "timestamptz", "start_us"),
    ("end_time", "timestamptz", "end_us"),
    ("bottom_time", "timestamptz", "bottom_us"),
    (
        "concentric_start_time",
        "timestamptz",
        "concentric_start_us",
    ),
    ("eccentric_s", "real", "eccentric_s"),
    ("concentric_s", "real", "concentric_s"),
    ("peak_lumbar_flexion_deg", "real", "peak_lumbar_flexion_deg"),
    (
        "peak_trunk_inclination_deg",
        "real",
        "peak_trunk_inclination_deg",
    ),
    ("ldi", "real", "ldi"),
    ("peak_load_moment_nm", "real", "peak_load_moment_nm"),
    ("extensor_event", "boolean", "extensor_event"),
    (
        "ev_peak_lumbar_ext_velocity_dps",
        "real",
        "ev_peak_lumbar_ext_velocity_dps",
    ),
    (
        "ev_lumbar_share_duration_ms",
        "real",
        "ev_lumbar_share_duration_ms",
    ),
    ("ev_max_lumbar_share", "real", "ev_max_lumbar_share"),
    ("ev_ldi", "real", "ev_ldi"),
    ("ev_onset_lag_ms", "real", "ev_onset_lag_ms"),
    (
        "ev_bottom_lumbar_flexion_deg",
        "real",
        "ev_bottom_lumbar_flexion_deg",
    ),
    ("ev_peak_load_moment_nm", "real", "ev_peak_load_moment_nm"),
    (
        "ev_top_hyperextension_deg",
        "real",
        "ev_top_hyperextension_deg",
    ),
    ("fatigue_score", "real", "fatigue_score"),
    ("fatigue_dose", "real", "fatigue_dose"),
    ("fatigue_observed", "real", "fatigue_observed"),
    ("stability_deficit", "real", "stability_deficit"),
    ("damage", "double precision", "damage"),
    ("cumulative_damage", "double precision", "cumulative_damage"),
    ("session_id", "text", "session_id"),
    ("clock_skew_flagged", "boolean", "clock_skew_flagged"),
    ("model_version", "bigint", "model_version"),
];

/// `a, b, c` of the given column names.
pub(crate) fn col_list(f: impl Fn(&(&str, &str, &str)) -> String) -> String {
    REP_COLUMNS.iter().map(f).collect::<Vec<_>>().join(", ")
}
